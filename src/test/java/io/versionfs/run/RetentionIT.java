package io.versionfs.run;

import io.versionfs.Await;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static io.versionfs.run.EngineIT.verifyVersions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The keep rules, live during a run and after the fact with {@code versionfs prune}. */
class RetentionIT {
    private static final String PY = "python3 " + TestSupport.FSOPS;

    @TempDir
    Path dir;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    private Result vfs(String... args) throws Exception {
        return TestSupport.vfs(dir, 300, args);
    }

    private static List<Long> savedNumbers(List<Map<String, Object>> rows) {
        return rows.stream().filter(m -> "saved".equals(m.get("status"))).map(m -> (Long) m.get("version")).toList();
    }

    @Test
    void keepLastAndKeepEveryLeaveExactlyTheExpectedVersions() throws Exception {
        Result r = vfs("run", "--keep-last", "5", "--keep-every", "50", "--target", "job.gbw", "--",
                "python3", TestSupport.FSOPS.toString(), "rewrite", "job.gbw", "k", "1", "200", "2000");
        assertEquals(0, r.exit(), r.err());
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertEquals(List.of(1L, 50L, 100L, 150L, 196L, 197L, 198L, 199L, 200L), savedNumbers(rows));
        assertEquals(200, rows.size(), "every version has a line; the pruned ones say why");
        assertTrue(rows.stream().filter(m -> "pruned".equals(m.get("status"))).allMatch(m -> m.get("pruned") != null));
        assertEquals(TestSupport.payload("k", 200, 2000).length, Files.size(dir.resolve("job.gbw")));
        assertTrue(r.err().contains("191 version(s) pruned"), r.err());
    }

    @Test
    void maxSizeHoldsAtEveryMoment() throws Exception {
        // 30 rewrites of 100 KB with a 350 KB budget: after every close the job measures the
        // versions folder; it must never hold more than the budget (the first and newest are kept).
        String measure = "du -b --apparent-size -c job.gbw.versions/job.*.gbw | tail -1 | cut -f1 >> sizes";
        String job = "for i in $(seq 1 30); do " + PY + " rewrite job.gbw m $i 1 100000; " + measure + "; done";
        Result r = vfs("run", "--max-size", "350K", "--target", "job.gbw", "--", "sh", "-c", job);
        assertEquals(0, r.exit(), r.err());
        for (String line : Files.readAllLines(dir.resolve("sizes"))) {
            assertTrue(Long.parseLong(line.strip()) <= 350 * 1024, "versions within budget after a close: " + line);
        }
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        List<Long> saved = savedNumbers(rows);
        assertEquals(1L, saved.get(0), "the first is kept");
        assertEquals(30L, saved.get(saved.size() - 1), "the newest is kept");
    }

    @Test
    void maxSizeCountsBlocksSharedByReflinkOnce() throws Exception {
        // On XFS a version separated from the live file by reflink shares all but the edited blocks
        // with the version before it. 8 one-byte edits of an 8 MiB file take about 8 MiB in all:
        // a 28 MiB budget keeps every version (counted by st_blocks it kept 3 of 9). The budget leaves
        // room for two versions not yet counted down: the newest, and the one the hasher may still hold.
        try (var disk = TestSupport.reflinkDisk(dir.resolve("xfs"))) {
            Path work = Files.createDirectory(disk.path().resolve("w"));
            Files.write(work.resolve("job.gbw"), TestSupport.randomBytes(8 << 20));
            // After edit e, version e has its line (published at edit e's first write, then hashed):
            // the next capture's budget then counts it by its own blocks.
            String job = "for e in 1 2 3 4 5 6 7 8; do printf X | dd of=job.gbw bs=1 seek=$((e*1000000)) conv=notrunc status=none; "
                    + Await.shell("grep -q '\"version\":'$e',' job.gbw.versions/manifest.jsonl") + "; done";
            Result r = TestSupport.run(work, null, 300, TestSupport.launcher("run", "--max-size", "28M", "--target", "job.gbw",
                    "--", "sh", "-c", job));
            assertEquals(0, r.exit(), r.err());
            Path vd = work.resolve("job.gbw.versions");
            List<Path> kept = TestSupport.versions(vd, "job", ".gbw");
            assertEquals(9, kept.size(), "every version kept: " + kept + "\n" + r.err());
            verifyVersions(vd);
        }
    }

    @Test
    void pruneDryRunChangesNothingAndPruneRecordsWhy() throws Exception {
        Result r = vfs("run", "--target", "job.gbw", "--", "python3", TestSupport.FSOPS.toString(), "rewrite", "job.gbw", "p", "1", "20", "1000");
        assertEquals(0, r.exit(), r.err());
        Path v = dir.resolve("job.gbw.versions");
        String before = Files.readString(v.resolve("manifest.jsonl"));
        Result dry = vfs("prune", "--keep-last", "3", "--dry-run", v.toString());
        assertEquals(0, dry.exit(), dry.err());
        assertTrue(dry.out().contains("would remove 16 version(s)"), dry.out());
        assertEquals(before, Files.readString(v.resolve("manifest.jsonl")), "--dry-run changes nothing");
        assertEquals(20, TestSupport.versions(v, "job", ".gbw").size());
        Result real = vfs("prune", "--keep-last", "3", v.toString());
        assertEquals(0, real.exit(), real.err());
        List<Map<String, Object>> rows = verifyVersions(v);
        assertEquals(List.of(1L, 18L, 19L, 20L), savedNumbers(rows));
        assertEquals(4, TestSupport.versions(v, "job", ".gbw").size());
        Result none = vfs("prune", v.toString());
        assertEquals(201, none.exit(), "no rule: refused, nothing removed: " + none.err());
    }

    /**
     * Identical versions are marked same_as, and stay separate files: one file for two versions
     * would let a write that gets through (root, or after a chmod) change both. Their blocks are
     * shared only by reflink, which this test's filesystem may not have.
     */
    @Test
    void identicalRewritesAreMarkedAndStaySeparateFiles() throws Exception {
        String same = "for i in 1 2 3 4 5; do " + PY + " write job.gbw same-content-every-time; done; " + PY + " write job.gbw other";
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c", same);
        assertEquals(0, r.exit(), r.err());
        Path v = dir.resolve("job.gbw.versions");
        List<Map<String, Object>> rows = verifyVersions(v);
        assertEquals(6, rows.size());
        assertEquals(4, rows.stream().filter(m -> m.get("same_as") != null).count(), rows.toString());
        java.util.Set<Object> inodes = new java.util.HashSet<>();
        for (Path p : TestSupport.versions(v, "job", ".gbw")) inodes.add(Files.getAttribute(p, "unix:ino"));
        assertEquals(6, inodes.size(), "identical versions are separate files");
        Result list = vfs("list", v.toString());
        assertTrue(list.out().contains("same:1"), list.out());
        assertTrue(list.out().contains("6 version file(s)") && list.out().contains("on disk"), list.out());
    }
}
