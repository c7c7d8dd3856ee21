package io.versionfs.fs;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The memo answers only what the backing file said, only for that name, and forgets on every change. */
class CapabilityMemoTest {
    private static final long HOUR = 3_600_000_000_000L;

    @Test
    void remembersOnlyWhatWasSeenAbsent() {
        CapabilityMemo m = new CapabilityMemo(HOUR);
        assertFalse(m.knownAbsent("job.gbw"), "nothing is assumed before the backing file answered");
        m.absent("job.gbw");
        assertTrue(m.knownAbsent("job.gbw"));
        assertFalse(m.knownAbsent("other.gbw"));
    }

    @Test
    void anyChangeThroughTheMountForgetsEverything() {
        CapabilityMemo m = new CapabilityMemo(HOUR);
        m.absent("a");
        m.absent("b");
        m.forgetAll();
        assertFalse(m.knownAbsent("a"));
        assertFalse(m.knownAbsent("b"));
    }

    @Test
    void aMountCoherentAcrossNodesRemembersNothing() {
        CapabilityMemo m = new CapabilityMemo(HOUR);
        m.absent("a");
        m.off();
        assertFalse(m.knownAbsent("a"));
        m.absent("a");
        assertFalse(m.knownAbsent("a"));
    }

    @Test
    void anExpiredAnswerIsAskedAgain() {
        CapabilityMemo m = new CapabilityMemo(-1); // already expired when stored: never remembered
        m.absent("a");
        assertFalse(m.knownAbsent("a"));
    }
}
