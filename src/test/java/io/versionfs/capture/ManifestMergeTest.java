package io.versionfs.capture;

import io.versionfs.sys.Posix;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The merge of a job's node manifests into manifest.jsonl: one order, the same for the readers
 * before the merge and in the merged file; crash-safe (stopped after each of its steps, then run
 * again, it gives the same bytes: no line lost, none twice); a killed batch node's leftovers are
 * merged by the next run's open.
 */
class ManifestMergeTest {
    @TempDir
    Path dir;
    private int dirFd;
    private static final Instant T0 = Instant.parse("2026-12-07T08:00:00Z");

    @BeforeEach
    void setUp() throws IOException {
        dirFd = Posix.openDir(dir.toString());
    }

    @AfterEach
    void tearDown() {
        Posix.C.close(dirFd);
    }

    private static String v(long n, String host, String status, int sec) {
        ManifestLine.Builder b = ManifestLine.version(n, "job.gbw").status(status).size(n).time(T0.plusSeconds(sec)).reason("close");
        if (status.equals("saved")) b.path(VersionNaming.versionName("job.gbw", n)).sha256("%064x".formatted(n));
        if (host != null) b.host(host);
        return b.build().toJson() + "\n";
    }

    private static String ev(String name, String host, int sec) {
        ManifestLine.Builder b = ManifestLine.event(name).file("job.gbw").time(T0.plusSeconds(sec));
        if (host != null) b.host(host);
        return b.build().toJson() + "\n";
    }

    /** A folder as a job on two other nodes leaves it before the merge; returns the mark. */
    private long jobOnThreeNodes() throws IOException {
        String before = v(1, null, "saved", 1) + v(2, null, "saved", 2) + ev("run-end", null, 3) + v(3, "b", "saved", 10);
        Files.writeString(dir.resolve(Manifest.FILE_NAME), before + "garbage from an older crash\n");
        long mark = Files.size(dir.resolve(Manifest.FILE_NAME));
        Files.createDirectories(dir.resolve(NodeNumbering.NODES));
        Files.writeString(dir.resolve(NodeManifests.MARK), mark + "\n");
        Files.writeString(dir.resolve(Manifest.FILE_NAME), v(4, "b", "saved", 11) + ev("rename", "b", 12) + v(7, "b", "saved", 15)
                + v(4, "b", "lost", 16), StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.APPEND);
        Files.writeString(dir.resolve(NodeNumbering.NODES).resolve(NodeNumbering.manifestName("n1")),
                v(5, "n1", "saved", 12) + v(6, "n1", "saved", 13) + ev("skipped", "n1", 14) + v(9, "n1", "lost", 18));
        Files.writeString(dir.resolve(NodeNumbering.NODES).resolve(NodeNumbering.manifestName("n2")),
                v(8, "n2", "saved", 16) + v(8, "n2", "lost", 17) + "{\"version\":10,\"fi"); // killed mid-append
        return mark;
    }

    private byte[] manifestBytes() throws IOException {
        return Files.readAllBytes(dir.resolve(Manifest.FILE_NAME));
    }

    private List<ManifestLine> rows() throws IOException {
        List<ManifestLine> out = new ArrayList<>();
        LatestRows.each(dir, s -> {}, out::add);
        return out;
    }

    private static List<String> versionsAndHosts(List<ManifestLine> rows) {
        List<String> out = new ArrayList<>();
        for (ManifestLine r : rows) out.add(r.isVersion() ? r.version() + "/" + r.host() + "/" + r.status() : r.event() + "/" + r.host());
        return out;
    }

    @Test
    void theNodesLinesGoInVersionOrderAfterTheMarkAndTheReadersSawThatOrderBefore() throws IOException {
        long mark = jobOnThreeNodes();
        byte[] prefix = java.util.Arrays.copyOf(manifestBytes(), (int) mark);
        List<ManifestLine> live = rows();
        ManifestMerge.Outcome o = ManifestMerge.mergeFiles(dirFd, dir, mark, ManifestSwap.Seam.NONE);
        assertEquals(7, o.fromNodes(), "4 lines of n1, 3 of n2 (the torn one kept as it is)");
        byte[] merged = manifestBytes();
        assertArrayEquals(prefix, java.util.Arrays.copyOf(merged, (int) mark), "the lines before the mark are untouched");
        assertEquals(List.of("1/null/saved", "2/null/saved", "run-end/null", "3/b/saved",
                "4/b/lost", "rename/b", "5/n1/saved", "6/n1/saved", "skipped/n1", "7/b/saved", "8/n2/lost", "9/n1/lost"),
                versionsAndHosts(rows()));
        assertEquals(live, rows(), "list showed the merged history before the merge");
        assertFalse(Files.exists(dir.resolve(NodeNumbering.NODES)), "node files, mark and their folder gone");
        assertTrue(new String(merged, StandardCharsets.UTF_8).contains("{\"version\":10,\"fi\n"), "a torn node line is kept, not dropped");
    }

