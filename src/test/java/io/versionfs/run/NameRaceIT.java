package io.versionfs.run;

import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static io.versionfs.run.EngineIT.verifyVersions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two processes of one job race on the target's name: one deletes (or renames away) the target
 * and creates it again, the other overwrites it ({@code echo b > job.gbw}), 150-250 times each, in
 * the background together. On a plain disk no open(O_CREAT|O_TRUNC) of the second fails: the
 * kernel looks the name up and opens what it found (or creates it). Through versionfs the
 * lookup and the open are two FUSE calls, and the name could change between them: the open then
 * failed with ENOENT ("can't create job.gbw: nonexistent directory"), a write of the job lost.
 *
 * <p>Each run asserts: no open failed, every version matches its manifest sha256 and holds what
 * the file held at some close (one of the contents the job wrote, or empty: one process's
 * O_TRUNC came between the other's write and its close, as it can on a plain disk), and the
 * final file holds one of the contents the job wrote.
 */
class NameRaceIT {
    private static final int N = 150;
    /** A rename away races less often than a delete (one process writes into the renamed file): more rounds. */
    private static final int N_RENAME = 250;
    /** What a close can see: a write, or the file just truncated by the other process's open. */
    private static final Set<String> AT_A_CLOSE = Set.of("init\n", "a\n", "b\n", "");

    @TempDir
    Path dir;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    @Test
    void deleteAndCreateRacingAnOverwriteLosesNoWriteWithTheTrap() throws Exception {
        Result r = race("rm -f job.gbw", List.of(), N);
        assertTrue(r.err().contains("held while versionfs handles them"), "the trap held the job's calls: " + r.err());
        assertTrue(r.err().contains("held and done for the job: " + N + " delete(s)"), r.err());
    }

    @Test
    void deleteAndCreateRacingAnOverwriteLosesNoWriteInDirectoryMode() throws Exception {
        race("rm -f job.gbw", List.of("--mode", "dir"), N);
    }

    @Test
    void renameAwayAndCreateRacingAnOverwriteFailsNoOpenWithTheTrap() throws Exception {
        // A write into the file renamed away goes to job.ges, as on a plain disk: no count of versions.
        Result r = race("mv -f job.gbw job.ges", List.of(), N_RENAME);
        assertTrue(r.err().contains("held while versionfs handles them"), "the trap held the job's calls: " + r.err());
        assertTrue(AT_A_CLOSE.contains(Files.readString(dir.resolve("job.ges"))));
    }

    @Test
    void renameAwayAndCreateRacingAnOverwriteFailsNoOpenInDirectoryMode() throws Exception {
        race("mv -f job.gbw job.ges", List.of("--mode", "dir"), N_RENAME);
        assertTrue(AT_A_CLOSE.contains(Files.readString(dir.resolve("job.ges"))));
    }

    /** Runs the race with {@code away} as the first process's name change; checks what holds for every variant. */
    private Result race(String away, List<String> mode, int n) throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "init\n");
        String job = "( for i in $(seq " + n + "); do " + away + "; echo a > job.gbw || echo FAILED-A; done ) & "
                + "( for i in $(seq " + n + "); do echo b > job.gbw || echo FAILED-B; done ) & wait";
        List<String> args = new java.util.ArrayList<>(List.of("run", "--target", "job.gbw"));
        args.addAll(mode);
        args.addAll(List.of("--", "bash", "-c", job));
        Result r = TestSupport.vfs(dir, 300, args.toArray(String[]::new));
        assertEquals(0, r.exit(), r.err());
        long failed = r.out().lines().filter(l -> l.startsWith("FAILED-")).count();
        assertEquals(0, failed, "opens of job.gbw that failed (a plain disk fails none): " + r.out());
        String last = Files.readString(dir.resolve("job.gbw"));
        assertTrue(last.equals("a\n") || last.equals("b\n"), "the final file holds a write of the job: '" + last + "'");
        for (Map<String, Object> row : verifyVersions(dir.resolve("job.gbw.versions"))) {
            if (!"saved".equals(row.get("status"))) continue;
            String v = Files.readString(dir.resolve("job.gbw.versions").resolve((String) row.get("path")));
            assertTrue(AT_A_CLOSE.contains(v), "version " + row.get("path") + " holds a write of the job: '" + v + "'");
        }
        return r;
    }
}
