package io.versionfs.capture;

import io.versionfs.sys.Posix;
import io.versionfs.sys.Quota;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The headroom guard's rule, for a disk and for a quota. (This machine's kernel has no quota
 * format built in, so the kernel side is exercised only as "nothing visible", last test.)
 */
class HeadroomTest {
    private static final long GIB = 1L << 30, MIB = 1L << 20;

    @Test
    void theDefaultKeepsFivePercentButNeverMoreThanTenGiB() {
        // 100 GiB disk: keep 5 GiB. 6 GiB free, 512 MiB version: fine; 1.5 GiB version: not.
        assertNull(Headroom.headroomShort(6 * GIB, 100 * GIB, 512 * MIB, -1));
        assertNotNull(Headroom.headroomShort(6 * GIB, 100 * GIB, 3 * GIB / 2, -1));
        // 1 PiB disk: keep 10 GiB, not 50 TiB.
        assertNull(Headroom.headroomShort(11 * GIB, 1L << 50, 512 * MIB, -1));
        assertNotNull(Headroom.headroomShort(10 * GIB, 1L << 50, 512 * MIB, -1));
    }

    @Test
    void minFreeOverridesTheDefaultAndZeroMeansUpToTheLastByte() {
        assertNull(Headroom.headroomShort(100, 1000, 100, 0));
        assertNotNull(Headroom.headroomShort(100, 1000, 101, 0));
        String why = Headroom.headroomShort(5 * MIB, 100 * GIB, MIB, 8 * MIB);
        assertNotNull(why);
        assertTrue(why.contains("--min-free") && why.contains(String.valueOf(8 * MIB)), why);
    }

    @Test
    void aQuotaCountsItsSoftLimitWhenSetAndNoLimitMeansNone() {
        int blimits = 1, space = 2;
        // hard 40 MiB, soft 30 MiB (in 1 KiB blocks), 25 MiB used: 5 MiB of headroom
        Quota.Limit q = Quota.parse("user", 1000, 40 * 1024, 30 * 1024, 25 * MIB, blimits | space);
        assertEquals(30 * MIB, q.limit());
        assertEquals(5 * MIB, q.headroom());
        // A 4 MiB version under a 30 MiB quota keeps min(5%, 10 GiB) = 1.5 MiB: fits; 4.5 MiB does not.
        assertNull(Headroom.headroomShort(q.headroom(), q.limit(), 3 * MIB, -1));
        assertNotNull(Headroom.headroomShort(q.headroom(), q.limit(), 4 * MIB, -1));
        // Hard limit only.
        assertEquals(40 * MIB, Quota.parse("group", 7, 40 * 1024, 0, 0, blimits | space).limit());
        // No limits (0/0), or limits not reported: no quota.
        assertNull(Quota.parse("user", 1, 0, 0, 5 * MIB, blimits | space));
        assertNull(Quota.parse("user", 1, 40 * 1024, 0, 5 * MIB, space));
        // Over quota: no headroom, never negative.
        assertEquals(0, Quota.parse("user", 1, 10, 0, 50 * MIB, blimits | space).headroom());
    }

    @Test
    void whereNoQuotaIsVisibleTheKernelCallAnswersNothingAndNeverThrows() throws Exception {
        int fd = Posix.openDir(System.getProperty("java.io.tmpdir"));
        try {
            Quota q = Quota.of(fd);
            assertNull(q.tightest(), "no quota is set on this machine's temp folder");
            assertNull(q.tightest(), "asked twice: the same answer");
        } finally {
            Posix.C.close(fd);
        }
    }
}
