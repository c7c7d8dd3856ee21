package io.versionfs.capture;

import org.junit.jupiter.api.Test;

import java.time.Instant;

import static org.junit.jupiter.api.Assertions.assertEquals;

class VersionLogTest {
    private static Version v(long n, boolean lost) {
        return new Version(n, "job.gbw", lost ? null : "job." + n + ".gbw", 1, Instant.EPOCH, 1, "x", "close",
                lost ? Version.Status.LOST : Version.Status.SAVED, lost ? "disk full" : null);
    }

    @Test
    void keepsHeadTailAndCountsOfAMillionVersions() {
        VersionLog log = new VersionLog();
        for (long i = 1; i <= 1_000_000; i++) log.add(v(i, i % 100_000 == 0));
        VersionLog.Snapshot s = log.snapshot();
        assertEquals(1_000_000, s.total());
        assertEquals(10, s.lost());
        assertEquals(999_990, s.saved());
        assertEquals(VersionLog.HEAD, s.head().size());
        assertEquals(VersionLog.TAIL, s.tail().size());
        assertEquals(1, s.head().get(0).number);
        assertEquals(1_000_000, s.tail().get(VersionLog.TAIL - 1).number);
        assertEquals(1_000_000 - VersionLog.HEAD - VersionLog.TAIL, s.elided());
        assertEquals(10, s.lostOnes().size());
    }

    @Test
    void aVersionGivenUpLaterCountsAsLost() {
        VersionLog log = new VersionLog();
        Version a = v(1, false);
        log.add(a);
        log.add(v(2, false));
        log.replace(a, v(1, true));
        VersionLog.Snapshot s = log.snapshot();
        assertEquals(1, s.lost());
        assertEquals(1, s.saved());
        assertEquals(Version.Status.LOST, s.head().get(0).status);
    }
}
