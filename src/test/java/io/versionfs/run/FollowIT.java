package io.versionfs.run;

import io.versionfs.Await;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import io.versionfs.capture.Manifest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static io.versionfs.run.EngineIT.verifyVersions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Symlink mode follows a rename-away or delete of the target (ORCA AutoStart, CP2K's .bak-N
 * rotation) so the same version series goes on; --no-follow keeps the old behaviour.
 */
class FollowIT {
    private static final Path AUTOSTART = TestSupport.PROJECT.resolve("examples/autostart.sh");

    @TempDir
    Path dir;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    /** The after-the-fact follow mode, as runs get it where the trap is unavailable (NameTrapIT covers the trap). */
    private Result vfs(String... args) throws Exception {
        String[] a = args;
        if (args.length > 0 && args[0].equals("run")) {
            a = new String[args.length + 1];
            a[0] = "run";
            a[1] = "--no-trap";
            System.arraycopy(args, 1, a, 2, args.length - 1);
        }
        return TestSupport.vfs(dir, 180, a);
    }

    /** The --json summary's counts of targets that are a loss beyond lost versions. */
    private static Map<String, Integer> uncounted(Result r) {
        Map<String, Object> summary = io.versionfs.text.Json.parseObject(r.out().trim());
        return Map.of("unversionable", ((Number) summary.get("unversionable")).intValue(),
                "noticed_after_the_fact", ((Number) summary.get("noticed_after_the_fact")).intValue());
    }

    private static List<String> reasons(List<Map<String, Object>> rows) {
        return rows.stream().map(m -> (String) m.get("reason")).toList();
    }

    /**
     * For a job script: wait until versionfs has followed (its symlink is back at {@code name}), as
     * the tests' exact reason lists need. A real program pauses long enough (ORCA's integrals);
     * a test must not count on a pause.
     */
    private static String untilFollowed(String name) {
        return Await.shell("[ -L " + name + " ]");
    }

