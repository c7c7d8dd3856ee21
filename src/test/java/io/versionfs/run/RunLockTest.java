package io.versionfs.run;

import io.versionfs.errors.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** One run at a time per target: the lock file, taken, refused while held, and removed where it is at the end. */
class RunLockTest {
    @TempDir
    Path dir;

    @Test
    void aHeldLockRefusesASecondRunAndIsGoneOnceReleased() throws Exception {
        Path lock = dir.resolve(".job.gbw.versionfs-lock");
        try (RunLock held = RunLock.acquire(lock, "job.gbw")) {
            assertTrue(Files.exists(lock));
            UserError e = assertThrows(UserError.class, () -> RunLock.acquire(lock, "job.gbw"));
            assertEquals(209, e.code, e.getMessage());
        }
        assertFalse(Files.exists(lock));
        RunLock.acquire(lock, "job.gbw").close(); // free again
    }

    @Test
    void theLockFileIsRemovedWhereItIsAfterItsFolderWasRenamed() throws Exception {
        Path d = Files.createDirectory(dir.resolve("d"));
        RunLock held = RunLock.acquire(d.resolve(".job.gbw.versionfs-lock"), "job.gbw");
        Path d2 = Files.move(d, dir.resolve("d2")); // from outside the job, during the run
        held.close();
        assertFalse(Files.exists(d2.resolve(".job.gbw.versionfs-lock")), "no lock file left saying a run holds the target");
        assertTrue(Files.isDirectory(d2));
    }
}
