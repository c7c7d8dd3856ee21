package io.versionfs.run;

import io.versionfs.Await;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.versionfs.run.EngineIT.verifyVersions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A run's life as a hostile user lives it: a second run on a busy target, nested runs, kill -9 of
 * versionfs while the job keeps writing, a job that never opens its target, a rename then a
 * crash, someone else's file, bad arguments. Every test checks the user's file ends with what the
 * job last wrote and every version against its manifest sha256.
 */
class RunLifeIT {
    @TempDir
    Path dir;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    private Result vfs(long timeoutSec, String... args) throws Exception {
        return TestSupport.vfs(dir, timeoutSec, args);
    }

    private Process vfsAsync(String... args) throws Exception {
        return new ProcessBuilder(TestSupport.launcher(args)).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("first.log").toFile()).start();
    }

    private void waitFor(Path p) throws Exception {
        Await.until(Await.LONG, p + " to exist", () -> Files.exists(p), () -> logOf("first.log"));
    }

    private String logOf(String name) throws Exception {
        Path log = dir.resolve(name);
        return Files.exists(log) ? name + ":\n" + Files.readString(log) : "(no " + name + ")";
    }

    /** How many times the job of the kill -9 tests has written job.gbw through versionfs (its lastok file; 0 before, or mid-write). */
    static int lastOk(Path lastok) throws Exception {
        if (!Files.exists(lastok)) return 0;
        String s = Files.readString(lastok).strip();
        return s.isEmpty() ? 0 : Integer.parseInt(s);
    }

    /** A job that keeps job.gbw open, writes, waits for a go file, writes again, closes. */
    private static final String HOLDING_JOB = "exec 3<>job.gbw; echo A >&3; touch started; "
            + "while [ ! -e go ]; do sleep 0.05; done; echo B >&3; exec 3>&-; echo C > job.gbw";

    @Test
    void aRefusedSecondRunTouchesNothingOfTheFirst() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "orig\n");
        Process first = vfsAsync("run", "--target", "job.gbw", "--", "sh", "-c", HOLDING_JOB);
        waitFor(dir.resolve("started"));
        Result second = vfs(60, "run", "--target", "job.gbw", "--", "true");
        assertEquals(209, second.exit(), second.err());
        assertTrue(second.err().contains("pid " + first.pid()) && second.err().contains("Nothing was changed"), second.err());
        assertEquals(1, second.err().strip().lines().count(), "one line: " + second.err());
        // Same with another versions folder: the target itself is locked.
        Result third = vfs(60, "run", "--versions-dir", "other", "--target", "job.gbw", "--", "true");
        assertEquals(209, third.exit(), third.err());
        assertFalse(Files.exists(dir.resolve("other")), "a refused run leaves no folder behind");
        // Nested: the inner run is refused, the outer job sees that and its own file is intact.
        Files.writeString(dir.resolve("go"), "");
        assertTrue(first.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, first.exitValue(), Files.readString(dir.resolve("first.log")));
        assertEquals("C\n", Files.readString(dir.resolve("job.gbw")), "the first run's job wrote everything");
        assertTrue(Files.isRegularFile(dir.resolve("job.gbw"), LinkOption.NOFOLLOW_LINKS));
        verifyVersions(dir.resolve("job.gbw.versions"));

        Result nested = vfs(60, "run", "--target", "job.gbw", "--", TestSupport.LAUNCHER.toString(), "run", "--target",
                "job.gbw", "--", "sh", "-c", "echo inner > job.gbw");
        assertEquals(209, nested.exit(), "the inner run's refusal is the job's exit code: " + nested.err());
        assertEquals("C\n", Files.readString(dir.resolve("job.gbw")));
        assertTrue(Files.isRegularFile(dir.resolve("job.gbw"), LinkOption.NOFOLLOW_LINKS));
        verifyVersions(dir.resolve("job.gbw.versions"));
    }

    @Test
    void aSecondDirModeRunInTheSameFolderIsRefusedWithoutABogusVersion() throws Exception {
        Process first = vfsAsync("run", "--mode", "dir", "--target", "job.gbw", "--", "sh", "-c", HOLDING_JOB);
        waitFor(dir.resolve("started"));
        Result second = vfs(60, "run", "--mode", "dir", "--target", "job.gbw", "--", "true");
        assertEquals(209, second.exit(), second.err());
        Files.writeString(dir.resolve("go"), "");
        assertTrue(first.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, first.exitValue(), Files.readString(dir.resolve("first.log")));
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertTrue(rows.stream().noneMatch(m -> "initial".equals(m.get("reason"))), "no version from the refused run: " + rows);
        assertEquals("C\n", Files.readString(dir.resolve("job.gbw")));
    }

    @Test
    void writesAfterVersionfsIsKilledFailLoudlyAndTheNextRunRecovers() throws Exception {
        // The job rewrites job.gbw by path every 50 ms; versionfs is killed with SIGKILL. Its
        // later writes must fail (not vanish into a temp folder); the next run puts back the last
        // content that went through versionfs.
        Path tmpdir = Files.createDirectories(dir.resolve("tmp"));
        // The job's 50 ms pause is the scenario (a job that keeps writing while versionfs dies), not a wait.
        String job = "i=0; while [ $i -lt 400 ]; do i=$((i+1)); if echo $i > job.gbw 2>/dev/null; then echo $i > lastok; "
                + "else echo $i >> failed; fi; sleep 0.05; done";
        ProcessBuilder pb = new ProcessBuilder(TestSupport.LAUNCHER.toString(), "run", "--target", "job.gbw", "--", "sh", "-c", job)
                .directory(dir.toFile()).redirectErrorStream(true).redirectOutput(dir.resolve("first.log").toFile());
        pb.environment().put("TMPDIR", tmpdir.toString());
        Process p = pb.start();
        // The kill lands while the job writes on, after a few of its writes went through versionfs.
        Await.until(Await.LONG, "5 writes of the job through versionfs", () -> lastOk(dir.resolve("lastok")) >= 5,
                () -> logOf("first.log"));
        List<ProcessHandle> jobs = p.descendants().filter(h -> h.info().command().map(c -> c.endsWith("sh")).orElse(false)).toList();
        p.destroyForcibly();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        waitFor(dir.resolve("failed"));
        for (ProcessHandle h : jobs) h.destroyForcibly();
        Await.gone(jobs, "the job's shell"); // so nothing writes lastok, failed or the mount folder any more
        // fusermount's auto_unmount detaches the dead mount once the killed daemon's descriptors
        // are closed; on a loaded machine that can come after the job's shell is gone.
        String tmpAbs = tmpdir.toAbsolutePath().toString();
        Await.until(Await.LONG, "auto_unmount of the killed daemon's mount",
                () -> TestSupport.versionfsMounts().stream().noneMatch(l -> l.split(" ")[1].startsWith(tmpAbs)));
        try (Stream<Path> s = Files.walk(tmpdir)) {
            List<Path> files = s.filter(Files::isRegularFile).toList();
            assertTrue(files.isEmpty(), "nothing was written into the dead mount's folder: " + files);
        }
        String lastOk = Files.readString(dir.resolve("lastok"));
        Result next = vfs(120, "run", "--target", "job.gbw", "--", "true");
        assertEquals(0, next.exit(), next.err());
        assertTrue(next.err().contains("recovered"), next.err());
        // The last write that succeeded is the content, unless the kill came inside the next
        // echo: its open's truncation (or its write, whose close then failed) may have landed.
        String got = Files.readString(dir.resolve("job.gbw"));
        String firstFailed = Files.readAllLines(dir.resolve("failed")).get(0) + "\n";
        assertTrue(got.equals(lastOk) || got.isEmpty() || got.equals(firstFailed),
                "the content is the last write that succeeded (" + lastOk.strip() + ") or the one in flight: '" + got + "'");
        assertTrue(Files.isRegularFile(dir.resolve("job.gbw"), LinkOption.NOFOLLOW_LINKS));
        Path v = dir.resolve("job.gbw.versions");
        List<Map<String, Object>> rows = verifyVersions(v);
        boolean kept = got.equals(lastOk);
        for (Map<String, Object> row : rows) {
            if ("saved".equals(row.get("status")) && Files.readString(v.resolve((String) row.get("path"))).equals(lastOk)) kept = true;
        }
        assertTrue(kept, "the last write that succeeded is in the file or a version: " + rows);
    }

    @Test
    void aJobThatNeverOpensItsTargetLeavesItIndependentOfItsVersions() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "orig\n");
        for (int i = 0; i < 2; i++) assertEquals(0, vfs(60, "run", "--target", "job.gbw", "--", "true").exit());
        Files.writeString(dir.resolve("job.gbw"), "edit\n", java.nio.file.StandardOpenOption.APPEND);
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertEquals(2, rows.size(), "each run keeps the starting content: " + rows);
        assertEquals(1, ((Number) Files.getAttribute(dir.resolve("job.gbw"), "unix:nlink")).intValue(), "no version shares its inode");
    }

    @Test
    void aRenamedTargetIsARegularFileAfterRecovery() throws Exception {
        // ORCA AutoStart renames job.gbw to job.ges; then versionfs and the job are killed.
        Files.writeString(dir.resolve("job.gbw"), "guess\n");
        // sleep 60: the job must still be running when versionfs is killed (the scenario, not a wait).
        Process p = vfsAsync("run", "--target", "job.gbw", "--", "sh", "-c", "mv job.gbw job.ges; touch started; sleep 60");
        waitFor(dir.resolve("started"));
        List<ProcessHandle> kids = p.descendants().toList();
        p.destroyForcibly();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        for (ProcessHandle h : kids) h.destroyForcibly();
        Result next = vfs(120, "run", "--target", "job.gbw", "--", "true");
        assertEquals(0, next.exit(), next.err());
        assertTrue(Files.isRegularFile(dir.resolve("job.ges"), LinkOption.NOFOLLOW_LINKS), "job.ges is a regular file again");
        assertEquals("guess\n", Files.readString(dir.resolve("job.ges")));
        verifyVersions(dir.resolve("job.gbw.versions"));
    }

    @Test
    void someoneElsesGroupWritableFileKeepsItsOwnerGroupAndMode() throws Exception {
        assumeTrue(TestSupport.isRoot(), "needs root to give the file to another user");
        Path f = dir.resolve("job.gbw");
        Files.writeString(f, "theirs\n");
        assertEquals(0, TestSupport.run(dir, null, 10, "chown", "1234:2345", f.toString()).exit());
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-rw-r--"));
        Result r = vfs(60, "run", "--target", "job.gbw", "--", "sh", "-c", "echo mine > job.gbw");
        assertEquals(0, r.exit(), r.err());
        assertEquals("mine\n", Files.readString(f));
        assertEquals(1234, Files.getAttribute(f, "unix:uid"));
        assertEquals(2345, Files.getAttribute(f, "unix:gid"));
        assertEquals("rw-rw-r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(f)));
        verifyVersions(dir.resolve("job.gbw.versions"));
    }

    @Test
    void badArgumentsGetTheRealCauseInOneLineAndLeaveNothing() throws Exception {
        record Case(int code, String contains, String... args) {}
        List<Case> cases = List.of(
                new Case(201, "unknown option --taget (did you mean --target?)", "run", "--taget", "job.gbw", "--", "true"),
                new Case(202, "--target is empty", "run", "--target", "", "--", "true"),
                new Case(201, "--grace must be between 0 and 86400", "run", "--grace", "-1", "--target", "job.gbw", "--", "true"),
                new Case(201, "--grace must be between 0 and 86400", "run", "--grace", "9223372036854775807", "--target",
                        "job.gbw", "--", "true"),
                new Case(202, "file name too long", "run", "--target", "a".repeat(250), "--", "true"),
                new Case(206, "not on PATH", "run", "--target", "job.gbw", "--", "no-such-program-xyz"));
        for (Case c : cases) {
            Result r = vfs(60, c.args());
            assertEquals(c.code(), r.exit(), String.join(" ", c.args()) + ": " + r.err());
            assertTrue(r.err().contains(c.contains()), r.err());
            assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
            try (Stream<Path> s = Files.list(dir)) {
                assertEquals(List.of(), s.toList(), "nothing left behind by " + String.join(" ", c.args()));
            }
        }
    }

    @Test
    void ourOwnDanglingSymlinkFromAKilledRunIsRecognised() throws Exception {
        Files.createSymbolicLink(dir.resolve("job.gbw"), Path.of("/tmp/versionfs-123456/m0/f/job.gbw"));
        Result r = vfs(60, "run", "--target", "job.gbw", "--", "true");
        assertEquals(202, r.exit(), r.err());
        assertTrue(r.err().contains("dangling symlink left by a versionfs run that was killed"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(Files.isSymbolicLink(dir.resolve("job.gbw")), "left as it was");
    }

    @Test
    void aDirModeRunKilledWithSigkillLeavesNothingSharedAndEveryVersionListed() throws Exception {
        // The job rewrites job.xyz every 50 ms for 10 s (its pace is the scenario: it is mid-run at the kill).
        Files.writeString(dir.resolve("loop.py"), "import time\nfor i in range(200):\n"
                + "    open('job.xyz','w').write('v%d\\n' % i); time.sleep(0.05)\n");
        Process p = vfsAsync("run", "--mode", "dir", "--target", "*.xyz", "--", "python3", "loop.py");
        Await.until(Await.LONG, "5 versions of job.xyz", () -> Files.isDirectory(dir.resolve("job.xyz.versions"))
                && TestSupport.versions(dir.resolve("job.xyz.versions"), "job", ".xyz").size() >= 5, () -> logOf("first.log"));
        // A user's shell sitting in the folder (as in an interactive session): it holds the folder,
        // so when versionfs dies the automatic unmount fails and the folder is a dead mount.
        Path go = Files.createTempFile("vfs-go", "");
        Files.delete(go);
        Process shell = new ProcessBuilder("sh", "-c", "while [ ! -e " + go + " ]; do sleep 0.05; done; exec "
                + TestSupport.LAUNCHER + " run --mode dir --target '*.xyz' -- true")
                .directory(dir.toFile()).redirectErrorStream(true).redirectOutput(dir.getParent().resolve(dir.getFileName() + "-shell.log").toFile())
                .start();
        try {
            List<ProcessHandle> kids = p.descendants().toList();
            p.destroyForcibly();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            for (ProcessHandle h : kids) h.destroyForcibly();
            // The daemon's processes (the job, fusermount's auto_unmount helper) gone: the mount is
            // now gone or dead for good, nothing else will change it.
            Await.gone(kids, "the killed run's processes");
            boolean dead = TestSupport.versionfsMounts().stream().anyMatch(l -> l.contains(" " + dir + " "));
            System.out.println("dead mount after kill -9: " + dead);
            Files.writeString(go, "");
            assertTrue(shell.waitFor(120, TimeUnit.SECONDS));
            String said = Files.readString(dir.getParent().resolve(dir.getFileName() + "-shell.log"));
            if (dead) {
                // From inside the dead folder: versionfs clears it and asks for a fresh start there.
                assertEquals(205, shell.exitValue(), said);
                assertTrue(said.contains("dead FUSE mount") && said.contains("cleared now"), said);
            }
        } finally {
            shell.destroyForcibly();
            Files.deleteIfExists(go);
            Files.deleteIfExists(dir.getParent().resolve(dir.getFileName() + "-shell.log"));
        }
        Result r = vfs(120, "run", "--mode", "dir", "--target", "*.xyz", "--", "true");
        assertEquals(0, r.exit(), r.err());
        assertEquals(1, ((Number) Files.getAttribute(dir.resolve("job.xyz"), "unix:nlink")).intValue(),
                "the target shares no inode with a version");
        verifyVersions(dir.resolve("job.xyz.versions")); // every version file listed, every sha256 right
        Files.writeString(dir.resolve("job.xyz"), "edit\n", java.nio.file.StandardOpenOption.APPEND);
        verifyVersions(dir.resolve("job.xyz.versions"));
    }

    @Test
    void runsInsideAFolderServedInDirModeOrInsideAVersionsFolderAreRefused() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "orig\n");
        Process first = vfsAsync("run", "--mode", "dir", "--target", "*.xyz", "--", "sh", "-c",
                "touch started; while [ ! -e go ]; do sleep 0.05; done");
        waitFor(dir.resolve("started"));
        Result r = vfs(60, "run", "--target", "g.gbw", "--", "true");
        assertEquals(209, r.exit(), r.err());
        assertTrue(r.err().contains("served in --mode dir") && r.err().contains("pid " + first.pid()), r.err());
        r = vfs(60, "run", "--target", "job.xyz", "--", "true");
        assertEquals(209, r.exit(), r.err());
        Files.writeString(dir.resolve("go"), "");
        assertTrue(first.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, first.exitValue(), Files.readString(dir.resolve("first.log")));
        assertEquals(0, vfs(60, "run", "--target", "job.gbw", "--", "true").exit());
        r = vfs(60, "run", "--target", "job.gbw.versions/manifest.jsonl", "--", "true");
        assertEquals(202, r.exit(), r.err());
        assertTrue(r.err().contains("a versions folder"), r.err());
        verifyVersions(dir.resolve("job.gbw.versions"));
    }

    /**
     * Writes job.gbw (16 MiB, from scratch), then waits until, seen from outside the mount, its
     * version is published (initial + close: two version files) and nothing, hidden or published,
     * shares the live file's inode any more; then says so ({@code separated}), or says it gave up
     * after the seconds it is given ({@code gave-up}), and waits to be stopped.
     */
    private static final String WRITE_THEN_WAIT_FOR_SEPARATION = String.join("\n",
            "import os, glob, sys, time",
            "open('job.gbw', 'wb').write(b'Q' * (16 << 20))",
            "backing = glob.glob('job.gbw.versions/.versionfs/live/f*/job.gbw')[0]",
            "def shared():",
            "    ino = os.stat(backing).st_ino",
            "    names = glob.glob('job.gbw.versions/job.0*') + glob.glob('job.gbw.versions/.versionfs/pending/*/*')",
            "    return any(os.stat(v).st_ino == ino for v in names)",
            "deadline = time.time() + float(sys.argv[1])",
            "while time.time() < deadline:",
            "    if len(glob.glob('job.gbw.versions/job.0*')) >= 2 and not shared():",
            "        open('separated', 'w').close(); break",
            "    time.sleep(0.05)",
            "else:",
            "    open('gave-up', 'w').close()",
            "time.sleep(3600)");

    private static long hiddenVersions(Path vdir) throws Exception {
        Path pending = vdir.resolve(".versionfs/pending");
        if (!Files.isDirectory(pending)) return 0;
        try (var pids = Files.list(pending)) {
            long n = 0;
            for (Path p : pids.toList()) {
                try (var fs = Files.list(p)) {
                    n += fs.count();
                }
            }
            return n;
        }
    }

    private static Process stoppable(Path dir, String budgetMillis, String quietMillis, String waitSec) throws Exception {
        Files.writeString(dir.resolve("wait.py"), WRITE_THEN_WAIT_FOR_SEPARATION);
        ProcessBuilder pb = new ProcessBuilder(TestSupport.launcher("run", "--target", "job.gbw", "--", "python3", "wait.py", waitSec))
                .directory(dir.toFile()).redirectErrorStream(true).redirectOutput(dir.resolve("run.log").toFile());
        pb.environment().put("VERSIONFS_JAVA_OPTS", "-Dversionfs.stopCopyBudgetMillis=" + budgetMillis
                + " -Dversionfs.quietMillis=" + quietMillis);
        return pb.start();
    }

    @Test
    void aQuietFileIsSeparatedFromItsLastVersionBeforeTheEndSoAStoppedRunNeedsNoCopy() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "orig\n");
        // No time at all for copies after TERM: only a separation done while the job ran helps.
        Process run = stoppable(dir, "0", "300", "120");
        try {
            waitFor(dir.resolve("separated"));
        } finally {
            new ProcessBuilder("kill", "-TERM", String.valueOf(run.pid())).start().waitFor();
            assertTrue(run.waitFor(60, TimeUnit.SECONDS));
        }
        String log = Files.readString(dir.resolve("run.log"));
        assertFalse(log.contains("still shares"), log);
        Path gbw = dir.resolve("job.gbw");
        assertTrue(Files.isRegularFile(gbw, LinkOption.NOFOLLOW_LINKS), log);
        assertEquals(16 << 20, Files.size(gbw));
        Files.writeString(gbw, "edited after the run\n", java.nio.file.StandardOpenOption.APPEND);
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertEquals(List.of("initial", "close"), rows.stream().map(m -> m.get("reason")).toList());
    }

    @Test
    void withNoTimeToSeparateAStoppedRunSaysWhatIsStillSharedAndHowToFixIt() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "orig\n");
        // The control: quiet time far away, no copy budget: the version must stay shared, and said.
        Process run = stoppable(dir, "0", "600000", "2");
        try {
            // The close's version is taken (hidden until it no longer shares the live file).
            Await.until(Await.LONG, "the close's hidden version", () -> hiddenVersions(dir.resolve("job.gbw.versions")) >= 1,
                    () -> logOf("run.log"));
            // The job's 2 s watch for a separation (the control's window) is over, one way or the other.
            Await.until(Await.LONG, "the job to see a separation or give up", () -> Files.exists(dir.resolve("gave-up"))
                    || Files.exists(dir.resolve("separated")), () -> logOf("run.log"));
            assertFalse(Files.exists(dir.resolve("separated")), "nothing separated the file in the background");
        } finally {
            new ProcessBuilder("kill", "-TERM", String.valueOf(run.pid())).start().waitFor();
            assertTrue(run.waitFor(60, TimeUnit.SECONDS));
        }
        String log = Files.readString(dir.resolve("run.log"));
        assertTrue(log.contains("still shares its storage with its last version") && log.contains("cp --reflink=auto"), log);
        assertTrue(io.versionfs.capture.Manifest.read(dir.resolve("job.gbw.versions")).stream()
                .anyMatch(m -> "shares-inode".equals(m.event())), "recorded in the manifest");
        assertEquals(16 << 20, Files.size(dir.resolve("job.gbw")));
    }

    /**
     * In a container every run's JVM may be pid 1 of its own pid namespace: a run killed there must
     * not look like a live one to the next (same pid), and its hidden versions must be recovered.
     */
    @Test
    void aRunKilledInAPidNamespaceIsRecoveredByTheNextOne() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "orig\n");
        List<String> first = new ArrayList<>(List.of("unshare", "--pid", "--fork", "--mount-proc"));
        first.addAll(List.of(TestSupport.launcher("run", "--target", "job.gbw", "--", "sh", "-c",
                "echo one > job.gbw; echo two > job.gbw; touch started; sleep 120"))); // sleep: alive at the kill (scenario)
        Process p = new ProcessBuilder(first).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("first.log").toFile()).start();
        try {
            waitFor(dir.resolve("started"));
            ProcessHandle java = p.descendants().filter(h -> h.info().command().map(c -> c.endsWith("/java")).orElse(false))
                    .findFirst().orElseThrow(() -> new AssertionError("no java in the namespace"));
            assertTrue(java.destroyForcibly()); // SIGKILL: version 3 ("two") is still hidden
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        }
        List<String> second = new ArrayList<>(List.of("unshare", "--pid", "--fork", "--mount-proc"));
        second.addAll(List.of(TestSupport.launcher("run", "--target", "job.gbw", "--", "cat", "job.gbw")));
        Result r = TestSupport.run(dir, null, 120, second.toArray(String[]::new));
        assertEquals(0, r.exit(), Files.readString(dir.resolve("first.log")) + r.err());
        assertEquals("two\n", r.out());
        Path v = dir.resolve("job.gbw.versions");
        List<Map<String, Object>> rows = verifyVersions(v);
        List<String> contents = new ArrayList<>();
        for (Map<String, Object> row : rows) if (row.get("event") == null) contents.add(Files.readString(v.resolve((String) row.get("path"))));
        assertEquals(List.of("orig\n", "one\n", "two\n", "two\n"), contents, "the hidden version was recovered, then this run's initial");
        try (var hidden = Files.walk(v.resolve(".versionfs/pending"))) {
            assertEquals(List.of(), hidden.filter(Files::isRegularFile).toList(), "nothing left hidden");
        }
        assertTrue(Files.isRegularFile(dir.resolve("job.gbw"), LinkOption.NOFOLLOW_LINKS));
    }
}
