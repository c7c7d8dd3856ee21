package io.versionfs.sys;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** Failures carry their errno from the kernel up; English is read in one place only ({@link Errno#of}). */
class ErrnoTest {
    @Test
    void aCopyFailureCarriesTheKernelsErrno(@TempDir Path dir) {
        IoError e = FileCopier.copyAt(LibC.AT_FDCWD, dir.resolve("absent").toString(), LibC.AT_FDCWD,
                dir.resolve("b").toString(), false, () -> false);
        assertNotNull(e);
        assertEquals(Errno.ENOENT.code, e.errno());
        assertFalse(e.noSpace());
        assertFalse(Files.exists(dir.resolve("b")));
    }

    @Test
    void aCancelledCopyIsEcanceledAndLeavesNothing(@TempDir Path dir) throws IOException {
        Files.write(dir.resolve("a"), new byte[1 << 20]);
        IoError e = FileCopier.copyAt(LibC.AT_FDCWD, dir.resolve("a").toString(), LibC.AT_FDCWD,
                dir.resolve("b").toString(), false, () -> true);
        // A reflink finishes before the first check for cancellation: then the copy is complete.
        if (e == null) {
            assertEquals(1 << 20, Files.size(dir.resolve("b")));
            return;
        }
        assertTrue(e.cancelled());
        assertEquals(Errno.ECANCELED.code, e.errno());
        assertFalse(Files.exists(dir.resolve("b")));
    }

    @Test
    void noSpaceIsEnospcOrEdquotWhereverItComesFrom() {
        assertTrue(new IoError(Errno.ENOSPC.code, "write").noSpace());
        assertTrue(new IoError(Errno.EDQUOT.code, "write").noSpace());
        assertFalse(new IoError(Errno.EIO.code, "write").noSpace());
        assertTrue(Errno.isNoSpace(new IoError(Errno.EDQUOT.code, "copy").thrown()), "our own exception keeps its errno");
        assertTrue(Errno.isNoSpace(new FileSystemException("/x", null, "No space left on device")), "the JDK's text");
        assertTrue(Errno.isNoSpace(new FileSystemException("/x", null, "Disk quota exceeded")));
        assertFalse(Errno.isNoSpace(new FileSystemException("/x", null, "Read-only file system")));
        assertEquals(Errno.EROFS.code, Errno.of(new FileSystemException("/x", null, "Read-only file system")));
        assertEquals(Errno.ENAMETOOLONG.code, Errno.of(new FileSystemException("/x", null, "File name too long")));
        assertEquals(Errno.ENOENT.code, Errno.of(new java.nio.file.NoSuchFileException("/x")));
    }

    @Test
    void fuseAnswersAreNegatedCodes() {
        assertEquals(-2, Errno.ENOENT.negated());
        assertTrue(Errno.EEXIST.is(17));
    }
}
