package io.versionfs.run;

import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import io.versionfs.text.Json;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code versionfs doctor} as the user running the tests, and the multi-node warning of
 * {@code run} with a simulated Slurm environment (the variables Slurm sets, on the versionfs
 * process). {@link UnprivilegedIT} runs doctor as an ordinary user.
 */
class DoctorIT {
    @TempDir
    Path dir;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    private Result vfs(Map<String, String> extra, String... args) throws Exception {
        Path tmp = Files.createDirectories(dir.resolve("tmp"));
        Map<String, String> env = new HashMap<>();
        env.put("TMPDIR", tmp.toString());
        for (String v : List.of("SLURM_JOB_ID", "SLURM_JOB_NUM_NODES", "SLURM_NNODES", "SLURM_TMPDIR", "SLURM_JOB_NODELIST",
                "SLURM_NODELIST")) env.put(v, "");
        env.putAll(extra);
        return TestSupport.run(dir, env, 120, TestSupport.launcher(args));
    }

    private static List<String> entries(Path p) throws Exception {
        try (Stream<Path> s = Files.list(p)) {
            return s.map(x -> x.getFileName().toString()).filter(n -> !n.startsWith("versionfs-jar.")).toList();
        }
    }

    @Test
    void doctorPassesHereAndLeavesNothingBehind() throws Exception {
        Path mnt = Files.createDirectories(dir.resolve("mnt"));
        Result r = vfs(Map.of(), "doctor", "--mount-dir", mnt.toString());
        assertEquals(0, r.exit(), "doctor: " + r.out() + r.err());
        for (String check : List.of("java", "/dev/fuse", "fusermount", "libfuse2", "test mount", "versions filesystem",
                "hard links", "reflinks", "free space", "slurm job", "nodes")) {
            assertTrue(r.out().lines().anyMatch(l -> l.startsWith(check + " ")), "row " + check + " in:\n" + r.out());
        }
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("test mount") && l.contains(" ok ")), r.out());
        assertTrue(r.out().contains("verdict: a versionfs run would work here"), r.out());
        assertEquals(List.of(), entries(mnt), "the test mount's folder is removed");
        assertEquals(List.of("mnt", "tmp"), entries(dir).stream().sorted().toList(), "no probe left in the versions folder");

        Result j = vfs(Map.of(), "doctor", "--json");
        assertEquals(0, j.exit(), j.err());
        Map<String, Object> doc = Json.parseObject(j.out().trim());
        assertEquals(Boolean.TRUE, doc.get("ok"), j.out());
        assertEquals(0, ((Number) doc.get("exit")).intValue());
        assertTrue(((List<?>) doc.get("checks")).size() >= 11, j.out());
        assertEquals(List.of(), entries(dir.resolve("tmp")), "nothing left in $TMPDIR");
    }

    @Test
    void doctorWithoutFuseFailsWith204AndNamesTheFix() throws Exception {
        Result r = vfs(Map.of("VERSIONFS_JAVA_OPTS", "-Dversionfs.devFuse=" + dir.resolve("no-such-fuse")), "doctor");
        assertEquals(204, r.exit(), r.out() + r.err());
        assertTrue(r.out().lines().anyMatch(l -> l.contains("no-such-fuse") && l.contains("FAIL")), r.out());
        assertTrue(r.out().contains("modprobe fuse"), r.out());
        assertTrue(r.out().lines().anyMatch(l -> l.startsWith("test mount") && l.contains("not tried")), r.out());
        assertTrue(r.out().contains("would fail here with exit 204"), r.out());
    }

    @Test
    void doctorWarnsAboutSeveralNodesButPasses() throws Exception {
        Result r = vfs(Map.of("SLURM_JOB_ID", "4242", "SLURM_NNODES", "2"), "doctor", "--json");
        assertEquals(0, r.exit(), r.out() + r.err());
        Map<String, Object> doc = Json.parseObject(r.out().trim());
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> checks = (List<Map<String, Object>>) doc.get("checks");
        Map<String, Object> nodes = checks.stream().filter(c -> "nodes".equals(c.get("check"))).findFirst().orElseThrow();
        assertEquals("INFO", nodes.get("status"), r.out());
        assertTrue(String.valueOf(nodes.get("result")).contains("SLURM_NNODES=2"), r.out());
        // Each node is checked through srun inside a real allocation only (NodeFaultsIT); here it says why not.
        Map<String, Object> every = checks.stream().filter(c -> "every node".equals(c.get("check"))).findFirst().orElseThrow();
        assertEquals("WARN", every.get("status"), r.out());
        assertTrue(String.valueOf(every.get("result")).contains("SLURM_JOB_NODELIST is not set"), r.out());
        Map<String, Object> job = checks.stream().filter(c -> "slurm job".equals(c.get("check"))).findFirst().orElseThrow();
        assertTrue(String.valueOf(job.get("result")).contains("4242"), r.out());
    }

    @Test
    void aMultiNodeJobGetsOneWarningBeforeItStartsAndStillRuns() throws Exception {
        Result r = vfs(Map.of("SLURM_JOB_ID", "77", "SLURM_JOB_NUM_NODES", "3"),
                "run", "--target", "job.gbw", "--", "sh", "-c", "echo JOB-STARTED >&2; echo 1 > job.gbw; exit 3");
        assertEquals(3, r.exit(), "a warning, not a refusal: the job's exit code: " + r.err());
        assertEquals(1, count(r.err(), "spans 3 nodes"), r.err());
        int warn = r.err().indexOf("spans 3 nodes"), started = r.err().indexOf("JOB-STARTED");
        assertTrue(warn >= 0 && started > warn, "warned before the job started: " + r.err());
        assertTrue(r.err().contains("SLURM_JOB_NUM_NODES=3"), r.err());
        assertTrue(r.err().contains("job array"), "says what to do: " + r.err());
        assertEquals("1\n", Files.readString(dir.resolve("job.gbw")));

        Result d = vfs(Map.of("SLURM_NNODES", "2"), "run", "--mode", "dir", "--target", "job.gbw", "--", "true");
        assertEquals(0, d.exit(), d.err());
        assertEquals(1, count(d.err(), "spans 2 nodes"), d.err());
        assertTrue(d.err().contains("--mode dir does not work across nodes"), d.err());

        for (String v : List.of("SLURM_JOB_NUM_NODES", "SLURM_NNODES")) {
            Result one = vfs(Map.of("SLURM_JOB_ID", "78", v, "1"), "run", "--target", "job.gbw", "--", "true");
            assertEquals(0, one.exit(), one.err());
            assertFalse(one.err().contains("nodes"), "no warning on one node: " + one.err());
        }
    }

    private static int count(String s, String what) {
        int n = 0;
        for (int i = s.indexOf(what); i >= 0; i = s.indexOf(what, i + 1)) n++;
        return n;
    }
}
