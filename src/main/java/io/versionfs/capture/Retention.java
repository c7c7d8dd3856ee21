package io.versionfs.capture;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * Which versions of a series to keep, restic-style: each rule keeps some versions, a version is
 * kept if any rule keeps it, and a size budget then thins the rest oldest first. One class for
 * the live path (applied after each capture) and for {@code versionfs prune} (after the fact).
 *
 * <ul>
 *   <li>{@code keepLast N}: the newest N;</li>
 *   <li>{@code keepEvery N}: every Nth version of the series (numbers N, 2N, ...);</li>
 *   <li>{@code keepFirst}: the oldest (the content before the first run: on by default);</li>
 *   <li>{@code minInterval}: of versions closer than this to the next one, only the later is
 *       kept: the last state before a quiet interval is what remains;</li>
 *   <li>{@code maxSize}: total bytes of the kept versions; the oldest go first, never the first
 *       (if kept) or the last.</li>
 * </ul>
 * With no keep rule at all, every version is kept (then only the interval and the budget thin).
 * The newest version is always kept.
 */
public final class Retention {
    /** One version as the rules see it. */
    public record Entry(long number, long size, Instant time) {}

    /**
     * @param keepLast    the newest N, or 0 for no such rule
     * @param keepEvery   every Nth, or 0 for no such rule
     * @param keepFirst   keep the oldest
     * @param maxSize     budget in bytes, or -1 for none
     * @param minInterval at most one version per interval, or null/zero for none
     */
    public record Policy(int keepLast, int keepEvery, boolean keepFirst, long maxSize, Duration minInterval) {
        public static final Policy KEEP_ALL = new Policy(0, 0, true, -1, null);

        public boolean keepsAll() {
            return keepLast <= 0 && keepEvery <= 0 && maxSize < 0 && (minInterval == null || minInterval.isZero());
        }

        /** For messages and manifest lines: the options that make this policy. */
        public String describe() {
            List<String> p = new ArrayList<>();
            if (keepLast > 0) p.add("--keep-last " + keepLast);
            if (keepEvery > 0) p.add("--keep-every " + keepEvery);
            if (!keepFirst) p.add("--keep-first=false");
            if (maxSize >= 0) p.add("--max-size " + maxSize);
            if (minInterval != null && !minInterval.isZero()) p.add("--min-interval " + minInterval.toSeconds() + "s");
            return p.isEmpty() ? "keep all" : String.join(" ", p);
        }
    }

    private Retention() {}

    /** The versions to prune from {@code all} (oldest first, one series), each with why. */
    public record Decision(Entry entry, String why) {}

    public static List<Decision> toPrune(List<Entry> all, Policy p) {
        int n = all.size();
        List<Decision> out = new ArrayList<>();
        if (n == 0 || p.keepsAll()) return out;
        BitSet keep = keptByRules(all, p);
        String[] why = new String[n];
        String ruleWhy = "not kept by " + p.describe();
        for (int i = 0; i < n; i++) if (!keep.get(i)) why[i] = ruleWhy;
        if (p.minInterval() != null && !p.minInterval().isZero()) thinByInterval(all, p, keep, why);
        if (p.maxSize() >= 0) thinBySize(all, p, keep, why);
        for (int i = 0; i < n; i++) if (!keep.get(i)) out.add(new Decision(all.get(i), why[i]));
        return out;
    }

    /** What --keep-last, --keep-every and --keep-first keep (everything when none is given), and the newest. */
    private static BitSet keptByRules(List<Entry> all, Policy p) {
        int n = all.size();
        BitSet keep = new BitSet(n);
        boolean anyKeepRule = p.keepLast() > 0 || p.keepEvery() > 0;
        if (!anyKeepRule) keep.set(0, n);
        if (p.keepLast() > 0) keep.set(Math.max(0, n - p.keepLast()), n);
        if (p.keepEvery() > 0) {
            for (int i = 0; i < n; i++) if (all.get(i).number() % p.keepEvery() == 0) keep.set(i);
        }
        if (p.keepFirst()) keep.set(0);
        keep.set(n - 1); // the newest, always
        return keep;
    }

    /** --min-interval: a version followed within the interval by another is superseded by it. */
    private static void thinByInterval(List<Entry> all, Policy p, BitSet keep, String[] why) {
        for (int i = 0; i < all.size() - 1; i++) {
            if (!keep.get(i) || (i == 0 && p.keepFirst())) continue;
            Duration gap = Duration.between(all.get(i).time(), all.get(i + 1).time());
            if (gap.compareTo(p.minInterval()) < 0) {
                keep.clear(i);
                why[i] = "superseded within --min-interval " + p.minInterval().toSeconds() + "s by version "
                        + all.get(i + 1).number();
            }
        }
    }

    /** --max-size: thins the oldest kept ones (never the first if kept by --keep-first, never the last). */
    private static void thinBySize(List<Entry> all, Policy p, BitSet keep, String[] why) {
        int n = all.size();
        long total = 0;
        for (int i = keep.nextSetBit(0); i >= 0; i = keep.nextSetBit(i + 1)) total += Math.max(0, all.get(i).size());
        for (int i = keep.nextSetBit(0); i >= 0 && total > p.maxSize(); i = keep.nextSetBit(i + 1)) {
            if (i == n - 1 || (i == 0 && p.keepFirst())) continue;
            keep.clear(i);
            total -= Math.max(0, all.get(i).size());
            why[i] = "over --max-size " + p.maxSize() + " bytes (oldest first)";
        }
    }
}
