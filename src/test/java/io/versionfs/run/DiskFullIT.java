package io.versionfs.run;

import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A full disk must cost versions, never the program's data: the program's writes and closes
 * succeed, the lost version is in the manifest and the summary, and the run exits 207. Versions of
 * this run give way oldest first.
 * Uses a 2.5 MiB tmpfs, so it needs root (CI runs as root).
 */
class DiskFullIT {
    @TempDir
    Path dir;
    TestSupport.SmallDisk disk;
    Path small;

    @BeforeEach
    void smallDisk() throws Exception {
        disk = TestSupport.smallDisk(dir.resolve("small"), "2560k");
        small = disk.path();
    }

    @AfterEach
    void unmount() throws Exception {
        if (disk != null) disk.close();
        TestSupport.assertNoMountUnder(dir);
    }

    @Test
    void aVersionThatDoesNotFitIsLostAndTheJobsDataIsNot() throws Exception {
        String f = "small/job.gbw", py = "python3 " + TestSupport.FSOPS;
        // 1 MiB file: v1 is a hard link (no space). Each in-place edit needs a fresh 1 MiB copy
        // first (copy-on-write); on 2.5 MiB the second copy cannot fit.
        String script = py + " rewrite " + f + " big 1 1 1048576; "
                + py + " overwrite-middle " + f + " EDIT-ONE 1000; "
                + py + " overwrite-middle " + f + " EDIT-TWO 2000; "
                + "head -c 2008 " + f + " | tail -c 8 > check.txt";
        Result r = TestSupport.run(dir, EngineIT.NO_GUARD, 180, TestSupport.LAUNCHER.toString(), "run", "--strict", "--target", f, "--",
                "sh", "-c", script);
        assertEquals(207, r.exit(), "job succeeded, a version was lost: " + r.err());
        assertEquals("EDIT-TWO", Files.readString(dir.resolve("check.txt")), "the program's write succeeded");
        byte[] last = Files.readAllBytes(dir.resolve(f));
        assertEquals(1048576, last.length);
        assertEquals("EDIT-ONE", new String(last, 1000, 8));
        assertEquals("EDIT-TWO", new String(last, 2000, 8));
        List<Map<String, Object>> rows = TestSupport.manifestVersions(dir.resolve("small/job.gbw.versions"));
        long lost = rows.stream().filter(m -> "lost".equals(m.get("status"))).count();
        assertTrue(lost >= 1, "the manifest records the lost version: " + rows);
        assertTrue(rows.stream().filter(m -> "lost".equals(m.get("status"))).allMatch(m -> m.get("error") != null));
        assertTrue(r.err().contains("LOST"), "the summary says so: " + r.err());
        // Oldest first: version 1 gave way so the copy for the second edit fit; the newest is kept
        // and, like every saved one, intact.
        assertEquals("lost", rows.get(0).get("status"), rows.toString());
        Map<String, Object> newest = rows.get(rows.size() - 1);
        assertEquals("saved", newest.get("status"), rows.toString());
        assertEquals(1048576L, newest.get("size"));
        EngineIT.verifyVersions(dir.resolve("small/job.gbw.versions"));
    }

    @Test
    void versionsOnAnotherFilesystemAreCopiedAndThatIsSaidOnce() throws Exception {
        // Directory mode with the versions folder on the tmpfs: hard links cannot cross filesystems.
        Path work = dir.resolve("work");
        Files.createDirectory(work);
        String py = "python3 " + TestSupport.FSOPS;
        Result r = TestSupport.run(work, null, 180, TestSupport.LAUNCHER.toString(), "run", "--mode", "dir",
                "--versions-dir", small.resolve("v").toString(), "--target", "job.gbw", "--", "sh", "-c",
                py + " write job.gbw one; " + py + " write job.gbw two; " + py + " write job.gbw three");
        assertEquals(0, r.exit(), r.err());
        assertEquals(1, r.err().split("cannot hard-link", -1).length - 1, "said exactly once: " + r.err());
        List<Path> vs = TestSupport.versions(small.resolve("v"), "job", ".gbw");
        assertEquals(List.of("one", "two", "three"), vs.stream().map(p -> {
            try {
                return Files.readString(p);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }).toList());
        assertEquals("three", Files.readString(work.resolve("job.gbw")));
    }

    @Test
    void symlinkModeWithVersionsOnAnotherFilesystemCopiesInAndOut() throws Exception {
        // The live file sits in the versions folder (tmpfs), the target on disk: no hard link
        // or rename can cross, so the start and the final restore copy (and keep the mode).
        Path work = dir.resolve("work2");
        Files.createDirectory(work);
        Files.writeString(work.resolve("job.gbw"), "start");
        Files.setPosixFilePermissions(work.resolve("job.gbw"), java.nio.file.attribute.PosixFilePermissions.fromString("rw-r-----"));
        Result r = TestSupport.run(work, null, 180, TestSupport.LAUNCHER.toString(), "run",
                "--versions-dir", small.resolve("v2").toString(), "--target", "job.gbw", "--", "sh", "-c",
                "cat job.gbw > seen; echo end > job.gbw");
        assertEquals(0, r.exit(), r.err());
        assertEquals("start", Files.readString(work.resolve("seen")));
        assertTrue(Files.isRegularFile(work.resolve("job.gbw"), java.nio.file.LinkOption.NOFOLLOW_LINKS));
        assertEquals("end\n", Files.readString(work.resolve("job.gbw")));
        assertEquals("rw-r-----", java.nio.file.attribute.PosixFilePermissions.toString(
                Files.getPosixFilePermissions(work.resolve("job.gbw"))));
        List<Path> vs = TestSupport.versions(small.resolve("v2"), "job", ".gbw");
        assertEquals(2, vs.size());
        assertEquals("start", Files.readString(vs.get(0)));
    }
}
