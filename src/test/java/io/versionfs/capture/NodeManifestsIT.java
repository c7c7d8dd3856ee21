package io.versionfs.capture;

import io.versionfs.TestSupport;
import io.versionfs.text.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A job on three "nodes" (three processes with their own host names writing one versions
 * folder: a batch node and two agents) whose batch node is killed before its merge. The readers
 * (list, verify, restore, diff) show one history with every node's versions in version order
 * while the node manifests are unmerged; the next run merges them, so those versions keep their
 * sha256, time and host (not adopted as recovered-unlisted), and the history reads the same.
 */
class NodeManifestsIT {
    @TempDir
    Path tmp;

    private Process writer(Path dir, String host, String... more) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), NodeWriter.class.getName(),
                dir.toString(), host, tmp.resolve("scratch-" + host).toString(), "2", "25"));
        cmd.addAll(List.of(more));
        return new ProcessBuilder(cmd).redirectErrorStream(true).start();
    }

    private static String finish(Process p) throws Exception {
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "writer still running");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        return out;
    }

    private List<Map<String, Object>> listJson(Path dir) throws Exception {
        TestSupport.Result r = TestSupport.vfs(tmp, 120, "list", "--json", dir.toString());
        assertEquals(0, r.exit(), r.err());
        List<Map<String, Object>> out = new ArrayList<>();
        for (Object o : (List<?>) Json.parse(r.out())) {
            @SuppressWarnings("unchecked") Map<String, Object> m = (Map<String, Object>) o;
            out.add(m);
        }
        return out;
    }

    /** Three writers into {@code dir}, the batch node killed before its merge. */
    private void killedJob(Path dir) throws Exception {
        Files.createDirectories(dir);
        Process batch = writer(dir, "b", "batch");
        BufferedReader said = new BufferedReader(new InputStreamReader(batch.getInputStream(), StandardCharsets.UTF_8));
        assertEquals("marked", said.readLine()); // the agents start once the mark is down
        Process n1 = writer(dir, "n1"), n2 = writer(dir, "n2");
        finish(batch);
        finish(n1);
        finish(n2);
        assertTrue(NodeManifests.present(dir), "the batch node was killed before its merge");
        assertTrue(Files.exists(dir.resolve(".versionfs/open")), "and left its marker");
    }

    @Test
    void aKilledBatchNodesJobReadsAsOneHistoryAndTheNextRunMergesItKeepingHashTimeAndHost() throws Exception {
        Path dir = tmp.resolve("job.gbw.versions");
        killedJob(dir);

        List<Map<String, Object>> live = listJson(dir);
        List<Long> numbers = new ArrayList<>();
        java.util.Set<Object> hosts = new java.util.TreeSet<>();
        for (Map<String, Object> r : live) {
            if (r.get("version") == null) continue;
            numbers.add(((Number) r.get("version")).longValue());
            hosts.add(r.get("host"));
        }
        assertEquals(3 * 2 * 25, numbers.size(), "every node's versions are listed: " + numbers);
        List<Long> sorted = new ArrayList<>(numbers);
        sorted.sort(null);
        assertEquals(sorted, numbers, "in version order");
        assertEquals(java.util.Set.of("b", "n1", "n2"), hosts);
        TestSupport.Result v = TestSupport.vfs(tmp, 120, "verify", dir.toString());
        assertEquals(0, v.exit(), "verify reads the node manifests too: " + v.out() + v.err());

        // A version of another node: restore and diff find it before any merge.
        Map<String, Object> fromN2 = live.stream().filter(r -> "n2".equals(r.get("host")) && "saved".equals(r.get("status")))
                .reduce((a, b) -> b).orElseThrow();
        Map<String, Object> fromN1 = live.stream().filter(r -> "n1".equals(r.get("host")) && "saved".equals(r.get("status")))
                .findFirst().orElseThrow();
        String n = String.valueOf(((Number) fromN2.get("version")).longValue());
        Path out = tmp.resolve("restored.gbw");
        TestSupport.Result rs = TestSupport.vfs(tmp, 120, "restore", dir.toString(), n, "--to", out.toString());
        assertEquals(0, rs.exit(), rs.err());
        assertArrayEquals(Files.readAllBytes(dir.resolve(String.valueOf(fromN2.get("path")))), Files.readAllBytes(out));
        TestSupport.Result d = TestSupport.vfs(tmp, 120, "diff", dir.toString(),
                String.valueOf(((Number) fromN1.get("version")).longValue()), n);
        assertTrue(d.exit() == 0 || d.exit() == 1, "diff of two other nodes' versions: " + d.err());

        // The next run on the target merges what the killed job left, before anything else.
        Files.writeString(tmp.resolve("job.gbw"), "final\n");
        TestSupport.Result run = TestSupport.vfs(tmp, 120, "run", "--target", "job.gbw", "--", "true");
        assertEquals(0, run.exit(), run.err());
        assertTrue(run.err().contains("merged into"), run.err());
        assertFalse(NodeManifests.present(dir));
        List<Map<String, Object>> after = listJson(dir);
        assertEquals(live, after.subList(0, live.size()), "the same history, now in manifest.jsonl");
        for (Map<String, Object> r : after) assertFalse("recovered-unlisted".equals(r.get("reason")), "adopted: " + r);
        v = TestSupport.vfs(tmp, 120, "verify", dir.toString());
        assertEquals(0, v.exit(), v.out() + v.err());
    }

    /**
     * A job whose agent did not end cleanly: the batch node merged but kept the number
     * placeholders (the agent might still have numbered). The next run on the folder, and prune,
     * clear them under the folder's lock, as a clean end does; every version stays as it was.
     */
    @Test
    void placeholdersAJobWithAKilledAgentKeptAreClearedByTheNextRunAndByPrune() throws Exception {
        for (String next : List.of("run", "prune")) {
            Path work = Files.createDirectory(tmp.resolve(next)), dir = work.resolve("job.gbw.versions");
            killedJob(dir);
            int dirFd = io.versionfs.sys.Posix.openDir(dir.toString());
            try {
                ManifestMerge.mergeFiles(dirFd, dir, NodeManifests.mark(dir), ManifestSwap.Seam.NONE); // the batch node's merge
            } finally {
                io.versionfs.sys.Posix.C.close(dirFd);
            }
            assertFalse(NodeManifests.present(dir), "merged: nothing for the next run to merge");
            List<ManifestLine> rows = Manifest.read(dir).stream().filter(ManifestLine::isVersion).toList();
            long held = rows.stream().filter(r -> !r.saved() && isTombstone(dir, r)).count();
            assertTrue(held > 0, next + ": lost and dropped versions' numbers are held by placeholders: " + rows.size() + " rows");

            TestSupport.Result r = next.equals("run")
                    ? TestSupport.vfs(work, 120, "run", "--target", "job.gbw", "--", "true")
                    : TestSupport.vfs(work, 120, "prune", "--keep-last", "1000", dir.toString());
            assertEquals(0, r.exit(), next + ": " + r.out() + r.err());

            assertFalse(Files.exists(dir.resolve(NodeNumbering.TOMBSTONE)), next + ": the placeholders' file is gone");
            for (ManifestLine row : rows) {
                Path f = dir.resolve(VersionNaming.versionName(row.file(), row.version()));
                if (row.saved()) assertEquals(row.sha256(), io.versionfs.sys.Sha256.of(f), next + ": version " + row.version());
                else assertFalse(Files.exists(f), next + ": lost or dropped version " + row.version() + " keeps no placeholder");
            }
            TestSupport.Result v = TestSupport.vfs(work, 120, "verify", dir.toString());
            assertEquals(0, v.exit(), next + ": " + v.out() + v.err());
        }
    }

    private static boolean isTombstone(Path dir, ManifestLine row) {
        Path f = dir.resolve(VersionNaming.versionName(row.file(), row.version()));
        return Files.exists(f) && NodeNumbering.isTombstone(dir, f);
    }

    /** prune writes the folder too: it merges what the killed job left first, so its lines come after the job's. */
    @Test
    void pruneAfterAKilledJobMergesItFirst() throws Exception {
        Path dir = tmp.resolve("job.gbw.versions");
        killedJob(dir);
        TestSupport.Result p = TestSupport.vfs(tmp, 120, "prune", "--keep-last", "10", dir.toString());
        assertEquals(0, p.exit(), p.out() + p.err());
        assertFalse(NodeManifests.present(dir));
        List<Map<String, Object>> rows = listJson(dir);
        assertEquals(11, rows.stream().filter(r -> "saved".equals(r.get("status"))).count(), "kept: the last 10 and the first (by default)");
        assertTrue(rows.stream().anyMatch(r -> "pruned".equals(r.get("status")) && "n1".equals(r.get("host"))), "n1's versions pruned too");
        TestSupport.Result v = TestSupport.vfs(tmp, 120, "verify", dir.toString());
        assertEquals(0, v.exit(), v.out() + v.err());
    }
}