    private void assertRegular(String name, String startsWith) throws Exception {
        Path p = dir.resolve(name);
        assertTrue(Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS), name + " is a regular file");
        assertTrue(Files.readString(p, java.nio.charset.StandardCharsets.ISO_8859_1).startsWith(startsWith),
                name + " starts with " + startsWith);
    }

    @Test
    void orcaAutoStartIsFollowedAndEveryStepCaptured() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "guess\n");
        // The example's own 1.5 s pause (integrals, first SCF) is the scenario: the follow (inotify,
        // milliseconds) must land within it, as for the real program; the script has no hook to wait on.
        Result r = vfs("run", "--target", "job.gbw", "--", AUTOSTART.toString(), "job.gbw", "8", "1.5", "64");
        assertEquals(0, r.exit(), r.err());
        assertRegular("job.ges", "guess\n");
        assertRegular("job.gbw", "step 8\n");
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertEquals(9, rows.size(), "initial + 8 steps: " + rows);
        assertEquals("initial", rows.get(0).get("reason"));
        for (int i = 1; i <= 8; i++) {
            String v = Files.readString(dir.resolve("job.gbw.versions").resolve((String) rows.get(i).get("path")),
                    java.nio.charset.StandardCharsets.ISO_8859_1);
            assertTrue(v.startsWith("step " + i + "\n"), "version " + (i + 1) + " is step " + i);
        }
        assertTrue(r.err().contains("followed"), r.err());
        assertTrue(Manifest.read(dir.resolve("job.gbw.versions")).stream().anyMatch(m -> "followed".equals(m.event())));
    }

    @Test
    void noFollowKeepsTheOldWarning() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "guess\n");
        Result r = vfs("run", "--no-follow", "--json", "--target", "job.gbw", "--", AUTOSTART.toString(), "job.gbw", "3", "1", "4");
        assertEquals(0, r.exit(), r.err());
        assertRegular("job.ges", "guess\n");
        assertRegular("job.gbw", "step 3\n");
        assertEquals(List.of("initial"), reasons(verifyVersions(dir.resolve("job.gbw.versions"))));
        assertTrue(r.err().contains("is not versioned"), r.err());
        assertEquals(Map.of("unversionable", 1, "noticed_after_the_fact", 0), uncounted(r), "not versioned at all: " + r.out());
    }

    /**
     * A save the follow mode can only notice after the fact (an atomic save onto the target with
     * the trap off) may have missed writes nobody can count: --strict fails the successful job.
     */
    @Test
    void strictFailsAJobWhoseSavesWereOnlyNoticed() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "guess\n");
        String job = "echo one > t; mv t job.gbw; sleep 1.5";
        Result plain = vfs("run", "--json", "--target", "job.gbw", "--", "sh", "-c", job);
        assertEquals(0, plain.exit(), plain.err());
        assertTrue(plain.err().contains("writes may be missed"), plain.err());
        assertEquals(Map.of("unversionable", 0, "noticed_after_the_fact", 1), uncounted(plain),
                "noticed after the fact, not unversionable: " + plain.out());
        Result strict = vfs("run", "--strict", "--target", "job.gbw", "--", "sh", "-c", job);
        assertEquals(207, strict.exit(), strict.err());
        assertRegular("job.gbw", "one\n");
    }

    @Test
    void aDeleteThenRecreateIsFollowed() throws Exception {
        Files.writeString(dir.resolve("x.dat"), "zero\n");
        Result r = vfs("run", "--target", "x.dat", "--", "sh", "-c",
                "rm x.dat; " + untilFollowed("x.dat") + "; echo one > x.dat; echo two > x.dat");
        assertEquals(0, r.exit(), r.err());
        assertRegular("x.dat", "two\n");
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("x.dat.versions"));
        assertEquals(List.of("initial", "close", "close"), reasons(rows), rows.toString());
    }

    @Test
    void cp2kStyleRotationCapturesEachNewFile() throws Exception {
        // rename X to X.bak-N, then write a new X once versionfs followed (a computing program pauses longer)
        Files.writeString(dir.resolve("X.restart"), "r0\n");
        Result r = vfs("run", "--target", "X.restart", "--", "sh", "-c",
                "for i in 1 2 3; do mv X.restart X.restart.bak-$i; " + untilFollowed("X.restart") + "; echo r$i > X.restart; done");
        assertEquals(0, r.exit(), r.err());
        assertRegular("X.restart", "r3\n");
        for (int i = 1; i <= 3; i++) assertRegular("X.restart.bak-" + i, "r" + (i - 1) + "\n");
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("X.restart.versions"));
        assertEquals(List.of("initial", "close", "close", "close"), reasons(rows), rows.toString());
        // Each follow names its own rename (an older renamed symlink, not yet a regular file, was named again).
        List<String> followed = Manifest.read(dir.resolve("X.restart.versions")).stream()
                .filter(m -> "followed".equals(m.event())).map(m -> m.detail()).toList();
        assertEquals(List.of("renamed X.restart to X.restart.bak-1", "renamed X.restart to X.restart.bak-2",
                "renamed X.restart to X.restart.bak-3"), followed, r.err());
    }

    @Test
    void aRecreateRightAfterTheRenameIsKeptAndSaidWhenTheRaceIsLost() throws Exception {
        // No pause: the program may create the new file before the symlink is back. Either way
        // nothing is lost: the file is versioned (through the link, or by copy when noticed). The job
        // then stays until versionfs has reacted while it runs (a "followed" or "follow-too-late" line).
        Files.writeString(dir.resolve("job.gbw"), "guess\n");
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "mv job.gbw job.ges; echo new > job.gbw; "
                + Await.shell("grep -qs '\"event\":\"follow' job.gbw.versions/manifest.jsonl"));
        assertEquals(0, r.exit(), r.err());
        assertRegular("job.ges", "guess\n");
        assertRegular("job.gbw", "new\n");
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        Path v = dir.resolve("job.gbw.versions");
        boolean saved = false;
        for (Map<String, Object> m : rows) {
            if ("saved".equals(m.get("status")) && Files.readString(v.resolve((String) m.get("path"))).equals("new\n")) saved = true;
        }
        assertTrue(saved, "the new file's content is a version: " + rows);
        if (r.err().contains("before versionfs could put its link back")) {
            assertTrue(rows.stream().anyMatch(m -> "noticed".equals(m.get("reason"))), rows.toString());
        }
    }

    @Test
    void writesToTheRenamedFileAreNotVersionsOfTheTarget() throws Exception {
        // rename away, then, once followed, rewrite the renamed file (through its symlink into the
        // mount: it becomes a regular file only after a second of quiet) 20 times
        Files.writeString(dir.resolve("job.gbw"), "guess\n");
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c",
                "mv job.gbw job.ges; " + untilFollowed("job.gbw") + "; for i in $(seq 1 20); do echo ges$i > job.ges; done");
        assertEquals(0, r.exit(), r.err());
        assertRegular("job.ges", "ges20\n");
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertEquals(List.of("initial"), reasons(rows), "job.ges's rewrites are not job.gbw's versions: " + rows);
    }

    @Test
    void aRenameIntoASubfolderIsFollowedAndTheMovedFileIsRegular() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "orig\n");
        Files.createDirectory(dir.resolve("old"));
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "mv job.gbw old/job.ges; " + untilFollowed("job.gbw") + "; echo new > job.gbw");
        assertEquals(0, r.exit(), r.err());
        assertRegular("old/job.ges", "orig\n");
        assertRegular("job.gbw", "new\n");
        assertEquals(List.of("initial", "close"), reasons(verifyVersions(dir.resolve("job.gbw.versions"))));
    }
}