    /** Stops the merge at the n-th step (a crash there), then runs it again as the next run's open does. */
    @Test
    void aMergeStoppedAfterAnyStepAndRunAgainGivesTheSameManifest() throws IOException {
        long mark = jobOnThreeNodes();
        ManifestMerge.mergeFiles(dirFd, dir, mark, ManifestSwap.Seam.NONE);
        byte[] want = manifestBytes();
        List<ManifestLine> wantRows = rows();
        // WRITTEN, RENAMED, DURABLE, NODE_FILE_REMOVED (n1), NODE_FILE_REMOVED (n2)
        for (int stopAt = 0; stopAt < 5; stopAt++) {
            clear();
            jobOnThreeNodes();
            int[] steps = {0};
            int at = stopAt;
            List<String> stoppedAfter = new ArrayList<>();
            assertThrows(IOException.class, () -> ManifestMerge.mergeFiles(dirFd, dir, mark, (step, what) -> {
                if (steps[0]++ == at) {
                    stoppedAfter.add(step + " " + what);
                    throw new IOException("crash after " + step);
                }
            }));
            assertEquals(wantRows, rows(), "readers in between, stopped after " + stoppedAfter);
            ManifestMerge.recover(dirFd, dir, dir);
            assertArrayEquals(want, manifestBytes(), "stopped after " + stoppedAfter + ", then run again");
            assertNoLineTwice();
            assertFalse(Files.exists(dir.resolve(NodeNumbering.NODES)), "stopped after " + stoppedAfter);
            assertEquals(0, ManifestMerge.recover(dirFd, dir, dir), "a third time: nothing left to merge");
            assertArrayEquals(want, manifestBytes());
        }
    }

    @Test
    void aMergeRunTwiceChangesNothingTheSecondTime() throws IOException {
        long mark = jobOnThreeNodes();
        // The node files are copied back, as if a crash had stopped the first merge before it removed them.
        Path nodes = dir.resolve(NodeNumbering.NODES);
        byte[] n1 = Files.readAllBytes(nodes.resolve(NodeNumbering.manifestName("n1")));
        byte[] n2 = Files.readAllBytes(nodes.resolve(NodeNumbering.manifestName("n2")));
        ManifestMerge.mergeFiles(dirFd, dir, mark, ManifestSwap.Seam.NONE);
        byte[] once = manifestBytes();
        Files.createDirectories(nodes);
        Files.write(nodes.resolve(NodeNumbering.manifestName("n1")), n1);
        Files.write(nodes.resolve(NodeNumbering.manifestName("n2")), n2);
        Files.writeString(dir.resolve(NodeManifests.MARK), mark + "\n");
        assertEquals(0, ManifestMerge.mergeFiles(dirFd, dir, mark, ManifestSwap.Seam.NONE).fromNodes());
        assertArrayEquals(once, manifestBytes());
    }

    private void assertNoLineTwice() throws IOException {
        Set<String> seen = new HashSet<>();
        for (String l : Files.readAllLines(dir.resolve(Manifest.FILE_NAME))) assertTrue(seen.add(l), "twice: " + l);
    }

    private void clear() throws IOException {
        try (var w = Files.walk(dir)) {
            for (Path p : w.sorted(java.util.Comparator.reverseOrder()).toList()) if (!p.equals(dir)) Files.delete(p);
        }
    }

    /** A killed batch node: the next run's open merges its nodes' lines before it adopts unlisted versions. */
    @Test
    void theNextRunMergesWhatAKilledBatchNodeLeftSoItsVersionsKeepTheirHashTimeAndHost() throws IOException {
        jobOnThreeNodes();
        for (long n : new long[] {1, 2, 3, 5, 6, 7}) Files.writeString(dir.resolve(VersionNaming.versionName("job.gbw", n)), "v" + n);
        Files.createDirectories(dir.resolve(VersionStore.HIDDEN));
        Files.writeString(dir.resolve(VersionStore.HIDDEN).resolve("open"), "999999999"); // the killed run's marker
        List<ManifestLine> live = rows();
        try (VersionStore s = VersionStore.open(dir, Instant.now())) {
            s.drain();
        }
        List<ManifestLine> after = rows();
        assertEquals(versionsAndHosts(live), versionsAndHosts(after), "the history the readers showed, now in manifest.jsonl");
        assertEquals(live, after);
        for (ManifestLine r : after) {
            assertFalse("recovered-unlisted".equals(r.reason()), "adopted as unlisted: " + r);
            if (r.isVersion() && r.version() >= 5 && r.version() != 7) assertTrue(r.host().startsWith("n"), r.toJson());
        }
        ManifestLine five = after.stream().filter(r -> r.isVersion() && r.version() == 5).findFirst().orElseThrow();
        assertEquals("%064x".formatted(5), five.sha256());
        assertEquals(T0.plusSeconds(12), five.instant());
        assertFalse(Files.exists(dir.resolve(NodeNumbering.NODES)));
    }

