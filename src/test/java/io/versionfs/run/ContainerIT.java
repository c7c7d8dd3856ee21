package io.versionfs.run;

import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import io.versionfs.sys.Sha256;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static io.versionfs.TestSupport.manifestVersions;
import static io.versionfs.TestSupport.versions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Jobs inside real containers (issue 24), with the natural batch line and nothing versionfs-specific
 * in it: {@code versionfs run --target job.gbw -- ch-run -b $PWD -c $PWD IMG -- ./job.sh} and
 * {@code ... -- podman run --rm -v $PWD:$PWD -w $PWD IMG ./job.sh}, as root and as an ordinary user
 * (as {@link UnprivilegedIT}: a test user, {@code /dev/fuse} 0666 for the run and restored). The
 * runtimes are Debian's ({@code bin/prereqs --test} installs them); the image is built here from
 * local files: a static busybox tree for ch-run, its tarball {@code podman import}ed. Podman gets a
 * containers.conf of the test's own (runc, no network, rlimits these machines allow).
 *
 * <p>The job rewrites job.gbw five times and reads each back; where said it then renames it away
 * (ORCA AutoStart, job.gbw to job.ges), writes a sixth and saves a seventh atomically (job.tmp renamed onto job.gbw). Every version is checked against its
 * content and its sha256, and the final file; no mount, hidden mount folder or pause process is left.
 */
class ContainerIT {
    static final String USER = "vfsctr";
    static final String IMAGE = "localhost/vfs-busybox";
    private static Path base; // world-readable: launcher, jar, image tree and tarball, containers.conf, the tests' folders
    private static TestSupport.OrdinaryUser testUser; // USER, with /dev/fuse open to users until the end
    private static boolean haveChRun, havePodman;

    private Path work, tmp;

    @BeforeAll
    static void runtimesAndImages() throws Exception {
        assumeTrue(TestSupport.isRoot(), "skipped: needs root to install the runtimes, create the test user and set"
                + " /dev/fuse as a cluster has it (run the tests as root, e.g. bin/test)");
        assumeTrue(Files.exists(Path.of("/dev/fuse")), "skipped: this machine has no /dev/fuse");
        Result pre = TestSupport.run(TestSupport.PROJECT, null, 900, TestSupport.PROJECT.resolve("bin/prereqs").toString(), "--test");
        haveChRun = onPath("ch-run");
        havePodman = onPath("podman") && onPath("runc");
        // Only a package that cannot be installed skips its runtime; anything else is a failure below.
        assertTrue(haveChRun || havePodman, "bin/prereqs --test installed neither Charliecloud nor Podman: " + pre.err());
        assertTrue(Files.isExecutable(Path.of("/bin/busybox")), "busybox-static (the image's only program): " + pre.err());
        testUser = TestSupport.OrdinaryUser.create(USER);
        // Rootless podman maps the user's subordinate ids (useradd adds them where /etc/subuid exists).
        if (sh(null, "grep -q '^" + USER + ":' /etc/subuid && grep -q '^" + USER + ":' /etc/subgid").exit() != 0) {
            Result r = sh(null, "echo " + USER + ":300000:65536 >> /etc/subuid && echo " + USER + ":300000:65536 >> /etc/subgid");
            assertEquals(0, r.exit(), "subordinate ids for " + USER + ": " + r.err());
        }
        // Not under /tmp: a job's folder on a cluster is not, and ch-run puts the host's /tmp at /tmp.
        base = TestSupport.worldReadableInstall(Path.of("/var/tmp"), "vfs-ctr-");
        Files.writeString(base.resolve("containers.conf"), String.join("\n",
                "[containers]", "default_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]", "netns = \"none\"",
                "[engine]", "runtime = \"runc\"", "cgroup_manager = \"cgroupfs\"", "events_logger = \"file\"", ""));
        buildImage();
        assertEquals(0, sh(null, "chmod -R a+rX " + base).exit());
        if (havePodman) {
            Result r = TestSupport.run(base, env(), 300, "podman", "import", base.resolve("img.tar").toString(), IMAGE);
            assertEquals(0, r.exit(), "podman import as root: " + r.err());
            r = TestSupport.run(base, null, 300, as("podman", "import", base.resolve("img.tar").toString(), IMAGE));
            assertEquals(0, r.exit(), "podman import as " + USER + ": " + r.err());
            endPauseProcess(); // each test starts from a node where the user has no pause process
        }
    }

