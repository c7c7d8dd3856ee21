package io.versionfs.slurm;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.CleanupMode;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * End-to-end: real sbatch jobs built from the templates in {@code slurm/}, on a real one-node Slurm
 * that this class starts (slurm/test/slurm-up.sh) and always stops (slurm/test/slurm-down.sh).
 * The "program" is examples/blackbox.sh, a multi-process writer that overwrites its output file
 * every iteration; versionfs is found through PATH (the project's bin/ is put first on the job's
 * PATH), exactly as the templates tell users to set it up.
 *
 * <p>Every job gets its own folder and TMPDIR, so versionfs's mount point lands under the test's
 * folder: "no mount left" is checked for that folder (other FUSE tests may run on the same machine
 * at the same time and have live mounts of their own).
 *
 * <p>The test cluster uses KillWait=5: versionfs must stop its job, save, unmount and restore the
 * target within 5 s of Slurm's TERM, or Slurm's KILL shows (ExitCode 0:9, a stale mount, a symlink
 * left at the target). Timings: the time-limit case waits for Slurm's time-limit check, which runs
 * every 30 s, so it takes 60-90 s; the USR1 case comes 10-40 s after the job starts (see there).
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class SlurmIT {
    private static final Path ROOT = Path.of("").toAbsolutePath();
    private static final Path BLACKBOX = ROOT.resolve("examples/blackbox.sh");
    private static final Pattern HEADER = Pattern.compile("iteration (\\d+) written by rank \\d+ pid \\d+");

    @TempDir(cleanup = CleanupMode.ON_SUCCESS)
    static Path base;

    private static LocalSlurm slurm;
    private static Path jar;
    private static java.nio.channels.FileChannel clusterLock;
    private static volatile boolean downDone;
    private static Thread shutdownHook;

    @BeforeAll
    static void startSlurm() {
        Assumptions.assumeTrue(isRoot(),
                "SlurmIT needs root: it installs and starts slurmctld/slurmd and mounts FUSE in jobs (skipped for "
                        + System.getProperty("user.name") + ")");
        assertTrue(Files.isRegularFile(ROOT.resolve("slurm/test/slurm-up.sh")),
                "run from the project root (Maven does): slurm/test/slurm-up.sh not found under " + ROOT);
        assertTrue(Files.isRegularFile(ROOT.resolve("target/versionfs.jar")),
                "target/versionfs.jar is missing: SlurmIT runs in 'mvn verify', after 'package'");
        clusterLock = LocalSlurm.lock(Duration.ofMinutes(15));
        // Stop Slurm even if the JVM is interrupted (Ctrl-C on mvn) before @AfterAll runs.
        shutdownHook = new Thread(SlurmIT::stopSlurmOnce, "slurm-down");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
        // Jobs run the jar this build made, from a private copy (through the launcher's
        // VERSIONFS_JAR): another 'mvn package' in the same checkout during these minutes rewrites
        // target/versionfs.jar, and a JVM running from the rewritten jar fails to load its classes.
        try {
            jar = Files.copy(ROOT.resolve("target/versionfs.jar"), base.resolve("versionfs.jar"));
        } catch (IOException e) {
            throw new AssertionError("cannot copy target/versionfs.jar", e);
        }
        long t0 = System.nanoTime();
        slurm = LocalSlurm.up(ROOT);
        log("slurm-up.sh: " + secs(t0) + ", SLURM_CONF=" + slurm.slurmConf);
    }

    @AfterAll
    static void stopSlurm() {
        if (shutdownHook == null) return; // skipped (not root) or no lock: this run started nothing
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException e) {
            // already shutting down: the hook runs it
        }
        try {
            stopSlurmOnce();
        } finally {
            try {
                clusterLock.close(); // releases the lock: the next test run may start its cluster
            } catch (IOException e) {
                log("closing the cluster lock: " + e);
            }
        }
        // After everything: no versionfs mount anywhere under this class's folders.
        assertEquals(List.of(), versionfsMountsUnder(base), "versionfs mounts left after slurm-down");
    }

    private static synchronized void stopSlurmOnce() {
        if (downDone) return;
        downDone = true;
        long t0 = System.nanoTime();
        log(LocalSlurm.down(ROOT).strip() + " (" + secs(t0) + ")");
    }

    // ---- the cases ----------------------------------------------------------------------------

    /** orca.sbatch, program runs to the end: every version captured, job.gbw a regular file. */
    @Test
    @Order(1)
    void jobCompletesWithEveryVersion(TestInfo info) throws Exception {
        Job job = new Job(info);
        int iterations = 8;
        JobScript script = JobScript.fromTemplate(ROOT, "orca.sbatch")
                .directive("--ntasks", "1")
                .directive("--time", "5")
                .replace("/full/path/orca job.inp", BLACKBOX + " job.gbw " + iterations + " 2 32");
        String id = job.submit(script);
        LocalSlurm.JobInfo end = slurm.waitFinal(id, Duration.ofSeconds(120)).get(0);
        String log = job.read("orca-" + id + ".slurm.log");
        job.note("job " + id + " " + end.state() + " ExitCode=" + end.exitCode() + " RunTime=" + end.get("RunTime"));

        assertEquals("COMPLETED", end.state(), () -> end + "\n" + log);
        assertEquals("0:0", end.exitCode(), () -> end + "\n" + log);
        assertTrue(log.contains("summary"), () -> "no versionfs summary in the Slurm log:\n" + log);
        assertTrue(job.read("job.out").contains("blackbox: " + iterations + " iterations"),
                () -> "program output (job.out, redirected by the template) is not the program's: " + job.read("job.out"));
        List<Row> versions = checkVersions(job.dir.resolve("job.gbw.versions"), "job.gbw");
        assertEquals(iterations, versions.size(), () -> "one version per iteration expected: " + versions + "\n" + log);
        for (Row v : versions) assertEquals("close", v.reason, () -> "reason of " + v);
        checkTarget(job.dir.resolve("job.gbw"), versions);
        job.checkNothingLeft();
    }

    /** generic.sbatch, scancel while the program writes: forwarded, cleaned up inside KillWait. */
    @Test
    @Order(2)
    void scancelStopsCleanlyInsideKillWait(TestInfo info) throws Exception {
        Job job = new Job(info);
        JobScript script = JobScript.fromTemplate(ROOT, "generic.sbatch")
                .directive("--time", "10")
                .replace("/full/path/to/program --its arguments", BLACKBOX + " results.dat 1000000 2 16");
        String id = job.submit(script);
        slurm.waitRunning(id, Duration.ofSeconds(60));
        job.awaitMountAndVersions(id, job.dir.resolve("results.dat.versions"), 3, Duration.ofSeconds(60));

        long cancelledAt = System.nanoTime();
        slurm.scancel(id);
        LocalSlurm.JobInfo end = slurm.waitFinal(id, Duration.ofSeconds(60)).get(0);
        String stopTime = secs(cancelledAt);
        String log = job.read("versioned-" + id + ".slurm.log");
        job.note("job " + id + " " + end.state() + " ExitCode=" + end.exitCode() + ", final state " + stopTime
                + " after scancel");

        assertEquals("CANCELLED", end.state(), () -> end + "\n" + log);
        // versionfs exited by itself with the job's status (128+SIGTERM); had Slurm's KILL after
        // KillWait ended it, the exit code would be 0:9.
        assertEquals("143:0", end.exitCode(), () -> "versionfs did not exit by itself: " + end + "\n" + log);
        assertTrue(log.contains("received SIGTERM"), () -> "versionfs did not report the TERM:\n" + log);
        assertTrue(log.contains("summary"), () -> "no versionfs summary in the Slurm log:\n" + log);
        List<Row> versions = checkVersions(job.dir.resolve("results.dat.versions"), "results.dat");
        assertTrue(versions.size() >= 3, () -> "versions captured before scancel are missing: " + versions);
        checkTarget(job.dir.resolve("results.dat"), versions);
        job.checkNothingLeft();
    }

    /**
     * generic.sbatch without the early warning, {@code --time=1}: at the limit Slurm TERMs every
     * process of the job at once; versionfs must clean up within KillWait. The shortest Slurm time
     * limit is one minute, and slurmctld checks limits every 30 s: this case takes 60-90 s.
     */
    @Test
    @Order(3)
    void timeLimitStopsCleanlyInsideKillWait(TestInfo info) throws Exception {
        Job job = new Job(info);
        JobScript script = JobScript.fromTemplate(ROOT, "generic.sbatch")
                .directive("--time", "1")
                .withoutDirective("--signal")
                .replace("/full/path/to/program --its arguments", BLACKBOX + " results.dat 1000000 2 16");
        String id = job.submit(script);
        slurm.waitRunning(id, Duration.ofSeconds(60));
        job.awaitMountAndVersions(id, job.dir.resolve("results.dat.versions"), 3, Duration.ofSeconds(60));
        LocalSlurm.JobInfo end = slurm.waitFinal(id, Duration.ofSeconds(150)).get(0);
        String log = job.read("versioned-" + id + ".slurm.log");
        job.note("job " + id + " " + end.state() + " ExitCode=" + end.exitCode() + " RunTime=" + end.get("RunTime"));

        assertEquals("TIMEOUT", end.state(), () -> end + "\n" + log);
        assertTrue(log.contains("DUE TO TIME LIMIT"), () -> "Slurm did not report the time limit:\n" + log);
        assertTrue(end.runSeconds() >= 60, () -> "ended before its time limit: " + end);
        assertEquals("143:0", end.exitCode(), () -> "versionfs did not exit by itself: " + end + "\n" + log);
        assertTrue(log.contains("received SIGTERM"), () -> "versionfs did not report the TERM:\n" + log);
        assertTrue(log.contains("summary"), () -> "no versionfs summary in the Slurm log:\n" + log);
        List<Row> versions = checkVersions(job.dir.resolve("results.dat.versions"), "results.dat");
        checkTarget(job.dir.resolve("results.dat"), versions);
        job.checkNothingLeft();
    }

    /**
     * orca.sbatch's {@code --signal=B:USR1@N} early warning, with {@code --time=1} and N=20.
     * slurmctld sends the warning at its first periodic check (every 30 s) at which
     * now >= end - N - 30, i.e. 10-40 s after the start and always 20+ s before the limit: late
     * enough that versionfs runs and the program has written versions, early enough to be robust.
     * versionfs forwards USR1, blackbox.sh (like most programs) dies of it, and the job ends FAILED
     * with 138 = 128+USR1 before its limit, with everything cleaned up.
     */
    @Test
    @Order(4)
    void earlyWarningUsr1StopsCleanlyBeforeTheLimit(TestInfo info) throws Exception {
        Job job = new Job(info);
        JobScript script = JobScript.fromTemplate(ROOT, "orca.sbatch")
                .directive("--ntasks", "1")
                .directive("--time", "1")
                .directive("--signal", "B:USR1@20")
                .replace("/full/path/orca job.inp", BLACKBOX + " job.gbw 1000000 2 16");
        String id = job.submit(script);
        slurm.waitRunning(id, Duration.ofSeconds(60));
        job.awaitMountAndVersions(id, job.dir.resolve("job.gbw.versions"), 1, Duration.ofSeconds(60));
        LocalSlurm.JobInfo end = slurm.waitFinal(id, Duration.ofSeconds(150)).get(0);
        String log = job.read("orca-" + id + ".slurm.log");
        job.note("job " + id + " " + end.state() + " ExitCode=" + end.exitCode() + " RunTime=" + end.get("RunTime"));

        assertFalse(log.contains("DUE TO TIME LIMIT"), () -> "the job ran into its time limit:\n" + log);
        assertTrue(log.contains("received SIGUSR1"), () -> "versionfs did not get the USR1 warning:\n" + log);
        assertEquals("FAILED", end.state(), () -> end + "\n" + log);
        assertEquals("138:0", end.exitCode(), () -> "expected the program's death by USR1 (138): " + end + "\n" + log);
        assertTrue(end.runSeconds() < 60, () -> "did not stop before the limit: " + end);
        assertTrue(log.contains("summary"), () -> "no versionfs summary in the Slurm log:\n" + log);
        List<Row> versions = checkVersions(job.dir.resolve("job.gbw.versions"), "job.gbw");
        checkTarget(job.dir.resolve("job.gbw"), versions);
        job.checkNothingLeft();
    }

    /** array.sbatch with --array=1-3: three tasks, three separate versions folders. */
    @Test
    @Order(5)
    void arrayOfThreeGivesThreeVersionsFolders(TestInfo info) throws Exception {
        Job job = new Job(info);
        JobScript script = JobScript.fromTemplate(ROOT, "array.sbatch")
                .directive("--array", "1-3")
                .directive("--ntasks", "1")
                .directive("--time", "5")
                // task N writes N+2 versions, so folders cannot be confused with one another
                .replace("/full/path/orca \"$name.inp\"", BLACKBOX + " \"$name.gbw\" $((task + 2)) 2 16");
        String id = job.submit(script);
        List<LocalSlurm.JobInfo> tasks = slurm.waitFor(id, "finished (3 tasks)", Duration.ofSeconds(180),
                l -> l.size() == 3 && l.stream().allMatch(LocalSlurm.JobInfo::isFinal));
        job.note("array " + id + ": " + tasks.stream().map(t -> t.get("ArrayTaskId") + "=" + t.state() + " "
                + t.exitCode()).collect(Collectors.joining(", ")));

        Set<String> taskIds = new TreeSet<>();
        for (LocalSlurm.JobInfo t : tasks) {
            String n = t.get("ArrayTaskId");
            taskIds.add(n);
            String log = job.read("orca-array-" + id + "_" + n + ".slurm.log");
            assertEquals("COMPLETED", t.state(), () -> t + "\n" + log);
            assertEquals("0:0", t.exitCode(), () -> t + "\n" + log);
            assertEquals(id, t.get("ArrayJobId"));
            assertTrue(log.contains("summary"), () -> "no versionfs summary for task " + n + ":\n" + log);
        }
        assertEquals(Set.of("1", "2", "3"), taskIds);

        Path versionsRoot = job.dir.resolve("versions");
        List<String> folders;
        try (Stream<Path> s = Files.list(versionsRoot)) {
            folders = s.map(p -> p.getFileName().toString()).sorted().toList();
        }
        assertEquals(List.of(id + "_1", id + "_2", id + "_3"), folders, "one versions folder per task");
        for (int n = 1; n <= 3; n++) {
            String name = "job_" + n + ".gbw";
            Path vdir = versionsRoot.resolve(id + "_" + n);
            List<Row> versions = checkVersions(vdir, name);
            int expected = n + 2;
            assertEquals(expected, versions.size(), "task " + n + " versions: " + versions);
            String own = "job_" + n + ".";
            try (Stream<Path> s = Files.list(vdir)) {
                List<String> strangers = s.map(p -> p.getFileName().toString())
                        .filter(f -> !f.startsWith(own) && !f.equals("manifest.jsonl") && !f.equals(".versionfs"))
                        .toList();
                assertEquals(List.of(), strangers, "files of other tasks in task " + n + "'s folder");
            }
            checkTarget(job.dir.resolve(name), versions);
        }
        job.checkNothingLeft();
    }

    // ---- one job's folder ---------------------------------------------------------------------

    /** A fresh folder (the submit folder) with its own TMPDIR, for one test's job. */
    private static final class Job {
        final String name;
        final Path dir;
        final Path tmp;
        final Map<String, String> env;

        Job(TestInfo info) throws IOException {
            this.name = info.getTestMethod().orElseThrow().getName();
            this.dir = Files.createDirectories(base.resolve(name));
            this.tmp = Files.createDirectories(dir.resolve("tmp"));
            this.env = slurm.jobEnv(tmp);
            env.put("VERSIONFS_JAR", jar.toString());
        }

        String submit(JobScript script) {
            Path p = script.writeTo(dir, "job.sbatch");
            String id = slurm.sbatch(dir, env, p);
            note("submitted job " + id + ": " + script.execLine());
            return id;
        }

        String read(String file) {
            try {
                return Files.readString(dir.resolve(file), StandardCharsets.UTF_8);
            } catch (IOException e) {
                return "(cannot read " + dir.resolve(file) + ": " + e + ")";
            }
        }

        /** Every Slurm log (*.slurm.log) in the job's folder, for failure messages. */
        String logs() {
            try (Stream<Path> s = Files.list(dir)) {
                return s.filter(p -> p.getFileName().toString().endsWith(".slurm.log")).sorted()
                        .map(p -> "--- " + p.getFileName() + " ---\n" + read(p.getFileName().toString()))
                        .collect(Collectors.joining("\n"));
            } catch (IOException e) {
                return "(cannot list " + dir + ")";
            }
        }

        void note(String s) {
            log(name + ": " + s);
        }

        /**
         * Waits until versionfs has mounted under this job's TMPDIR (so the later "no mount left"
         * check is about a mount that existed) and the manifest lists {@code minVersions}.
         */
        void awaitMountAndVersions(String id, Path vdir, int minVersions, Duration timeout) throws IOException {
            long t0 = System.nanoTime();
            long deadline = t0 + timeout.toNanos();
            while (true) {
                boolean mounted = !versionfsMountsUnder(tmp).isEmpty();
                int n = manifestVersionLines(vdir);
                if (mounted && n >= minVersions) {
                    note("mount under TMPDIR seen, " + n + " versions after " + secs(t0));
                    return;
                }
                List<LocalSlurm.JobInfo> now = slurm.show(id);
                if (now.stream().allMatch(LocalSlurm.JobInfo::isFinal)) {
                    fail("job " + id + " ended before it was mounted with " + minVersions + " versions (mounted=" + mounted
                            + ", versions=" + n + "): " + now + "\n" + logs() + slurm.logTails());
                }
                if (System.nanoTime() > deadline) {
                    fail("job " + id + ": no mount under " + tmp + " with " + minVersions + " versions after "
                            + timeout.toSeconds() + " s (mounted=" + mounted + ", versions=" + n + ")\n" + logs());
                }
                LocalSlurm.sleep(100);
            }
        }

        /** No versionfs mount under this job's folder and no process of the job left. */
        void checkNothingLeft() throws IOException {
            assertEquals(List.of(), versionfsMountsUnder(dir), "versionfs mounts left by the job");
            // Every process of the job has our TMPDIR in its environment; give the kernel a moment
            // to finish reaping, then none may remain.
            String marker = "TMPDIR=" + tmp;
            List<String> left = List.of();
            for (int i = 0; i < 40; i++) {
                left = processesWithEnv(marker);
                if (left.isEmpty()) break;
                LocalSlurm.sleep(250);
            }
            assertEquals(List.of(), left, "processes of the job still running 10 s after it ended");
            try (Stream<Path> s = Files.list(tmp)) {
                List<String> mountDirs = s.map(p -> p.getFileName().toString()).filter(f -> f.startsWith("versionfs-")).toList();
                assertEquals(List.of(), mountDirs, "versionfs's private mount folder was not removed from " + tmp);
            }
        }
    }

    // ---- checks on what versionfs left --------------------------------------------------------

    /** A version line of manifest.jsonl (the fields the tests need). */
    record Row(long version, String file, String path, long size, String sha256, String reason, String status, String line) {
        @Override
        public String toString() {
            return "#" + version + " " + path + " " + size + "B " + reason + " " + status;
        }
    }

    private static int manifestVersionLines(Path vdir) throws IOException {
        Path m = vdir.resolve("manifest.jsonl");
        if (!Files.exists(m)) return 0;
        return (int) Files.readAllLines(m).stream().filter(l -> l.contains("\"version\":")).count();
    }

    private static String str(String line, String key) {
        Matcher m = Pattern.compile("\"" + key + "\":\"((?:[^\"\\\\]|\\\\.)*)\"").matcher(line);
        return m.find() ? m.group(1) : null;
    }

    private static Long num(String line, String key) {
        Matcher m = Pattern.compile("\"" + key + "\":(-?\\d+)").matcher(line);
        return m.find() ? Long.parseLong(m.group(1)) : null;
    }

    /**
     * Checks the versions folder of {@code fileName} as a user would rely on it: every manifest
     * line is whole JSON; versions are numbered 1..N without gap; each is saved, its file exists
     * with the recorded size and SHA-256; no version file exists that the manifest does not list;
     * and a version closed by the program holds that iteration's content. Returns them in order.
     */
    private static List<Row> checkVersions(Path vdir, String fileName) throws IOException {
        Path manifest = vdir.resolve("manifest.jsonl");
        assertTrue(Files.isRegularFile(manifest), "no manifest " + manifest);
        List<Row> rows = new ArrayList<>();
        for (String line : Files.readAllLines(manifest, StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            assertTrue(line.startsWith("{") && line.endsWith("}"), "manifest line is not one JSON object: " + line);
            if (num(line, "version") == null) continue; // an event line (run start/end, recovery)
            Long size = num(line, "size");
            Row r = new Row(num(line, "version"), str(line, "file"), str(line, "path"), size == null ? -1 : size,
                    str(line, "sha256"), str(line, "reason"), str(line, "status"), line);
            for (String field : List.of("version", "file", "path", "size", "sha256", "time", "pid", "cmdline", "reason", "status")) {
                assertTrue(line.contains("\"" + field + "\":"), "manifest line without '" + field + "': " + line);
            }
            assertEquals(fileName, r.file, "manifest line of another file in " + vdir + ": " + line);
            rows.add(r);
        }
        rows.sort(Comparator.comparingLong(Row::version));
        assertFalse(rows.isEmpty(), "no versions of " + fileName + " in " + manifest);
        for (int i = 0; i < rows.size(); i++) {
            Row r = rows.get(i);
            assertEquals(i + 1, r.version, "versions are not numbered 1..N without gaps or duplicates: " + rows);
            assertEquals("saved", r.status, "version not saved: " + r.line);
            Path f = vdir.resolve(r.path);
            assertTrue(Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS), "version file missing: " + f + " (" + r.line + ")");
            byte[] content = Files.readAllBytes(f);
            assertEquals(r.size, content.length, "size of " + f + " differs from the manifest");
            assertEquals(r.sha256, sha256(content), "SHA-256 of " + f + " differs from the manifest");
            if ("close".equals(r.reason)) {
                // blackbox.sh writes iteration i as the i-th version: header "iteration i written by rank ..."
                String header = firstLine(content);
                Matcher m = HEADER.matcher(header);
                assertTrue(m.lookingAt(), "version " + r.version + " is not a whole blackbox iteration: '" + header + "'");
                assertEquals(r.version, Long.parseLong(m.group(1)), "version " + r.version + " holds " + header);
            }
        }
        Pattern versionFile = versionFilePattern(fileName);
        Set<String> onDisk;
        try (Stream<Path> s = Files.list(vdir)) {
            onDisk = s.map(p -> p.getFileName().toString()).filter(n -> versionFile.matcher(n).matches())
                    .collect(Collectors.toCollection(TreeSet::new));
        }
        assertEquals(rows.stream().map(Row::path).collect(Collectors.toCollection(TreeSet::new)), onDisk,
                "version files on disk and manifest lines differ in " + vdir);
        return rows;
    }

    private static Pattern versionFilePattern(String fileName) {
        int dot = fileName.lastIndexOf('.');
        String stem = dot > 0 ? fileName.substring(0, dot) : fileName;
        String ext = dot > 0 ? fileName.substring(dot) : "";
        return Pattern.compile(Pattern.quote(stem) + "\\.\\d{6,}" + Pattern.quote(ext));
    }

    /** The target is a regular file again (not the run's symlink) holding the last version's content. */
    private static void checkTarget(Path target, List<Row> versions) throws IOException {
        assertFalse(Files.isSymbolicLink(target), target + " is still a symlink (versionfs did not restore it)");
        assertTrue(Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS), target + " is not a regular file");
        Row last = versions.get(versions.size() - 1);
        assertEquals(last.sha256, sha256(Files.readAllBytes(target)),
                target + " does not hold the last version's content (" + last + ")");
    }

    // ---- the machine: mounts and processes ----------------------------------------------------

    /** Mount points of type fuse.versionfs at or under {@code dir}, from /proc/mounts. */
    static List<String> versionfsMountsUnder(Path dir) {
        String prefix = dir.toAbsolutePath().normalize().toString();
        try {
            return Files.readAllLines(Path.of("/proc/mounts")).stream()
                    .map(l -> l.split(" "))
                    .filter(f -> f.length > 2 && f[2].equals("fuse.versionfs"))
                    .map(f -> unescapeMount(f[1]))
                    .filter(m -> m.equals(prefix) || m.startsWith(prefix + "/"))
                    .toList();
        } catch (IOException e) {
            throw new AssertionError("cannot read /proc/mounts", e);
        }
    }

    private static String unescapeMount(String s) {
        Matcher m = Pattern.compile("\\\\([0-7]{3})").matcher(s);
        StringBuilder b = new StringBuilder();
        while (m.find()) m.appendReplacement(b, Matcher.quoteReplacement(String.valueOf((char) Integer.parseInt(m.group(1), 8))));
        m.appendTail(b);
        return b.toString();
    }

    /** Processes (pid and command line) whose environment contains the entry {@code entry}. */
    static List<String> processesWithEnv(String entry) {
        List<String> found = new ArrayList<>();
        byte[] want = (entry + "\0").getBytes(StandardCharsets.UTF_8);
        try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.filter(p -> p.getFileName().toString().matches("\\d+")).toList()) {
                try {
                    byte[] env = Files.readAllBytes(p.resolve("environ"));
                    if (indexOf(env, want) < 0) continue;
                    String stat = Files.readString(p.resolve("stat"));
                    if (stat.substring(stat.lastIndexOf(')') + 2).startsWith("Z")) continue; // zombie: already dead
                    String cmd = new String(Files.readAllBytes(p.resolve("cmdline")), StandardCharsets.UTF_8).replace('\0', ' ');
                    found.add(p.getFileName() + " " + cmd.strip());
                } catch (IOException e) {
                    // gone meanwhile, or a kernel thread
                }
            }
        } catch (IOException e) {
            throw new AssertionError("cannot list /proc", e);
        }
        return found;
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        // entries are NUL-separated: match at the start or right after a NUL
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            if (i > 0 && hay[i - 1] != 0) continue;
            for (int j = 0; j < needle.length; j++) if (hay[i + j] != needle[j]) continue outer;
            return i;
        }
        return -1;
    }

    // ---- small helpers ------------------------------------------------------------------------

    private static boolean isRoot() {
        try {
            return Files.readAllLines(Path.of("/proc/self/status")).stream()
                    .anyMatch(l -> l.matches("Uid:\\s+0\\s.*"));
        } catch (IOException e) {
            return "root".equals(System.getProperty("user.name"));
        }
    }

    private static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    private static String firstLine(byte[] b) {
        int nl = 0;
        while (nl < b.length && nl < 200 && b[nl] != '\n') nl++;
        return new String(b, 0, nl, StandardCharsets.UTF_8);
    }

    private static String secs(long t0) {
        return String.format("%.1f s", (System.nanoTime() - t0) / 1e9);
    }

    private static void log(String s) {
        System.out.println("[SlurmIT] " + s);
        System.out.flush();
    }
}
