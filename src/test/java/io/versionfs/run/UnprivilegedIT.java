package io.versionfs.run;

import io.versionfs.Await;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import io.versionfs.text.Json;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static io.versionfs.TestSupport.manifestVersions;
import static io.versionfs.TestSupport.versions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * versionfs as an ordinary user, as on a cluster: the test set-up (as root) creates the users
 * {@value #USER} and {@value #OTHER}, makes {@code /dev/fuse} 0666 (restored afterwards), checks
 * with {@code bin/prereqs} that {@code fusermount} is there under libfuse2's name and setuid root,
 * and puts a copy of the launcher and jar in a world-readable folder. Every versionfs process then
 * runs through {@code runuser -u vfstest}, in folders that user owns.
 */
class UnprivilegedIT {
    static final String USER = "vfstest", OTHER = "vfsother";
    private static Path base;      // world-readable: launcher, jar, the tests' folders
    private static TestSupport.OrdinaryUser testUser; // USER, with /dev/fuse open to users until the end

    private Path work, tmp;

    @BeforeAll
    static void asOnACluster() throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/usr/sbin/runuser")) || Files.isExecutable(Path.of("/sbin/runuser")),
                "skipped: runuser (util-linux) is missing");
        testUser = TestSupport.OrdinaryUser.create(USER, OTHER);
        Result pre = TestSupport.run(TestSupport.PROJECT, null, 600, TestSupport.PROJECT.resolve("bin/prereqs").toString());
        assertEquals(0, pre.exit(), "bin/prereqs: " + pre.err());
        base = TestSupport.worldReadableInstall(Path.of("/tmp"), "vfs-unpriv-");
    }

    @AfterAll
    static void restore() throws Exception {
        try {
            if (testUser != null) testUser.close();
        } finally {
            if (base != null) {
                TestSupport.assertNoMountUnder(base);
                deleteTree(base);
            }
        }
    }

    @BeforeEach
    void folders() throws Exception {
        Path t = Files.createTempDirectory(base, "t");
        work = Files.createDirectory(t.resolve("work"));
        tmp = Files.createDirectory(t.resolve("tmp"));
        for (Path p : List.of(t, work, tmp)) {
            Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
            testUser.own(p);
        }
    }

    /**
     * No mount may be left under the tests' folder. One that is (a failed test) is detached as its
     * owner before the assertion fails, so that it cannot break the tests after it.
     */
    @AfterEach
    void noMountLeft() throws Exception {
        List<String> left = TestSupport.versionfsMounts().stream().map(l -> l.split(" ")[1])
                .filter(m -> m.startsWith(base.toString())).toList();
        for (String m : left) TestSupport.run(base, null, 30, "runuser", "-u", USER, "--", "fusermount", "-u", "-z", m);
        assertEquals(List.of(), left, "FUSE mounts left behind");
    }

    /** {@code runuser -u USER -- env VERSIONFS_JAR=... TMPDIR=... CMD...} in {@code work}. */
    private String[] as(String user, String... cmd) {
        List<String> all = new ArrayList<>(List.of("runuser", "-u", user, "--", "env", "VERSIONFS_JAR=" + base.resolve("versionfs.jar"),
                "TMPDIR=" + tmp, "HOME=/home/" + user, "SLURM_JOB_ID=", "SLURM_JOB_NUM_NODES=", "SLURM_NNODES=", "SLURM_TMPDIR="));
        all.addAll(List.of(cmd));
        return all.toArray(String[]::new);
    }

    private String[] vfsAs(String... args) {
        List<String> all = new ArrayList<>(List.of(base.resolve("bin/versionfs").toString()));
        all.addAll(List.of(args));
        return as(USER, all.toArray(String[]::new));
    }

    /**
     * {@code sh -c SCRIPT} as {@code user} in {@code work}. Started from {@code base}: while
     * {@code work} is the user's own FUSE mount (directory mode), nobody else, root included, can
     * enter it.
     */
    private Result sh(String user, String script) throws Exception {
        return TestSupport.run(base, null, 60, as(user, "sh", "-c", "cd " + work + " && " + script));
    }

    /** {@code sh -c SCRIPT} as {@code user}, from {@code base} (absolute paths only). */
    private Result shAt(String user, String script) throws Exception {
        return TestSupport.run(base, null, 60, as(user, "sh", "-c", script));
    }

    /** Every file and folder under {@code root} belongs to the test user (uid and gid). */
    private static void assertOwnedByUser(Path root) throws Exception {
        List<String> wrong = new ArrayList<>();
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.toList()) {
                int u = (Integer) Files.getAttribute(p, "unix:uid", LinkOption.NOFOLLOW_LINKS);
                int g = (Integer) Files.getAttribute(p, "unix:gid", LinkOption.NOFOLLOW_LINKS);
                if (u != testUser.uid || g != testUser.gid) wrong.add(p + " " + u + ":" + g);
            }
        }
        assertTrue(wrong.isEmpty(), "owned by " + USER + " (" + testUser.uid + ":" + testUser.gid + "), not: " + wrong);
    }

    private static List<Path> list(Path p) throws Exception {
        try (Stream<Path> s = Files.list(p)) {
            return s.filter(x -> !x.getFileName().toString().startsWith("versionfs-jar.")).toList();
        }
    }

    @Test
    void runEndToEndAsAnOrdinaryUser() throws Exception {
        assertEquals(0, sh(USER, "echo start > job.txt").exit());
        // The job records the mount its target leads into: a user mount (user_id = the user), not root's.
        String job = "l=$(readlink job.txt); mp=${l%/f/job.txt}; grep \" $mp fuse.versionfs \" /proc/self/mounts > mount.txt;"
                + " echo 1 > job.txt; echo 2 > job.txt; mkdir -p out/sub; echo o > out/sub/x";
        Result r = TestSupport.run(work, null, 180, vfsAs("run", "--target", "job.txt", "--", "sh", "-c", job));
        assertEquals(0, r.exit(), r.err());
        assertFalse(Files.isSymbolicLink(work.resolve("job.txt")));
        assertEquals("2\n", Files.readString(work.resolve("job.txt")));
        Path v = work.resolve("job.txt.versions");
        List<Path> files = versions(v, "job", ".txt");
        assertEquals(3, files.size(), "initial + 2 closes: " + files + "\n" + r.err());
        assertEquals(List.of("start\n", "1\n", "2\n"), List.of(Files.readString(files.get(0)), Files.readString(files.get(1)),
                Files.readString(files.get(2))));
        assertEquals(3, manifestVersions(v).size());
        String mount = Files.readString(work.resolve("mount.txt"));
        assertTrue(mount.contains("user_id=" + testUser.uid + ","), "the mount was the user's own: " + mount);
        assertOwnedByUser(work);
        assertOwnedByUser(tmp);
        assertEquals(List.of(), list(tmp), "the private mount folder is gone");
    }

    /**
     * An ordinary user's versions are read-only files: a hook that appends to its version gets
     * EACCES; identical versions are marked same_as and stay separate files.
     */
    @Test
    void anOrdinaryUsersVersionsAreReadOnly() throws Exception {
        String hook = "echo HOOK >> \"$VERSIONFS_PATH\"; echo \"rc=$?\"";
        Result r = TestSupport.run(work, null, 180, vfsAs("run", "--on-version", hook, "--target", "job.txt", "--", "sh", "-c",
                "umask 022; echo same > job.txt; echo same > job.txt; echo other > job.txt; cat job.txt > readback"));
        assertEquals(0, r.exit(), r.err());
        assertEquals("other\n", Files.readString(work.resolve("readback")));
        assertEquals("other\n", Files.readString(work.resolve("job.txt")));
        Path v = work.resolve("job.txt.versions");
        List<Map<String, Object>> rows = EngineIT.verifyVersions(v);
        List<Path> files = versions(v, "job", ".txt");
        assertEquals(List.of("same\n", "same\n", "other\n"), List.of(Files.readString(files.get(0)),
                Files.readString(files.get(1)), Files.readString(files.get(2))), rows.toString());
        for (Path f : files) {
            assertEquals("r--r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(f)), f.toString());
        }
        assertNotEquals(Files.getAttribute(files.get(0), "unix:ino"), Files.getAttribute(files.get(1), "unix:ino"),
                "the identical second version is a file of its own (a chmod and write on one never reaches the other)");
        assertTrue(rows.stream().anyMatch(m -> Long.valueOf(1).equals(m.get("same_as"))), rows.toString());
        String log = Files.readString(v.resolve("hooks.log"));
        assertEquals(3, log.lines().filter(l -> l.startsWith("rc=")).count(), log);
        assertFalse(log.contains("rc=0"), log);
        assertTrue(log.contains("Permission denied"), log);
        assertOwnedByUser(work);
    }

    @Test
    void directoryModeAsAnOrdinaryUser() throws Exception {
        assertEquals(0, sh(USER, "echo start > job.txt").exit());
        String job = "grep \" $PWD fuse.versionfs \" /proc/self/mounts > mount.txt; echo 1 > job.txt;"
                + " echo 2 > job.tmp && mv job.tmp job.txt; mkdir sub; echo s > sub/scratch";
        Result r = TestSupport.run(work, null, 180, vfsAs("run", "--mode", "dir", "--target", "job.txt", "--", "sh", "-c", job));
        assertEquals(0, r.exit(), r.err());
        assertEquals("2\n", Files.readString(work.resolve("job.txt")));
        List<Map<String, Object>> rows = manifestVersions(work.resolve("job.txt.versions"));
        assertEquals(List.of("initial", "close", "rename"), rows.stream().map(m -> m.get("reason")).toList(), rows.toString());
        assertTrue(Files.readString(work.resolve("mount.txt")).contains("user_id=" + testUser.uid + ","),
                Files.readString(work.resolve("mount.txt")));
        assertEquals("s\n", Files.readString(work.resolve("sub/scratch")));
        assertOwnedByUser(work);
        assertOwnedByUser(tmp);
    }

    @Test
    void aRunKilledWithSigkillIsRecoveredByTheNextRun() throws Exception {
        assertEquals(0, sh(USER, "echo start > job.txt").exit());
        // The job's 50 ms pause is the scenario (a job that keeps writing while versionfs dies), not a wait.
        String job = "i=0; while [ $i -lt 400 ]; do i=$((i+1)); if echo $i > job.txt 2>/dev/null; then echo $i > lastok; "
                + "else echo $i >> failed; fi; sleep 0.05; done";
        List<ProcessHandle> jobs = new ArrayList<>();
        Process p = new ProcessBuilder(vfsAs("run", "--target", "job.txt", "--", "sh", "-c", job)).directory(work.toFile())
                .redirectErrorStream(true).redirectOutput(base.resolve(work.getParent().getFileName() + ".log").toFile()).start();
        try {
            // The kill lands while the job writes on, after a few of its writes went through versionfs.
            Await.until(Await.LONG, "5 writes of the job through versionfs", () -> RunLifeIT.lastOk(work.resolve("lastok")) >= 5);
            List<ProcessHandle> all = p.descendants().toList();
            ProcessHandle java = all.stream().filter(h -> h.info().command().map(c -> c.endsWith("/java")).orElse(false))
                    .findFirst().orElseThrow(() -> new AssertionError("no java process under runuser: " + all));
            jobs.addAll(all.stream().filter(h -> h.info().command().map(c -> c.endsWith("sh")).orElse(false)).toList());
            assertTrue(java.destroyForcibly()); // SIGKILL, of the process we started
            waitFor(work.resolve("failed")); // the job's writes after the kill fail: nothing lands in a temp folder
            for (ProcessHandle h : jobs) h.destroyForcibly();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
        Await.gone(jobs, "the job's shell"); // so nothing writes lastok or failed any more
        String lastOk = Files.readString(work.resolve("lastok"));
        // As an ordinary user the dead mount may still be there (fusermount3's auto_unmount does not
        // remove it for a non-root mount on Debian 12): the next run clears it and recovers.
        Result next = TestSupport.run(work, null, 120, vfsAs("run", "--target", "job.txt", "--", "true"));
        assertEquals(0, next.exit(), next.err());
        assertTrue(next.err().contains("recovered"), next.err());
        assertTrue(Files.isRegularFile(work.resolve("job.txt"), LinkOption.NOFOLLOW_LINKS));
        // The last write that succeeded is there; the write in flight at the kill may have reached
        // the file even though its close() then failed (the daemon died inside flush), so the
        // first failed one is also a right answer. Nothing older, nothing later.
        String firstFailed = Files.readAllLines(work.resolve("failed")).get(0) + "\n";
        String got = Files.readString(work.resolve("job.txt"));
        assertTrue(got.equals(lastOk) || got.equals(firstFailed), "the content is the last write that succeeded ("
                + lastOk.strip() + ") or the one in flight at the kill (" + firstFailed.strip() + "), not " + got.strip());
        TestSupport.assertNoMountUnder(tmp);
        assertOwnedByUser(work);
        Result verify = TestSupport.run(work, null, 120, vfsAs("verify", "job.txt.versions"));
        assertEquals(0, verify.exit(), verify.out() + verify.err());
    }

    @Test
    void anotherUserCannotReadThroughTheMount() throws Exception {
        assertEquals(0, sh(USER, "echo secret > job.txt; chmod 644 job.txt").exit());
        Path target = work.resolve("job.txt");
        Result before = shAt(OTHER, "cat " + target);
        assertEquals(0, before.exit(), "without versionfs the file modes let " + OTHER + " read it: " + before.err());
        String job = "touch started; i=0; while [ ! -e stop ] && [ $i -lt 1200 ]; do i=$((i+1)); sleep 0.05; done"; // until told to stop
        Process p = new ProcessBuilder(vfsAs("run", "--mode", "dir", "--target", "job.txt", "--", "sh", "-c", job))
                .directory(work.toFile()).redirectErrorStream(true)
                .redirectOutput(base.resolve(work.getParent().getFileName() + ".log").toFile()).start();
        try {
            // As the user: the folder is the user's own mount, which root cannot enter.
            Await.until(Await.LONG, Duration.ofMillis(100), "the job's started file", () -> {
                if (!p.isAlive()) fail("the run ended before its job started");
                return sh(USER, "test -e started").exit() == 0;
            }, null);
            Result own = sh(USER, "cat " + target);
            assertEquals("secret\n", own.out(), "the owner reads through the mount: " + own.err());
            Result other = shAt(OTHER, "cat " + target);
            assertNotEquals(0, other.exit(), "another user must not read through the mount (no allow_other)");
            assertTrue(other.err().contains("Permission denied"), other.err());
            Result ls = shAt(OTHER, "ls " + work);
            assertNotEquals(0, ls.exit(), "nor list the folder: " + ls.out());
            assertEquals(0, sh(USER, "touch stop").exit());
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the run ends");
            assertEquals(0, p.exitValue());
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
        assertEquals(0, shAt(OTHER, "cat " + target).exit(), "after the run the plain file is back");
    }

    @Test
    void doctorPassesAsAnOrdinaryUserAndNamesTheFixWhenDevFuseIsClosed() throws Exception {
        Result ok = TestSupport.run(work, null, 120, vfsAs("doctor"));
        assertEquals(0, ok.exit(), ok.out() + ok.err());
        assertTrue(ok.out().contains("user " + USER), ok.out());
        assertTrue(ok.out().lines().anyMatch(l -> l.startsWith("/dev/fuse") && l.contains(" ok ")), ok.out());
        assertTrue(ok.out().lines().anyMatch(l -> l.startsWith("fusermount") && l.contains("setuid root")), ok.out());
        assertTrue(ok.out().lines().anyMatch(l -> l.startsWith("test mount") && l.contains(" ok ")), ok.out());
        assertEquals(List.of(), list(tmp), "the test mount left nothing");
        assertEquals(List.of(), list(work), "the probe in the versions folder left nothing");

        try {
            TestSupport.OrdinaryUser.chmodDevFuse("600");
            Result bad = TestSupport.run(work, null, 120, vfsAs("doctor", "--json"));
            assertEquals(204, bad.exit(), bad.out() + bad.err());
            Map<String, Object> doc = Json.parseObject(bad.out().trim());
            assertEquals(Boolean.FALSE, doc.get("ok"));
            @SuppressWarnings("unchecked")
            Map<String, Object> dev = ((List<Map<String, Object>>) doc.get("checks")).stream()
                    .filter(c -> "/dev/fuse".equals(c.get("check"))).findFirst().orElseThrow();
            assertEquals("FAIL", dev.get("status"), bad.out());
            assertTrue(String.valueOf(dev.get("fix")).contains("chmod 0666 /dev/fuse"), bad.out());
            Result table = TestSupport.run(work, null, 120, vfsAs("doctor"));
            assertEquals(204, table.exit());
            assertTrue(table.out().contains("fix: admins: chmod 0666 /dev/fuse"), table.out());
            Result run = TestSupport.run(work, null, 120, vfsAs("run", "--target", "job.txt", "--", "true"));
            assertEquals(204, run.exit(), "run agrees with doctor: " + run.err());
            assertTrue(run.err().contains("chmod 0666"), run.err());
        } finally {
            TestSupport.OrdinaryUser.chmodDevFuse("666");
        }
        assertEquals(List.of(), list(tmp));
    }

    private static void waitFor(Path p) throws InterruptedException {
        Await.until(Await.LONG, p + " to exist", () -> Files.exists(p));
    }

    private static void deleteTree(Path p) throws Exception {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path x : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(x);
        }
    }
}