    /** A static busybox and the few files a shell needs; the tarball of the same tree for podman. */
    private static void buildImage() throws Exception {
        Path img = base.resolve("img");
        for (String d : List.of("bin", "etc", "tmp", "proc", "sys", "dev", "home", "mnt", "root", "var/tmp")) {
            Files.createDirectories(img.resolve(d));
        }
        Files.copy(Path.of("/bin/busybox"), img.resolve("bin/busybox"));
        for (String a : List.of("sh", "cat", "echo", "ls", "mv", "rm", "sleep", "true", "readlink", "grep")) {
            Files.createSymbolicLink(img.resolve("bin/" + a), Path.of("busybox"));
        }
        Files.writeString(img.resolve("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
        Files.writeString(img.resolve("etc/group"), "root:x:0:\n");
        Result r = sh(null, "tar -C " + img + " -cf " + base.resolve("img.tar") + " .");
        assertEquals(0, r.exit(), "tar: " + r.err());
    }

    @AfterAll
    static void restore() throws Exception {
        try {
            if (testUser != null) testUser.close();
            if (havePodman && base != null) {
                TestSupport.run(base, env(), 120, "podman", "rmi", "-f", IMAGE);
                TestSupport.run(base, null, 120, as("podman", "rmi", "-f", IMAGE));
                endPauseProcess();
            }
        } finally {
            if (base != null) {
                TestSupport.assertNoMountUnder(base);
                sh(null, "rm -rf " + base);
            }
        }
    }

    @AfterEach
    void nothingLeft() throws Exception {
        List<String> left = TestSupport.versionfsMounts().stream().map(l -> l.split(" ")[1])
                .filter(m -> m.startsWith(base.toString())).toList();
        for (String m : left) sh(null, "umount -l " + m);
        assertEquals(List.of(), left, "FUSE mounts left behind");
        assertEquals("", userProcesses(), "no process of the test user left (podman's pause process, conmon)");
        if (work != null) {
            try (Stream<Path> s = Files.list(work)) {
                assertEquals(List.of(), s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(".versionfs-")).toList(),
                        "the hidden mount folder is removed");
            }
            assertEquals(List.of(), list(tmp).stream().filter(x -> x.getFileName().toString().startsWith("versionfs-")).toList(),
                    "nothing of versionfs in $TMPDIR: the mount was beside the target");
        }
    }

    // ---- the runtimes, as root and as a user -------------------------------------------------

    @Test
    void chRunAsRoot() throws Exception {
        assumeTrue(haveChRun, "skipped: the charliecloud-runtime package could not be installed");
        folders(false);
        Result r = TestSupport.run(work, rootJob(), 180, vfs(chRun(work, "./job.sh", "rename")));
        assertJobVersioned(r, true, true);
    }

    @Test
    void chRunAsAnOrdinaryUser() throws Exception {
        assumeTrue(haveChRun, "skipped: the charliecloud-runtime package could not be installed");
        folders(true);
        Result r = TestSupport.run(base, null, 180, asIn(work, vfs(chRun(work, "./job.sh", "rename"))));
        assertJobVersioned(r, true, true);
    }

    @Test
    void podmanAsRoot() throws Exception {
        assumeTrue(havePodman, "skipped: the podman or runc package could not be installed");
        folders(false);
        Result r = TestSupport.run(work, rootJob(), 300, vfs(podman(work, "./job.sh", "rename")));
        assertJobVersioned(r, true, true);
    }

    /**
     * Rootless podman starts its pause process inside the job (the user had none on the node):
     * its namespace is made after the mount and has it. The trap is off (no_new_privs would stop
     * newuidmap), said before the job; the pause process is a leftover of the job and ends with it.
     */
    @Test
    void podmanAsAnOrdinaryUser() throws Exception {
        assumeTrue(havePodman, "skipped: the podman or runc package could not be installed");
        folders(true);
        Result r = TestSupport.run(base, null, 300, asIn(work, vfs(podman(work, "./job.sh"))));
        assertJobVersioned(r, false, true);
        assertTrue(r.err().contains("rootless podman maps its user namespace with the setuid newuidmap"), r.err());
        assertEquals("", userProcesses(), "no pause process (nor any other of the user) left");
    }

    /** Directory mode serves the job's folder at its own path: the containers bind that very mount. */
    @Test
    void dirModeWithChRunAndRootlessPodmanAsAnOrdinaryUser() throws Exception {
        assumeTrue(haveChRun && havePodman, "skipped: the charliecloud-runtime or podman package could not be installed");
        folders(true);
        Result r = TestSupport.run(base, null, 180, asIn(work, vfs(List.of("--mode", "dir"), chRun(work, "./job.sh", "rename"))));
        assertJobVersioned(r, true, false);
        sh(null, "rm -rf " + work.resolve("job.gbw.versions") + " " + work.resolve("job.ges") + " && echo start > " + work.resolve("job.gbw")
                + " && chown " + testUser.uid + ":" + testUser.gid + " " + work.resolve("job.gbw"));
        r = TestSupport.run(base, null, 300, asIn(work, vfs(List.of("--mode", "dir"), podman(work, "./job.sh", "rename"))));
        assertJobVersioned(r, true, false);
        assertEquals("", userProcesses(), "the pause process started inside the job ended with it");
    }

    /**
     * Issue 24's silent case: the user ran podman on the node before (its pause process lives on),
     * and '/' is a private mount (each command here in a private mount namespace of its own). The
     * job's container joins the pause process's namespace, made before the mount, and writes the
     * folder underneath. Directory mode: the job ends well and reads back right, versionfs saw no
     * close: it says so before the job (the pause process lacks the mount), at the end (the file on
     * disk is not the last version), and --strict exits 207. Symlink mode: the job cannot open
     * job.gbw (the symlink leads into the hidden folder, empty in that namespace) and fails.
     */
    @Test
    void podmanPauseProcessFromBeforeTheRunIsNeverSilent() throws Exception {
        assumeTrue(havePodman, "skipped: the podman or runc package could not be installed");
        folders(true);
        try {
            Result before = TestSupport.run(base, null, 300, privateNs(as("podman", "run", "--rm", IMAGE, "true")));
            assertEquals(0, before.exit(), before.err());
            long pause = pausePid();
            assertTrue(pause > 0, "the user's pause process runs before the job");

            Result dir = TestSupport.run(base, null, 300, privateNs(asIn(work, vfs(List.of("--strict", "--mode", "dir"), podman(work, "./job.sh")))));
            assertEquals(207, dir.exit(), "the job ended well but its writes went past versionfs: " + dir.err());
            assertTrue(dir.out().contains("iteration 5"), "the job read its last write back: " + dir.out());
            assertTrue(dir.err().contains("rootless podman's pause process (pid " + pause + ") was started before this run"), dir.err());
            assertTrue(dir.err().contains("WRITTEN BEHIND THE MOUNT: " + work.resolve("job.gbw")), dir.err());
            assertEquals("iteration 5\n", Files.readString(work.resolve("job.gbw")), "the job's writes are kept");
            assertEquals(1, manifestVersions(work.resolve("job.gbw.versions")).size(), "only the initial version was seen");

            sh(null, "rm -rf " + work.resolve("job.gbw.versions") + " && echo start > " + work.resolve("job.gbw"));
            Result link = TestSupport.run(base, null, 300, privateNs(asIn(work, vfs(podman(work, "./job.sh")))));
            assertNotEquals(0, link.exit(), "the job cannot reach its file: " + link.err());
            assertTrue(link.err().contains("rootless podman's pause process (pid " + pause + ")"), link.err());
            assertEquals("start\n", Files.readString(work.resolve("job.gbw")));
            assertFalse(Files.isSymbolicLink(work.resolve("job.gbw")));
        } finally {
            endPauseProcess();
        }
        assertEquals("", userProcesses(), "no pause process (nor any other of the user) left");
    }

    // ---- checks ------------------------------------------------------------------------------

    /** Every version against its content and sha256, the final file, the rename held inside the container. */
    private void assertJobVersioned(Result r, boolean renamed, boolean beside) throws Exception {
        assertEquals(0, r.exit(), r.out() + r.err());
        List<String> expected = new ArrayList<>(List.of("start\n"));
        for (int i = 1; i <= (renamed ? 7 : 5); i++) expected.add("iteration " + i + "\n");
        Path v = work.resolve("job.gbw.versions");
        List<Path> files = versions(v, "job", ".gbw");
        List<Map<String, Object>> rows = manifestVersions(v);
        assertEquals(expected.size(), files.size(), "one version per close and the initial one: " + files + "\n" + r.err());
        assertEquals(expected.size(), rows.size(), r.err());
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i), Files.readString(files.get(i)), "version " + (i + 1));
            String want = Sha256.of(files.get(i));
            assertEquals(sha(expected.get(i)), want, "version " + (i + 1) + " is its content");
            assertEquals(want, rows.get(i).get("sha256"), "manifest sha256 of version " + (i + 1));
        }
        assertFalse(Files.isSymbolicLink(work.resolve("job.gbw")));
        assertEquals(expected.get(expected.size() - 1), Files.readString(work.resolve("job.gbw")), "the final file");
        if (renamed) {
            assertFalse(Files.isSymbolicLink(work.resolve("job.ges")));
            assertEquals("iteration 5\n", Files.readString(work.resolve("job.ges")), "renamed away inside the container");
            assertEquals("rename", rows.get(rows.size() - 1).get("reason"), "job.tmp renamed onto job.gbw inside the container");
            assertFalse(Files.exists(work.resolve("job.tmp")));
            if (beside) {
                assertTrue(r.err().contains("held and done for the job: 1 rename(s) onto job.gbw (each a version),"
                        + " 1 rename(s) away (last to job.ges)"), r.err());
            }
        }
        if (beside) assertTrue(r.err().contains("the mount is in " + work + "/.versionfs-"), r.err());
        assertFalse(r.err().contains("WRITTEN BEHIND"), r.err());
        assertTrue(r.out().contains("iteration 5"), "the job read its file back: " + r.out());
    }

    private static String sha(String s) throws Exception {
        Path p = Files.createTempFile("vfs-sha", ".txt");
        try {
            Files.writeString(p, s);
            return Sha256.of(p);
        } finally {
            Files.delete(p);
        }
    }

    // ---- set-up ------------------------------------------------------------------------------

    /** A job folder (the user's or root's) with job.gbw and job.sh, the same path inside the image; and a $TMPDIR. */
    private void folders(boolean user) throws Exception {
        Path t = Files.createTempDirectory(base, "t");
        work = Files.createDirectory(t.resolve("work"));
        tmp = Files.createDirectory(t.resolve("tmp"));
        Files.createDirectories(base.resolve("img").resolve(base.getRoot().relativize(work))); // ch-run binds it there
        Files.writeString(work.resolve("job.gbw"), "start\n");
        Files.writeString(work.resolve("job.sh"), String.join("\n",
                "#!/bin/sh",
                "# rewrites job.gbw five times, reading each back; with 'rename' then renames it away, writes a sixth, saves a seventh by rename",
                "for i in 1 2 3 4 5; do",
                "  echo \"iteration $i\" > job.gbw || exit 3",
                "  [ \"$(cat job.gbw)\" = \"iteration $i\" ] || exit 4",
                "done",
                "cat job.gbw",
                "if [ \"$1\" = rename ]; then",
                "  mv job.gbw job.ges || exit 5",
                "  echo 'iteration 6' > job.gbw || exit 6",
                "  echo 'iteration 7' > job.tmp && mv job.tmp job.gbw || exit 7 # an atomic save onto the target",
                "fi",
                ""));
        Files.setPosixFilePermissions(work.resolve("job.sh"), PosixFilePermissions.fromString("rwxr-xr-x"));
        for (Path p : List.of(t, work, tmp, work.resolve("job.gbw"), work.resolve("job.sh"))) {
            if (!Files.isDirectory(p)) continue;
            Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
        if (user) {
            testUser.own(t, work, tmp, work.resolve("job.gbw"), work.resolve("job.sh"));
        }
    }

    private static List<String> chRun(Path work, String... job) {
        List<String> c = new ArrayList<>(List.of("ch-run", "-b", work.toString(), "-c", work.toString(), base.resolve("img").toString(), "--"));
        c.addAll(List.of(job));
        return c;
    }

    private static List<String> podman(Path work, String... job) {
        List<String> c = new ArrayList<>(List.of("podman", "run", "--rm", "-v", work + ":" + work, "-w", work.toString(), IMAGE));
        c.addAll(List.of(job));
        return c;
    }

    private static String[] vfs(List<String> command) {
        return vfs(List.of(), command);
    }

    private static String[] vfs(List<String> options, List<String> command) {
        List<String> c = new ArrayList<>(List.of(base.resolve("bin/versionfs").toString(), "run"));
        c.addAll(options);
        c.addAll(List.of("--target", "job.gbw", "--"));
        c.addAll(command);
        return c.toArray(String[]::new);
    }

    /** The environment of a job: its own $TMPDIR, our containers.conf, no Slurm. */
    private static Map<String, String> env() {
        Map<String, String> e = new java.util.HashMap<>();
        e.put("USER", "root");
        e.put("CONTAINERS_CONF", base.resolve("containers.conf").toString());
        e.put("VERSIONFS_JAR", base.resolve("versionfs.jar").toString());
        e.put("XDG_RUNTIME_DIR", null);
        for (String s : List.of("SLURM_JOB_ID", "SLURM_JOB_NUM_NODES", "SLURM_NNODES", "SLURM_TMPDIR")) e.put(s, null);
        return e;
    }

    /** {@code cmd} as the test user (its own HOME and podman storage; no XDG_RUNTIME_DIR, as in a batch job). */
    private static String[] as(String... cmd) {
        List<String> all = new ArrayList<>(List.of("runuser", "-u", USER, "--", "env", "-u", "XDG_RUNTIME_DIR",
                "HOME=/home/" + USER, "USER=" + USER, "CONTAINERS_CONF=" + base.resolve("containers.conf"),
                "VERSIONFS_JAR=" + base.resolve("versionfs.jar"), "SLURM_JOB_ID=", "SLURM_JOB_NUM_NODES=", "SLURM_NNODES=", "SLURM_TMPDIR="));
        all.addAll(List.of(cmd));
        return all.toArray(String[]::new);
    }

    /** {@code cmd} as the test user in {@code work}, with $TMPDIR the test's. */
    private String[] asIn(Path work, String... cmd) {
        List<String> all = new ArrayList<>(List.of("sh", "-c", "cd \"$0\" && t=\"$1\" && shift && exec env TMPDIR=\"$t\" \"$@\"",
                work.toString(), tmp.toString()));
        all.addAll(List.of(cmd));
        return as(all.toArray(String[]::new));
    }

    /** The environment of a job run as root: the test's $TMPDIR. */
    private Map<String, String> rootJob() {
        Map<String, String> e = env();
        e.put("TMPDIR", tmp.toString());
        return e;
    }

    /** Root makes a private mount namespace ('/' not shared) and runs {@code cmd} in it. */
    private static String[] privateNs(String... cmd) {
        List<String> all = new ArrayList<>(List.of("unshare", "-m", "--propagation", "private"));
        all.addAll(List.of(cmd));
        return all.toArray(String[]::new);
    }

    /** The test user's podman pause process (its name, its owner), -1 if none is alive. */
    private static long pausePid() throws Exception {
        Result r = sh(null, "pgrep -u " + USER + " -x 'podman pause'");
        return r.exit() == 0 ? Long.parseLong(r.out().trim().split("\\s+")[0]) : -1;
    }

    /** Every process of the test user (none may outlive a run: not podman's pause process, not conmon). */
    private static String userProcesses() throws Exception {
        return sh(null, "pgrep -a -u " + USER + " || true").out().trim();
    }

    /** Ends the test user's pause process (only that one: its pid from its own pid file). */
    private static void endPauseProcess() throws Exception {
        long pid = pausePid();
        if (pid > 0) sh(null, "kill " + pid);
        for (int i = 0; i < 100 && pausePid() > 0; i++) Thread.sleep(50); // bounded: 5 s
    }

    private static Result sh(Path cwd, String script) throws Exception {
        return TestSupport.run(cwd == null ? TestSupport.PROJECT : cwd, null, 120, "sh", "-c", script);
    }

    private static boolean onPath(String program) throws Exception {
        return sh(null, "command -v " + program).exit() == 0;
    }

    private static List<Path> list(Path p) throws Exception {
        try (Stream<Path> s = Files.list(p)) {
            return s.filter(x -> !x.getFileName().toString().startsWith("versionfs-jar.")).toList();
        }
    }
}