    /** The batch node's own store: stopped after the rename, its next lines go to the new manifest, and the next open finishes. */
    @Test
    void theBatchNodesLinesAfterAMergeCutShortGoToTheMergedManifest() throws IOException {
        List<String> seen = new ArrayList<>();
        try (VersionStore s = VersionStore.open(dir, Instant.now())) {
            s.acrossNodes(new NodeNumbering("b"));
            s.event(ManifestLine.event("start"));
            s.drain();
            long mark = ManifestMerge.mark(s);
            assertTrue(Files.exists(dir.resolve(NodeManifests.MARK)));
            s.event(ManifestLine.event("batch-line"));
            Files.writeString(dir.resolve(NodeNumbering.NODES).resolve(NodeNumbering.manifestName("n1")), v(1, "n1", "saved", 1) + ev("n1-line", "n1", 2));
            s.drain();
            assertThrows(IOException.class, () -> ManifestMerge.merge(s, mark, (step, what) -> {
                if (step == ManifestSwap.Step.RENAMED) throw new IOException("crash after the rename");
            }));
            s.event(ManifestLine.event("after-merge"));
            s.drain();
        }
        try (VersionStore s = VersionStore.open(dir, Instant.now())) {
            s.drain();
        }
        for (ManifestLine r : rows()) seen.add(r.isVersion() ? r.version() + "/" + r.host() : r.event() + "/" + r.host());
        assertEquals(List.of("start/b", "batch-line/b", "1/n1", "n1-line/n1", "after-merge/b"), seen);
        assertNoLineTwice();
        assertFalse(Files.exists(dir.resolve(NodeNumbering.NODES)));
    }

    /** As above, but the merging process dies (halts: nothing of it runs after the step) instead of throwing. */
    @Test
    void aMergingProcessKilledAfterAnyStepLeavesWhatTheNextOpenFinishes() throws Exception {
        long mark = jobOnThreeNodes();
        ManifestMerge.mergeFiles(dirFd, dir, mark, ManifestSwap.Seam.NONE);
        byte[] want = manifestBytes();
        for (int stopAt = 0; stopAt < 5; stopAt++) {
            clear();
            jobOnThreeNodes();
            Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-cp",
                    System.getProperty("java.class.path"), MergeKiller.class.getName(), dir.toString(), Integer.toString(stopAt))
                    .redirectErrorStream(true).start();
            assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS));
            assertEquals(9, p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
            try (VersionStore s = VersionStore.open(dir, Instant.now())) {
                s.drain();
            }
            assertArrayEquals(want, manifestBytes(), "killed after step " + stopAt + ", then the next run's open");
            assertNoLineTwice();
            assertFalse(Files.exists(dir.resolve(NodeNumbering.NODES)));
        }
    }

    /** An agent killed between link() and its line: at the end its version files are hashed and listed as its node's, in order. */
    @Test
    void versionFilesAStoppedAgentNeverListedAreHashedAndListedAsItsNodesBeforeTheMerge() throws IOException {
        try (VersionStore s = VersionStore.open(dir, Instant.now())) {
            s.acrossNodes(new NodeNumbering("b"));
            long mark = ManifestMerge.mark(s);
            s.event(ManifestLine.event("start"));
            s.drain();
            Files.writeString(dir.resolve("job.000001.gbw"), "one");
            Files.writeString(dir.resolve("job.000002.gbw"), "two");
            Files.writeString(dir.resolve("job.000003.gbw"), "three"); // linked by n2, which was killed before its line
            Files.writeString(dir.resolve(NodeNumbering.NODES).resolve(NodeNumbering.manifestName("n1")), v(1, "n1", "saved", 1));
            Files.writeString(dir.resolve(NodeNumbering.NODES).resolve(NodeNumbering.manifestName("n2")),
                    v(2, "n2", "saved", 2) + "{\"version\":3,\"fi"); // killed mid-append
            Files.createFile(dir.resolve(NodeNumbering.TOMBSTONE));
            Files.createLink(dir.resolve("job.000004.gbw"), dir.resolve(NodeNumbering.TOMBSTONE)); // a lost version's number
            assertEquals(1, ManifestMerge.adoptUnlisted(s, "n2"));
            assertEquals(0, ManifestMerge.adoptUnlisted(s, "n2"), "listed now");
            ManifestMerge.Result r = ManifestMerge.merge(s, mark);
            assertEquals(Map.of("b", 0, "n1", 1, "n2", 2), r.savedByHost());
        }
        List<ManifestLine> rows = rows();
        assertEquals(List.of("start/b", "1/n1/saved", "2/n2/saved", "3/n2/saved"), versionsAndHosts(rows));
        ManifestLine three = rows.get(3);
        assertEquals("recovered-unlisted", three.reason());
        assertEquals(io.versionfs.sys.Sha256.of(dir.resolve("job.000003.gbw")), three.sha256());
    }
}
