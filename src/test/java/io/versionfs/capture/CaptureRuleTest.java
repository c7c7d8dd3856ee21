package io.versionfs.capture;

import org.junit.jupiter.api.Test;

import static io.versionfs.capture.CaptureRule.AtClose.ALREADY_SAVED;
import static io.versionfs.capture.CaptureRule.AtClose.NOT_VERSIONED;
import static io.versionfs.capture.CaptureRule.AtClose.NOT_WRITTEN_BY_HANDLE;
import static io.versionfs.capture.CaptureRule.AtClose.VERSION;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The capture rule as the sequences of calls real programs make, without a mount. */
class CaptureRuleTest {
    /** A file's change counter and the counter its last version covers, driven like LiveFile does. */
    private static final class File {
        long changes, saved;

        long write() {
            return ++changes;
        }

        CaptureRule.AtClose close(long handleChange) {
            CaptureRule.AtClose c = CaptureRule.atClose(handleChange, changes, saved, true);
            if (c == VERSION) saved = changes;
            return c;
        }
    }

    @Test
    void aWriteThenCloseIsOneVersion() {
        File f = new File();
        long h = f.write();
        assertEquals(VERSION, f.close(h));
    }

    @Test
    void aHandleThatOnlyReadGivesNothingEvenAfterOthersWrote() {
        File f = new File();
        f.write(); // another handle wrote and has not closed yet
        assertEquals(NOT_WRITTEN_BY_HANDLE, f.close(0), "O_RDWR opened just to read");
    }

    @Test
    void aDupOrForkCopyClosingAfterTheVersionGivesNothing() {
        File f = new File();
        long h = f.write();
        assertEquals(VERSION, f.close(h));
        assertEquals(ALREADY_SAVED, f.close(h), "the second close of the same open file description");
    }

    @Test
    void twoWritersEachGetTheirClose() {
        File f = new File();
        long a = f.write();
        long b = f.write();
        assertEquals(VERSION, f.close(a), "a's close covers both writes");
        assertEquals(ALREADY_SAVED, f.close(b), "b wrote nothing since that version");
        long b2 = f.write();
        assertEquals(VERSION, f.close(b2));
    }

    @Test
    void aTruncateAtOpenIsAChangeButNotTheHandlesWrite() {
        File f = new File();
        f.write(); // O_TRUNC at open: counted on the file, not on a handle
        assertEquals(NOT_WRITTEN_BY_HANDLE, f.close(0), "the shell's close of the original descriptor before dup2'd writes");
        assertTrue(CaptureRule.unsavedAtEnd(f.changes, f.saved, true), "versioned at the end if nobody writes");
    }

    @Test
    void aFileOutsideEverySeriesIsNeverAVersion() {
        assertEquals(NOT_VERSIONED, CaptureRule.atClose(5, 5, 0, false));
        assertFalse(CaptureRule.unsavedAtEnd(5, 0, false));
    }

    @Test
    void nothingIsLeftAtTheEndOnceTheLastChangeIsSaved() {
        File f = new File();
        long h = f.write();
        f.close(h);
        assertFalse(CaptureRule.unsavedAtEnd(f.changes, f.saved, true));
        f.write();
        assertTrue(CaptureRule.unsavedAtEnd(f.changes, f.saved, true), "written through a descriptor never closed");
    }
}
