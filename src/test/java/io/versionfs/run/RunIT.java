package io.versionfs.run;

import io.versionfs.Await;
import io.versionfs.TestSupport;
import io.versionfs.fs.MountTable;
import io.versionfs.TestSupport.Result;
import io.versionfs.text.Json;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.versionfs.TestSupport.manifestVersions;
import static io.versionfs.TestSupport.versions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code versionfs run} end to end, through the real launcher, with real child processes. */
class RunIT {
    @TempDir
    Path dir;

    /** Private mount folders go to $TMPDIR: keep them inside this test's folder, so we check only ours. */
    private Map<String, String> tmpEnv() throws Exception {
        Path t = dir.resolve("tmp");
        Files.createDirectories(t);
        return Map.of("TMPDIR", t.toString());
    }

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    private Result vfs(String... args) throws Exception {
        return vfsEnv(Map.of(), args);
    }

    private Result vfsEnv(Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(TestSupport.LAUNCHER.toString()));
        cmd.addAll(List.of(args));
        Map<String, String> all = new java.util.HashMap<>(tmpEnv());
        all.putAll(env);
        return TestSupport.run(dir, all, 180, cmd.toArray(String[]::new));
    }

    private ProcessBuilder launcher(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(TestSupport.LAUNCHER.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        pb.environment().putAll(tmpEnv());
        return pb;
    }

    private static void assertRegularFile(Path p, String content) throws Exception {
        assertFalse(Files.isSymbolicLink(p), p + " must be a regular file again, not a symlink");
        assertTrue(Files.isRegularFile(p), p + " exists");
        assertEquals(content, Files.readString(p));
    }

    private static void assertOneLineError(Result r, int code, String mustContain) {
        assertEquals(code, r.exit(), "exit code; stderr: " + r.err());
        assertTrue(r.err().contains("versionfs: error: "), r.err());
        assertTrue(r.err().contains(mustContain), "message names the cause: " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    @Test
    void exitCodesOfTheJobPassThrough() throws Exception {
        Result ok = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "echo one > job.gbw; echo two > job.gbw");
        assertEquals(0, ok.exit(), ok.err());
        assertRegularFile(dir.resolve("job.gbw"), "two\n");
        assertEquals(2, versions(dir.resolve("job.gbw.versions"), "job", ".gbw").size());
        assertTrue(ok.err().contains("exit 0"), ok.err());

        Result seven = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "echo three > job.gbw; exit 7");
        assertEquals(7, seven.exit(), seven.err());
        assertRegularFile(dir.resolve("job.gbw"), "three\n");

        // sleep 5 is never reached: the shell dies of its own TERM first (it only keeps a missed signal from looking like exit 0)
        Result killed = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "echo four > job.gbw; kill -TERM $$; sleep 5");
        assertEquals(128 + 15, killed.exit(), killed.err());
        assertTrue(killed.err().contains("killed by SIGTERM"), killed.err());
        assertRegularFile(dir.resolve("job.gbw"), "four\n");
        // initial(one..) + 2 + initial + 1 + initial + 1: the earlier runs' versions are all kept
        List<Map<String, Object>> rows = manifestVersions(dir.resolve("job.gbw.versions"));
        assertEquals(List.of("close", "close", "initial", "close", "initial", "close"),
                rows.stream().map(m -> m.get("reason")).toList());
    }

    @Test
    void aVersionWhoseFileWasRemovedKeepsItsNumber() throws Exception {
        // Someone removes the newest version file by hand between two runs (or it was given way
        // or lost): its manifest line stays, so the next run must not give its number again.
        Files.writeString(dir.resolve("job.gbw"), "zero\n");
        Result first = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "echo one > job.gbw; echo two > job.gbw");
        assertEquals(0, first.exit(), first.err());
        Path vdir = dir.resolve("job.gbw.versions");
        assertEquals(3, versions(vdir, "job", ".gbw").size());
        Files.delete(vdir.resolve("job.000003.gbw"));
        Result second = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "echo three > job.gbw");
        assertEquals(0, second.exit(), second.err());
        List<Object> numbers = manifestVersions(vdir).stream().map(m -> m.get("version")).toList();
        assertEquals(numbers.size(), new java.util.HashSet<>(numbers).size(), "each number on one line: " + numbers);
        assertEquals("three\n", Files.readString(vdir.resolve("job.000005.gbw")), "after 4, the second run's initial version");
    }

    @Test
    void existingTargetIsReadByTheJobAndKeptAsVersionOne() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "original orbitals");
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "cat job.gbw > seen.txt; echo new > job.gbw");
        assertEquals(0, r.exit(), r.err());
        assertEquals("original orbitals", Files.readString(dir.resolve("seen.txt")));
        List<Path> vs = versions(dir.resolve("job.gbw.versions"), "job", ".gbw");
        assertEquals("original orbitals", Files.readString(vs.get(0)));
        assertEquals("new\n", Files.readString(vs.get(1)));
        assertRegularFile(dir.resolve("job.gbw"), "new\n");
    }

    @Test
    void existingTargetEditedInPlaceNeverChangesItsInitialVersion() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "0123456789".repeat(100_000));
        Result r = vfs("run", "--target", "job.gbw", "--", "python3", TestSupport.FSOPS.toString(),
                "overwrite-middle", "job.gbw", "EDITED", "500000");
        assertEquals(0, r.exit(), r.err());
        List<Path> vs = versions(dir.resolve("job.gbw.versions"), "job", ".gbw");
        assertEquals(2, vs.size());
        assertEquals("0123456789".repeat(100_000), Files.readString(vs.get(0)), "the user's original is untouched");
        String edited = Files.readString(vs.get(1));
        assertEquals("EDITED", edited.substring(500000, 500006));
        assertRegularFile(dir.resolve("job.gbw"), edited);
        assertEquals(1, Files.getAttribute(dir.resolve("job.gbw"), "unix:nlink"), "the final file shares nothing with a version");
    }

    @Test
    void missingTargetIsCreatedByTheJob() throws Exception {
        Result r = vfs("run", "--json", "--target", "out/result.dat", "--", "sh", "-c", "printf abc > out/result.dat");
        // out/ does not exist: a clear error, nothing touched
        assertOneLineError(r, 202, "does not exist");
        Files.createDirectory(dir.resolve("out"));
        r = vfs("run", "--json", "--target", "out/result.dat", "--", "sh", "-c", "printf abc > out/result.dat");
        assertEquals(0, r.exit(), r.err());
        assertRegularFile(dir.resolve("out/result.dat"), "abc");
        Map<String, Object> json = Json.parseObject(r.out().trim());
        assertEquals("exit 0", json.get("status"));
        @SuppressWarnings("unchecked")
        Map<String, Object> f = ((List<Map<String, Object>>) json.get("files")).get(0);
        assertEquals(dir.resolve("out/result.dat.versions").toString(), f.get("versions_dir"));
        assertEquals(1L, f.get("saved"));
    }

    @Test
    @SuppressWarnings("unchecked")
    void theJsonSummaryHasTheDaemonsOwnCpuTime() throws Exception {
        // A job that keeps the daemon busy for a moment: 200 rewrites, each a version.
        long t0 = System.nanoTime();
        Result r = vfs("run", "--json", "--target", "job.gbw", "--", "sh", "-c",
                "i=0; while [ $i -lt 200 ]; do echo $i > job.gbw; i=$((i+1)); done");
        long wallMillis = (System.nanoTime() - t0) / 1_000_000;
        assertEquals(0, r.exit(), r.err());
        Map<String, Object> cpu = (Map<String, Object>) Json.parseObject(r.out().trim()).get("daemon_cpu");
        long user = (Long) cpu.get("user_ms"), sys = (Long) cpu.get("sys_ms"), total = (Long) cpu.get("total_ms");
        assertEquals(user + sys, total);
        assertTrue(total > 0, "a JVM that mounted and took 200 versions used some CPU: " + cpu);
        // Not a speed limit: CPU time cannot exceed what the cores could give in the time the run took.
        int cores = Runtime.getRuntime().availableProcessors();
        assertTrue(total <= wallMillis * cores, total + " ms of CPU in " + wallMillis + " ms on " + cores + " cores");
        Map<String, Object> threads = (Map<String, Object>) cpu.get("threads_ms");
        assertEquals(List.of("main", "jit", "gc", "fuse", "hasher", "copier", "other"), List.copyOf(threads.keySet()));
        assertEquals(total, threads.values().stream().mapToLong(v -> (Long) v).sum(), "the groups add up: " + threads);
        assertTrue(r.err().contains("versionfs: cpu:"), "and one human line: " + r.err());
    }

    @Test
    void aRenameOfTheSymlinkIsDetectedAndEveryFileKept() throws Exception {
        // ORCA AutoStart: job.gbw renamed to job.ges, then a fresh job.gbw written. With
        // --no-follow (the default follows: FollowIT) the rename is detected and said, while the
        // job runs: it writes its fresh job.gbw once versionfs has recorded the rename.
        Result r = vfs("run", "--no-follow", "--target", "job.gbw", "--", "sh", "-c",
                "echo v1 > job.gbw; mv job.gbw job.ges; "
                        + Await.shell("grep -qs '\"event\":\"symlink-renamed\"' job.gbw.versions/manifest.jsonl")
                        + "; echo v2 > job.gbw");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.err().contains("renamed job.gbw to job.ges"), r.err());
        assertTrue(r.err().contains("--mode dir"), "names the fix: " + r.err());
        assertRegularFile(dir.resolve("job.ges"), "v1\n");
        assertRegularFile(dir.resolve("job.gbw"), "v2\n");
        assertTrue(Files.readString(dir.resolve("job.gbw.versions/manifest.jsonl")).contains("\"event\":\"symlink-renamed\""));
    }

    @Test
    void leftoverBackgroundProcessesAreEnded() throws Exception {
        // The sleep 300s are the scenario: processes the job leaves behind, still running at its end.
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c",
                "sleep 300 & echo $! > bg.pid; (sleep 300 & echo $! > orphan.pid) ; echo done > job.gbw");
        assertEquals(0, r.exit(), r.err());
        for (String f : List.of("bg.pid", "orphan.pid")) {
            long pid = Long.parseLong(Files.readString(dir.resolve(f)).trim());
            assertFalse(TestSupport.isRunning(pid), f + " process still running: " + r.err());
        }
        assertTrue(r.err().contains("left behind"), r.err());
    }

    @Test
    void wrapperGettingTermStopsTheJobAndKeepsEverything() throws Exception {
        Path script = dir.resolve("loop.sh");
        // A job that writes every 0.1 s until stopped (its pace is the scenario, not a wait).
        Files.writeString(script, "#!/bin/sh\ni=0\nwhile true; do i=$((i+1)); echo \"v$i\" > job.gbw; sleep 0.1; done\n");
        script.toFile().setExecutable(true);
        Process p = launcher("run", "--target", "job.gbw", "--", script.toString())
                .redirectOutput(dir.resolve("log.txt").toFile()).start();
        Path vdir = dir.resolve("job.gbw.versions");
        Await.until(Await.LONG, "5 versions of the job", () -> Files.isDirectory(vdir) && versions(vdir, "job", ".gbw").size() >= 5,
                () -> Files.readString(dir.resolve("log.txt")));
        p.toHandle().descendants().count(); // (the launcher execs java: p is the wrapper itself)
        new ProcessBuilder("kill", "-TERM", Long.toString(p.pid())).start().waitFor();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "wrapper finished after TERM");
        String log = Files.readString(dir.resolve("log.txt"));
        assertEquals(128 + 15, p.exitValue(), log);
        assertTrue(log.contains("forwarding it to the job"), log);
        List<Path> vs = versions(vdir, "job", ".gbw");
        String last = Files.readString(vs.get(vs.size() - 1));
        assertRegularFile(dir.resolve("job.gbw"), last);
        List<Map<String, Object>> rows = manifestVersions(vdir);
        assertEquals(vs.size(), rows.size(), "every version is in the manifest");
    }

    @Test
    void usr1AndUsr2AreForwardedToAJobThatHandlesThem() throws Exception {
        Path script = dir.resolve("trap.sh");
        Files.writeString(script, "#!/bin/sh\n"
                + "trap 'echo usr2 >> got.txt' USR2\n"
                + "trap 'echo usr1 >> got.txt; echo final > job.gbw; exit 3' USR1\n"
                + "echo start > job.gbw; touch ready\n"
                + "while true; do sleep 0.1; done\n"); // idles until a signal ends it (the scenario)
        script.toFile().setExecutable(true);
        Process p = launcher("run", "--target", "job.gbw", "--", script.toString())
                .redirectOutput(dir.resolve("log.txt").toFile()).start();
        Await.until(Await.LONG, "the job's ready file", () -> Files.exists(dir.resolve("ready")),
                () -> Files.readString(dir.resolve("log.txt")));
        new ProcessBuilder("kill", "-USR2", Long.toString(p.pid())).start().waitFor();
        Await.until(Await.LONG, "the job to handle USR2", () -> Files.exists(dir.resolve("got.txt"))
                && Files.readString(dir.resolve("got.txt")).contains("usr2\n"), () -> Files.readString(dir.resolve("log.txt")));
        new ProcessBuilder("kill", "-USR1", Long.toString(p.pid())).start().waitFor();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String log = Files.readString(dir.resolve("log.txt"));
        assertEquals(3, p.exitValue(), "the job's own exit code after handling USR1: " + log);
        assertEquals("usr2\nusr1\n", Files.readString(dir.resolve("got.txt")));
        assertRegularFile(dir.resolve("job.gbw"), "final\n");
        assertEquals(2, versions(dir.resolve("job.gbw.versions"), "job", ".gbw").size());
    }

    @Test
    void aKilledRunIsRecoveredByTheNextOne() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "start");
        Path script = dir.resolve("slow.sh");
        Files.writeString(script, "#!/bin/sh\necho progress > job.gbw\ntouch ready\nsleep 300\n"); // still running at the kill (scenario)
        script.toFile().setExecutable(true);
        Process p = launcher("run", "--target", "job.gbw", "--", script.toString())
                .redirectOutput(dir.resolve("log.txt").toFile()).start();
        Await.until(Await.LONG, "the job's ready file", () -> Files.exists(dir.resolve("ready")),
                () -> Files.readString(dir.resolve("log.txt")));
        List<ProcessHandle> kids = p.toHandle().descendants().toList();
        p.destroyForcibly(); // SIGKILL: no clean-up at all
        p.waitFor(30, TimeUnit.SECONDS);
        kids.forEach(ProcessHandle::destroyForcibly);
        assertTrue(Files.isSymbolicLink(dir.resolve("job.gbw")), "a killed run leaves its symlink");
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "cat job.gbw > seen.txt");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.err().contains("recovered"), r.err());
        assertEquals("progress\n", Files.readString(dir.resolve("seen.txt")), "the next job reads the last content");
        assertRegularFile(dir.resolve("job.gbw"), "progress\n");
    }

    @Test
    void rebuildingVersionfsWhileAJobRunsDoesNotBreakIt() throws Exception {
        Path jar = dir.resolve("installed.jar");
        Files.copy(TestSupport.PROJECT.resolve("target/versionfs.jar"), jar);
        Path script = dir.resolve("job.sh");
        Files.writeString(script, "#!/bin/sh\necho a > t.txt\ntouch started\nwhile [ ! -e go ]; do sleep 0.1; done\necho b > t.txt\n");
        script.toFile().setExecutable(true);
        ProcessBuilder pb = launcher("run", "--target", "t.txt", "--", script.toString()).redirectOutput(dir.resolve("log.txt").toFile());
        pb.environment().put("VERSIONFS_JAR", jar.toString());
        Process p = pb.start();
        Await.until(Await.LONG, "the job's started file", () -> Files.exists(dir.resolve("started")),
                () -> Files.readString(dir.resolve("log.txt")));
        // Overwrite the installed jar in place, as a rebuild or an update does.
        byte[] junk = new byte[(int) Files.size(jar)];
        Files.write(jar, junk);
        Files.createFile(dir.resolve("go"));
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String log = Files.readString(dir.resolve("log.txt"));
        assertEquals(0, p.exitValue(), log);
        assertTrue(log.contains("2 versions in"), log);
        assertRegularFile(dir.resolve("t.txt"), "b\n");
        try (var s = Files.list(dir.resolve("tmp"))) {
            assertEquals(List.of(), s.filter(f -> f.getFileName().toString().startsWith("versionfs-jar")).toList(),
                    "the private copy of the jar is gone");
        }
    }

    @Test
    void severalTargetsEachGetTheirVersions() throws Exception {
        Files.createDirectory(dir.resolve("sub"));
        Result r = vfs("run", "--target", "a.gbw", "--target", "sub/b.xyz", "--", "sh", "-c",
                "for i in 1 2 3; do echo a$i > a.gbw; echo b$i > sub/b.xyz; done");
        assertEquals(0, r.exit(), r.err());
        // Two mounts: libfuse's teardown of one said "fuse: fuse_remove_signal_handlers: unknown session".
        assertFalse(r.err().lines().anyMatch(l -> l.startsWith("fuse:")), "nothing from libfuse itself: " + r.err());
        assertEquals(3, versions(dir.resolve("a.gbw.versions"), "a", ".gbw").size());
        assertEquals(3, versions(dir.resolve("sub/b.xyz.versions"), "b", ".xyz").size());
        assertRegularFile(dir.resolve("a.gbw"), "a3\n");
        assertRegularFile(dir.resolve("sub/b.xyz"), "b3\n");
        // One shared versions folder for both: names keep them apart.
        r = vfs("run", "--versions-dir", "all", "--target", "a.gbw", "--target", "sub/b.xyz", "--", "sh", "-c",
                "echo a4 > a.gbw; echo b4 > sub/b.xyz");
        assertEquals(0, r.exit(), r.err());
        List<Path> as = versions(dir.resolve("all"), "a", ".gbw"), bs = versions(dir.resolve("all"), "b", ".xyz");
        assertEquals(List.of("a3\n", "a4\n"), List.of(Files.readString(as.get(0)), Files.readString(as.get(1))));
        assertEquals(List.of("b3\n", "b4\n"), List.of(Files.readString(bs.get(0)), Files.readString(bs.get(1))));
        assertRegularFile(dir.resolve("a.gbw"), "a4\n");
        assertRegularFile(dir.resolve("sub/b.xyz"), "b4\n");
    }

    @Test
    void listShowsTheManifestAsATableAndAsJson() throws Exception {
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "echo a > job.gbw; echo b > job.gbw; echo c > job.gbw");
        assertEquals(0, r.exit(), r.err());
        Result table = vfs("list", "job.gbw.versions");
        assertEquals(0, table.exit(), table.err());
        assertEquals(3, table.out().lines().filter(l -> l.contains(" saved ") && l.contains(" close ")).count(), table.out());
        Result json = vfs("list", "--json", "job.gbw.versions");
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> rows = (List<Map<String, Object>>) Json.parse(json.out().trim());
        assertEquals(List.of(1L, 2L, 3L), rows.stream().map(m -> m.get("version")).toList());
        assertOneLineError(vfs("list", "nowhere"), 203, "has no manifest.jsonl");
    }

    @Test
    void badInputGetsOneLineAndADistinctCode() throws Exception {
        Files.createDirectory(dir.resolve("adir"));
        assertOneLineError(vfs("run", "--target", "adir", "--", "true"), 202, "is a directory");
        assertOneLineError(vfs("run", "--target", "nowhere/job.gbw", "--", "true"), 202, "does not exist");
        assertOneLineError(vfs("run", "--target", "job.gbw", "--", "no-such-program-xyz"), 206, "not on PATH");
        assertOneLineError(vfs("run", "--target", "job.gbw", "--", "./missing.sh"), 206, "does not exist");
        assertOneLineError(vfsEnv(Map.of("VERSIONFS_JAVA_OPTS", "-Dversionfs.devFuse=/nonexistent/fuse"),
                "run", "--target", "job.gbw", "--", "true"), 204, "/nonexistent/fuse does not exist");
        assertOneLineError(vfsEnv(Map.of("VERSIONFS_JAVA_OPTS", "-Dversionfs.path=/nonexistent"),
                "run", "--target", "job.gbw", "--", "true"), 204, "fusermount was not found");
        Result usage = vfs("run", "--bogus");
        assertEquals(201, usage.exit(), usage.err());
        assertFalse(Files.exists(dir.resolve("job.gbw")), "nothing was created by failed runs");
        Files.writeString(dir.resolve("job.gbw"), "precious");
        assertOneLineError(vfs("run", "--target", "job.gbw", "--", "./missing.sh"), 206, "does not exist");
        assertRegularFile(dir.resolve("job.gbw"), "precious");
    }

    @Test
    void aVersionsFolderServedByAMountIsRefusedToASecondMountAndToARun() throws Exception {
        Files.createDirectories(dir.resolve("mp"));
        Files.createDirectories(dir.resolve("mp2"));
        Process p = launcher("mount", "--target", "t.txt", "--target-dir", "v", "mp")
                .redirectOutput(dir.resolve("log.txt").toFile()).start();
        try {
            Await.until(Await.LONG, "the first mount", () -> {
                assertTrue(p.isAlive(), Files.readString(dir.resolve("log.txt")));
                return Files.readString(dir.resolve("log.txt")).contains("mounted at");
            });
            assertOneLineError(vfs("mount", "--target", "t.txt", "--target-dir", "v", "mp2"), 209, "is using the versions folder");
            assertOneLineError(vfs("run", "--target", "t.txt", "--versions-dir", "v", "--", "true"), 209,
                    "is using the versions folder");
            assertEquals(null, MountTable.fuseAt(dir.resolve("mp2")), "the refused mount left nothing mounted");
        } finally {
            new ProcessBuilder("fusermount", "-u", dir.resolve("mp").toString()).start().waitFor();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        }
        assertEquals(0, p.exitValue(), Files.readString(dir.resolve("log.txt")));
    }

    @Test
    void mountCommandRejectsBadMountPoints() throws Exception {
        Files.createDirectories(dir.resolve("mp"));
        assertOneLineError(vfs("mount", "--target", "a/b.gbw", "--target-dir", "v", "mp"), 202, "not a path");
        assertOneLineError(vfs("mount", "--target", "b.gbw", "--target-dir", "v", "missing"), 205, "does not exist");
        Files.writeString(dir.resolve("mp/file"), "x");
        assertOneLineError(vfs("mount", "--target", "b.gbw", "--target_dir", "v", "mp"), 205, "not empty");
        assertOneLineError(vfs("mount", "--target", "b.gbw", "--target-dir", "no/such/v", "mp2"), 203, "does not exist");
    }

    @Test
    void mountRunsUntilUnmountedAndAKilledMountDoesNotStayStale() throws Exception {
        Files.createDirectories(dir.resolve("mp"));
        Process p = launcher("mount", "--target", "t.txt", "--target-dir", "v", "mp")
                .redirectOutput(dir.resolve("log.txt").toFile()).start();
        Await.until(Await.LONG, "'mounted at' in the log", () -> Files.readString(dir.resolve("log.txt")).contains("mounted at"),
                () -> Files.readString(dir.resolve("log.txt")));
        TestSupport.fsops("write", dir.resolve("mp/t.txt").toString(), "hello");
        assertEquals(0, new ProcessBuilder("fusermount", "-u", dir.resolve("mp").toString()).start().waitFor());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), Files.readString(dir.resolve("log.txt")));
        assertTrue(Files.readString(dir.resolve("log.txt")).contains("1 version in"));

        // SIGKILL the daemon: auto_unmount (or the next mount) must not leave a dead mount.
        p = launcher("mount", "--target", "t.txt", "--target-dir", "v", "mp")
                .redirectOutput(dir.resolve("log2.txt").toFile()).start();
        Await.until(Await.LONG, "'mounted at' in the log", () -> Files.readString(dir.resolve("log2.txt")).contains("mounted at"),
                () -> Files.readString(dir.resolve("log2.txt")));
        List<ProcessHandle> helpers = p.descendants().toList(); // fusermount, waiting to auto-unmount
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        // The mount is gone, or fusermount's auto_unmount helper has ended: then nothing will remove it.
        Await.until(Await.LONG, "the killed daemon's mount to go, or its auto_unmount helper to end",
                () -> TestSupport.versionfsMounts().stream().noneMatch(l -> l.contains(dir.toString()))
                        || !helpers.isEmpty() && helpers.stream().noneMatch(h -> TestSupport.isRunning(h.pid())));
        assertEquals(List.of(), TestSupport.versionfsMounts().stream().filter(l -> l.contains(dir.toString())).toList(),
                "auto_unmount removed the mount of the killed daemon");
        assertEquals("hello", Files.readString(dir.resolve("v/t.000001.txt")));
    }

    @Test
    void anExistingFileNamedLikeAGlobIsThatFileInBothModes() throws Exception {
        Files.writeString(dir.resolve("job[1].gbw"), "a\n");
        Files.writeString(dir.resolve("job1.gbw"), "b\n");
        for (String mode : new String[] {"symlink", "dir"}) {
            Result r = vfs("run", "--mode", mode, "--target", "job[1].gbw", "--", "sh", "-c",
                    "echo " + mode + " >> 'job[1].gbw'; echo x >> job1.gbw");
            assertEquals(0, r.exit(), r.err());
        }
        assertEquals("a\nsymlink\ndir\n", Files.readString(dir.resolve("job[1].gbw")));
        assertFalse(Files.exists(dir.resolve("job1.gbw.versions")), "job1.gbw is not what job[1].gbw names");
        List<Map<String, Object>> rows = EngineIT.verifyVersions(dir.resolve("job[1].gbw.versions"));
        assertEquals(4, rows.size(), "initial + close, twice: " + rows);
        // A pattern that matches nothing still says so.
        Result none = vfs("run", "--target", "nothing[0-9].gbw", "--", "true");
        assertEquals(202, none.exit(), none.err());
        assertTrue(none.err().contains("matches no existing file"), none.err());
    }

    @Test
    void fallocateInEveryModeWorksThroughTheMountAndNeverReachesASavedVersion() throws Exception {
        byte[] before = new byte[64 * 1024];
        java.util.Arrays.fill(before, (byte) 'v');
        for (String mode : new String[] {"symlink", "dir"}) {
            Files.write(dir.resolve("job.gbw"), before);
            String script = "fallocate -l 2M job.gbw && fallocate -p -o 4096 -l 8192 job.gbw && fallocate -z -o 20000 -l 100 job.gbw"
                    + " && fallocate -n -l 4M job.gbw && python3 -c \"import os; fd = os.open('job.gbw', os.O_RDWR);"
                    + " os.posix_fallocate(fd, 0, 3 << 20); os.close(fd)\"";
            Result r = vfs("run", "--mode", mode, "--target", "job.gbw", "--", "sh", "-c", script);
            assertEquals(0, r.exit(), mode + ": " + r.err());
            byte[] after = Files.readAllBytes(dir.resolve("job.gbw"));
            assertEquals(3 << 20, after.length, mode);
            for (int i = 4096; i < 4096 + 8192; i++) assertEquals(0, after[i], mode + ": the punched hole reads as zeros");
            assertEquals('v', after[0], mode);
            List<Map<String, Object>> rows = EngineIT.verifyVersions(dir.resolve("job.gbw.versions"));
            Map<String, Object> initial = rows.stream().filter(m -> "initial".equals(m.get("reason"))).findFirst().orElseThrow();
            assertTrue(java.util.Arrays.equals(before, Files.readAllBytes(dir.resolve("job.gbw.versions").resolve((String) initial.get("path")))),
                    mode + ": the content before the run is intact");
            assertTrue(rows.size() >= 6, mode + ": initial + one version per close: " + rows);
            TestSupport.run(dir, null, 30, "rm", "-rf", "job.gbw.versions", "job.gbw");
        }
    }

    @Test
    void theVersionsFolderShowsNoMoreThanAPrivateTarget() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "secret\n");
        Files.setPosixFilePermissions(dir.resolve("job.gbw"), java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
        Result r = vfs("run", "--target", "job.gbw", "--on-version", "echo hooked", "--", "sh", "-c", "echo more >> job.gbw");
        assertEquals(0, r.exit(), r.err());
        Path v = dir.resolve("job.gbw.versions");
        assertEquals("rwx------", perms(v));
        assertEquals("rw-------", perms(v.resolve("manifest.jsonl")));
        assertEquals("rw-------", perms(v.resolve("hooks.log")));
        for (Map<String, Object> row : EngineIT.verifyVersions(v)) {
            if (row.get("path") != null) assertEquals("r--------", perms(v.resolve((String) row.get("path"))));
        }
        if (TestSupport.isRoot() && Files.isExecutable(Path.of("/usr/sbin/runuser"))) {
            // Another user: nothing of it can be read.
            TestSupport.run(dir, null, 30, "sh", "-c", "id " + UnprivilegedIT.USER + " || useradd -M " + UnprivilegedIT.USER);
            Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
            Files.writeString(dir.resolve("public.txt"), "public\n");
            Result control = TestSupport.run(dir, null, 30, "/usr/sbin/runuser", "-u", UnprivilegedIT.USER, "--", "cat",
                    dir.resolve("public.txt").toString());
            assertEquals(0, control.exit(), "the other user reaches the folder: " + control.err());
            Result other = TestSupport.run(dir, null, 30, "/usr/sbin/runuser", "-u", UnprivilegedIT.USER, "--", "cat",
                    v.resolve("manifest.jsonl").toString());
            assertTrue(other.exit() != 0 && other.err().contains("Permission denied"), other.err());
        }
    }

    private static String perms(Path p) throws Exception {
        return java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(p, java.nio.file.LinkOption.NOFOLLOW_LINKS));
    }

    @Test
    void aSlowHookNeverFindsItsVersionRemovedByTheKeepRules() throws Exception {
        // The hook's 0.3 s and the job's 50 ms pace are the scenario: hooks fall behind while keep-last
        // removes versions, so a removal meets a hook still running or not yet started.
        String hook = "sleep 0.3; test -f \"$VERSIONFS_PATH\" || { echo MISSING $VERSIONFS_VERSION; exit 3; }";
        Result r = vfs("run", "--keep-last", "2", "--on-version", hook, "--target", "job.gbw", "--", "sh", "-c",
                "for i in $(seq 1 30); do echo v$i > job.gbw; sleep 0.05; done");
        assertEquals(0, r.exit(), r.err());
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d+) ran, (\\d+) failed(?:, (\\d+) skipped)?").matcher(r.err());
        assertTrue(m.find(), r.err());
        int ran = Integer.parseInt(m.group(1)), failed = Integer.parseInt(m.group(2)), skipped = m.group(3) == null ? 0 : Integer.parseInt(m.group(3));
        assertEquals(0, failed, "no hook found its version gone: " + r.err() + Files.readString(dir.resolve("job.gbw.versions/hooks.log")));
        assertEquals(30, ran + skipped, "every version's hook ran or was skipped, and the summary says which: " + r.err());
        long hookLines = TestSupport.manifestVersions(dir.resolve("job.gbw.versions")).size();
        assertTrue(hookLines >= 2, "the kept versions are there");
        EngineIT.verifyVersions(dir.resolve("job.gbw.versions"));
    }

    @Test
    void aSparseFileIsVersionedByTheBlocksItTakesNotItsApparentSize() throws Exception {
        // 512 MiB apparent, a few KiB written, on a 16 MiB disk: the headroom counts blocks.
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(dir.resolve("small"), "16m")) {
            String py = "import os\n"
                    + "fd = os.open('small/job.gbw', os.O_RDWR | os.O_CREAT, 0o644); os.pwrite(fd, b'x', 512 << 20); os.close(fd)\n"
                    + "fd = os.open('small/job.gbw', os.O_RDWR); os.pwrite(fd, b'y', 256 << 20); os.close(fd)\n";
            Result r = TestSupport.run(dir, null, 300, TestSupport.launcher("run", "--target", "small/job.gbw", "--",
                    "python3", "-c", py));
            assertEquals(0, r.exit(), r.err());
            List<Map<String, Object>> rows = EngineIT.verifyVersions(dir.resolve("small/job.gbw.versions"));
            assertEquals(2, rows.size(), "both closes are versions, none skipped for 'space': " + r.err());
            for (Map<String, Object> row : rows) assertEquals("saved", row.get("status"), rows.toString());
            assertTrue(Files.size(dir.resolve("small/job.gbw")) == (512L << 20) + 1);
        }
    }

    /**
     * A version is published only once the job can no longer write its inode, read-only: a hook
     * that writes its {@code $VERSIONFS_PATH} (as root: without CAP_DAC_OVERRIDE) changes neither
     * the version nor the job's file, and at no moment does a published version share an inode
     * with a live file, through full rewrites and in-place edits alike.
     */
    @Test
    void aToolWritingAVersionChangesNeitherTheVersionNorTheJobsFile() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "start\n");
        String py = String.join("\n",
                "import os, glob, time",
                "bad = []",
                "def check():",
                "    live = set()",
                "    for p in glob.glob('job.gbw.versions/.versionfs/live/*/job.gbw'):",
                "        try: live.add(os.stat(p).st_ino)",
                "        except FileNotFoundError: pass",
                "    for v in glob.glob('job.gbw.versions/job.0*.gbw'):",
                "        try: st = os.stat(v)",
                "        except FileNotFoundError: continue",
                "        if st.st_ino in live: bad.append('shares the live inode: ' + v)",
                "        if st.st_mode & 0o222: bad.append('writable: ' + v)",
                "for i in range(40):",
                "    if i % 2:",
                "        with open('job.gbw', 'w') as f: f.write('rewrite %d\\n' % i)",
                "    else:",
                "        with open('job.gbw', 'r+') as f: f.write('edit %d' % i)",
                "    check()",
                "    time.sleep(0.03)  # the job's pace",
                "time.sleep(1)  # a last look a second on: the check is an invariant, sampled; nothing is awaited",
                "check()",
                "open('bad.txt', 'w').write('\\n'.join(bad))",
                "open('readback.txt', 'w').write(open('job.gbw').read())");
        String hook = "printf HOOK | dd of=\"$VERSIONFS_PATH\" conv=notrunc; echo \"dd=$?\"";
        Result r = vfs("run", "--on-version", hook, "--target", "job.gbw", "--", "python3", "-c", py);
        assertEquals(0, r.exit(), r.err());
        assertEquals("", Files.readString(dir.resolve("bad.txt")), "no published version was writable or shared a live inode");
        List<String> expected = new ArrayList<>(List.of("start\n"));
        String state = "start\n";
        for (int i = 0; i < 40; i++) {
            String w = i % 2 == 1 ? "rewrite " + i + "\n" : "edit " + i;
            state = i % 2 == 1 ? w : w + (state.length() > w.length() ? state.substring(w.length()) : "");
            expected.add(state);
        }
        assertEquals(state, Files.readString(dir.resolve("readback.txt")), "the job read back its own last write");
        assertRegularFile(dir.resolve("job.gbw"), state);
        Path v = dir.resolve("job.gbw.versions");
        List<Map<String, Object>> rows = EngineIT.verifyVersions(v); // every version matches its sha256: no hook changed one
        List<String> got = new ArrayList<>();
        for (Map<String, Object> row : rows) {
            if (row.get("event") != null) continue; // the hooks' lines
            assertEquals("saved", row.get("status"), rows + "\n" + r.err());
            got.add(Files.readString(v.resolve((String) row.get("path"))));
        }
        assertEquals(expected, got, "every write of the job is in its version, in order");
        String log = Files.readString(v.resolve("hooks.log"));
        assertEquals(41, log.lines().filter(l -> l.startsWith("dd=")).count(), "every hook ran: " + log);
        assertFalse(log.contains("dd=0"), "no hook could write its version: " + log);
        assertTrue(log.contains("Permission denied"), log);
    }

    @Test
    void libfusesOwnLoopServesRunsWithHooks() throws Exception {
        // The fallback loop (-Dversionfs.fuseLoop=libfuse, no other test uses it) forks fusermount
        // inside fuse_main_real; a process started at that moment could hang on a pipe the
        // fusermount child inherited (see Spawns). A few runs in a row with hooks, each bounded.
        // (The hang itself is a narrow race: 18 runs without the lock did not hit it.)
        Map<String, String> env = new java.util.HashMap<>(tmpEnv());
        env.put("VERSIONFS_JAVA_OPTS", "-Dversionfs.fuseLoop=libfuse");
        for (int run = 0; run < 6; run++) {
            Files.writeString(dir.resolve("job.gbw"), "start " + run + "\n");
            Result r = TestSupport.run(dir, env, 60, TestSupport.LAUNCHER.toString(), "run", "--on-version", "echo hooked",
                    "--target", "job.gbw", "--", "sh", "-c", "for i in 1 2 3; do echo $i > job.gbw; done");
            assertEquals(0, r.exit(), r.err());
            assertRegularFile(dir.resolve("job.gbw"), "3\n");
            Path v = dir.resolve("job.gbw.versions");
            List<Map<String, Object>> rows = EngineIT.verifyVersions(v);
            assertEquals(4, rows.stream().filter(m -> "saved".equals(m.get("status"))).count(), "initial + 3: " + rows);
            assertEquals(4, Files.readString(v.resolve("hooks.log")).lines().filter(l -> l.equals("hooked")).count(),
                    "every hook ran: " + Files.readString(v.resolve("hooks.log")));
            TestSupport.run(dir, null, 30, "rm", "-rf", "job.gbw.versions", "job.gbw");
        }
    }

    @Test
    void filesPutAtTheNamesOfComingVersionsAreSetAsideAndEveryVersionIsListed() throws Exception {
        // A tool of the job writes job.000003.gbw .. job.000005.gbw into the versions folder
        // before those versions exist. They were skipped silently, and verify then reported
        // them as unlisted versions (exit 207, "versions lost") although nothing was lost.
        Files.writeString(dir.resolve("job.gbw"), "init\n");
        Result r = vfs("run", "--quiet", "--target", "job.gbw", "--", "sh", "-c",
                "echo a > job.gbw; for n in 3 4 5; do echo stray$n > job.gbw.versions/job.00000$n.gbw; done;"
                        + " echo b > job.gbw; echo c > job.gbw; echo d > job.gbw");
        assertEquals(0, r.exit(), r.err());
        Path v = dir.resolve("job.gbw.versions");
        assertEquals(List.of("init\n", "a\n", "b\n", "c\n", "d\n"),
                versions(v, "job", ".gbw").stream().map(p -> { try { return Files.readString(p); } catch (Exception e) { throw new RuntimeException(e); } }).toList());
        Result verify = TestSupport.vfs(dir, 60, "verify", v.toString()); // every version's sha256, nothing unlisted
        assertEquals(0, verify.exit(), verify.out() + verify.err());
        for (int n = 3; n <= 5; n++) {
            int k = n;
            try (var ds = Files.newDirectoryStream(v, "job.00000" + n + ".not-a-version-*.gbw")) {
                List<Path> aside = new ArrayList<>();
                ds.forEach(aside::add);
                assertEquals(1, aside.size(), "stray " + k + " kept beside: " + aside);
                assertEquals("stray" + k + "\n", Files.readString(aside.get(0)));
            }
        }
    }
}
