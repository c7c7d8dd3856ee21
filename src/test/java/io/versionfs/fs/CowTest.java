package io.versionfs.fs;

import io.versionfs.capture.Version;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The copy-on-write state machine on its own (the diagram in {@link Cow}), without a mount. */
class CowTest {
    private static Version version(long n) {
        return new Version(n, "job.gbw", "job." + n + ".gbw", 1, Instant.now(), 1, "", "close", Version.Status.SAVED, null);
    }

    private static CopyJob job() {
        return new CopyJob(-1, -1, "tmp");
    }

    @Test
    void aFreshFileIsIndependent() {
        Cow c = new Cow(null);
        assertEquals(Cow.State.INDEPENDENT, c.state());
        assertFalse(c.mustCopyBeforeChange());
        assertTrue(c.versions().isEmpty());
    }

    @Test
    void aLinkedVersionWithoutACopyIsShared() {
        Cow c = new Cow(null);
        Version v = version(1);
        c.linked(null, v, null);
        assertEquals(Cow.State.SHARED, c.state());
        assertTrue(c.mustCopyBeforeChange());
        assertSame(v, c.versions().get(0).version());
    }

    @Test
    void aLinkedVersionWithAnEagerCopyIsCopyingAndTakingTheJobLeavesItShared() {
        Cow c = new Cow(null);
        CopyJob j = job();
        c.linked(null, version(1), j);
        assertEquals(Cow.State.COPYING, c.state());
        assertSame(j, c.job());
        assertSame(j, c.takeJob());
        assertEquals(Cow.State.SHARED, c.state(), "the caller owns the copy now; until it is swapped in, still shared");
        assertNull(c.job());
    }

    @Test
    void aSecondVersionOfTheSameInodeKeepsOneCopy() {
        Cow c = new Cow(null);
        CopyJob first = job();
        c.linked(null, version(1), first);
        c.linked(null, version(2), job()); // discarded: one copy of one inode is enough
        assertSame(first, c.job());
        assertEquals(2, c.versions().size());
    }

    @Test
    void aQuietSharedFileStartsItsCopyLater() {
        Cow c = new Cow(null);
        c.linked(null, version(1), null);
        CopyJob j = job();
        c.copying(j);
        assertEquals(Cow.State.COPYING, c.state());
        assertSame(j, c.job());
    }

    @Test
    void independentForgetsEveryVersionAndTheCopy() {
        Cow c = new Cow(null);
        c.linked(null, version(1), job());
        c.independent();
        assertEquals(Cow.State.INDEPENDENT, c.state());
        assertEquals(List.of(), c.versions());
        assertNull(c.job());
    }

    @Test
    void aVersionLeftByAKilledRunMayNotBeGivenUp() {
        Cow c = new Cow(null);
        c.linked(null, null, null);
        assertFalse(c.versions().get(0).mayGiveUp());
        c.linked(null, version(2), null);
        assertTrue(c.versions().get(1).mayGiveUp());
    }
}
