package io.versionfs.capture;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * What the end-of-run summary needs about one file's versions, in bounded memory: counts, the
 * first and last few versions, and the lost ones (up to a limit). A week-long job can make a
 * million versions; the manifest on disk has every one, the daemon keeps this much.
 */
public final class VersionLog {
    public static final int HEAD = 8, TAIL = 8, MAX_LOST = 100;

    private final List<Version> head = new ArrayList<>();
    private final Deque<Version> tail = new ArrayDeque<>();
    private final List<Version> lostOnes = new ArrayList<>();
    private long total, lost, pruned;

    synchronized void add(Version v) {
        total++;
        if (v.lost()) {
            lost++;
            if (lostOnes.size() < MAX_LOST) lostOnes.add(v);
        }
        if (head.size() < HEAD) {
            head.add(v);
        } else {
            tail.addLast(v);
            if (tail.size() > TAIL) tail.removeFirst();
        }
    }

    /** A saved version became lost later (see GiveWay.giveUp). */
    synchronized void replace(Version old, Version now) {
        head.replaceAll(x -> x == old ? now : x);
        List<Version> t = new ArrayList<>(tail);
        t.replaceAll(x -> x == old ? now : x);
        tail.clear();
        tail.addAll(t);
        lost++;
        if (lostOnes.size() < MAX_LOST) lostOnes.add(now);
    }

    /** Version {@code number} was given up to free space: shown as lost from now on. */
    synchronized void markLost(long number) {
        java.util.function.UnaryOperator<Version> f = x -> x.number == number && !x.lost()
                ? new Version(x.number, x.file, null, x.size, x.time, x.pid, x.command, x.reason, Version.Status.LOST,
                "dropped to make room for the job's own writes") : x;
        head.replaceAll(f);
        List<Version> t = new ArrayList<>(tail);
        t.replaceAll(f);
        tail.clear();
        tail.addAll(t);
        lost++;
    }

    /** Version {@code number} was removed by the keep rules: not shown as a version any more. */
    synchronized void markPruned(long number) {
        head.removeIf(x -> x.number == number);
        tail.removeIf(x -> x.number == number);
        total--;
        pruned++;
    }

    /** Immutable copy for reporting. */
    public synchronized Snapshot snapshot() {
        return new Snapshot(List.copyOf(head), List.copyOf(tail), total, lost, List.copyOf(lostOnes));
    }

    /**
     * @param head   the first versions, in order
     * @param tail   the last versions, in order (empty if everything fits in head)
     * @param total  versions attempted (saved + lost)
     * @param lost   versions that could not be saved
     * @param lostOnes the lost versions (at most MAX_LOST), wherever they were
     */
    public record Snapshot(List<Version> head, List<Version> tail, long total, long lost, List<Version> lostOnes) {
        public long saved() {
            return total - lost;
        }

        /** Versions neither in head nor tail. */
        public long elided() {
            return total - head.size() - tail.size();
        }

        public List<Version> shown() {
            List<Version> all = new ArrayList<>(head);
            all.addAll(tail);
            return all;
        }
    }
}
