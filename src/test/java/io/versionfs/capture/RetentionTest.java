package io.versionfs.capture;

import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RetentionTest {
    private static final Instant T0 = Instant.parse("2026-01-01T00:00:00Z");

    /** Versions 1..n, each {@code size} bytes, one every {@code everySec} seconds. */
    private static List<Retention.Entry> series(int n, long size, long everySec) {
        List<Retention.Entry> l = new ArrayList<>();
        for (int i = 1; i <= n; i++) l.add(new Retention.Entry(i, size, T0.plusSeconds(everySec * i)));
        return l;
    }

    private static List<Long> kept(List<Retention.Entry> all, Retention.Policy p) {
        List<Long> pruned = Retention.toPrune(all, p).stream().map(d -> d.entry().number()).toList();
        return all.stream().map(Retention.Entry::number).filter(n -> !pruned.contains(n)).toList();
    }

    private static Retention.Policy policy(int last, int every, boolean first, long max, long intervalSec) {
        return new Retention.Policy(last, every, first, max, intervalSec > 0 ? Duration.ofSeconds(intervalSec) : null);
    }

    @Test
    void keepLastAndEveryCompose() {
        List<Long> k = kept(series(200, 10, 1), policy(5, 50, true, -1, 0));
        assertEquals(List.of(1L, 50L, 100L, 150L, 196L, 197L, 198L, 199L, 200L), k);
    }

    @Test
    void noRuleKeepsEverything() {
        assertEquals(10, kept(series(10, 10, 1), Retention.Policy.KEEP_ALL).size());
        assertTrue(Retention.toPrune(List.of(), policy(1, 0, true, -1, 0)).isEmpty());
    }

    @Test
    void theNewestIsAlwaysKeptAndFirstOnlyWhenAsked() {
        assertEquals(List.of(1L, 10L), kept(series(10, 10, 1), policy(1, 0, true, -1, 0)));
        assertEquals(List.of(10L), kept(series(10, 10, 1), policy(1, 0, false, -1, 0)));
        // keep-last 0 with keep-every: only multiples, the first and the last
        assertEquals(List.of(1L, 3L, 6L, 9L, 10L), kept(series(10, 10, 1), policy(0, 3, true, -1, 0)));
    }

    @Test
    void maxSizeThinsOldestFirstButNeverFirstOrLast() {
        // 10 versions of 100 bytes, budget 350: first + last + the newest one before it (300 bytes)
        assertEquals(List.of(1L, 9L, 10L), kept(series(10, 100, 1), policy(0, 0, true, 350, 0)));
        assertEquals(List.of(1L, 8L, 9L, 10L), kept(series(10, 100, 1), policy(0, 0, true, 400, 0)));
        // a budget smaller than one version: first and last stay anyway
        assertEquals(List.of(1L, 10L), kept(series(10, 100, 1), policy(0, 0, true, 5, 0)));
        assertEquals(List.of(10L), kept(series(10, 100, 1), policy(0, 0, false, 0, 0)));
    }

    @Test
    void minIntervalKeepsTheLastStateOfEachBurst() {
        // versions at t=1,2,3 (a burst), then 20, 21 (a burst), then 40
        List<Retention.Entry> l = new ArrayList<>();
        long[] at = {1, 2, 3, 20, 21, 40};
        for (int i = 0; i < at.length; i++) l.add(new Retention.Entry(i + 1, 10, T0.plusSeconds(at[i])));
        assertEquals(List.of(1L, 3L, 5L, 6L), kept(l, policy(0, 0, true, -1, 5)));
        assertEquals(List.of(3L, 5L, 6L), kept(l, policy(0, 0, false, -1, 5)));
    }

    @Test
    void everyPrunedVersionSaysWhy() {
        for (Retention.Decision d : Retention.toPrune(series(30, 10, 1), policy(3, 10, true, 100, 0))) {
            assertTrue(d.why() != null && !d.why().isBlank(), d.toString());
        }
    }
}
