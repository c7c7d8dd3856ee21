package io.versionfs.capture;

import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/** What the end-of-run summary says of one versions folder's versions: per series, and the lost ones in all. */
final class Tally {
    private final Map<String, VersionLog> logs = new ConcurrentHashMap<>();
    private final AtomicInteger lost = new AtomicInteger();

    /** A version was attempted: saved, or lost at once. */
    void added(Version v) {
        if (v.lost()) lost.incrementAndGet();
        log(v.file).add(v);
    }

    /** A saved version was given up later: {@code now} is its lost record. */
    void gaveUp(Version was, Version now) {
        lost.incrementAndGet();
        log(was.file).replace(was, now);
    }

    /** Version {@code number} of {@code series} gave way to the job's writes. */
    void dropped(String series, long number) {
        lost.incrementAndGet();
        log(series).markLost(number);
    }

    /** Version {@code number} of {@code series} was removed by the keep rules. */
    void pruned(String series, long number) {
        log(series).markPruned(number);
    }

    /** Replaces {@code series}'s list by {@code inOrder} (a job on several nodes: the merged history). */
    void relist(String series, java.util.List<Version> inOrder) {
        VersionLog l = new VersionLog();
        inOrder.forEach(l::add);
        logs.put(series, l);
    }

    int lostCount() {
        return lost.get();
    }

    /** Per series, in name order. */
    Map<String, VersionLog.Snapshot> versions() {
        Map<String, VersionLog.Snapshot> out = new TreeMap<>();
        logs.forEach((f, l) -> out.put(f, l.snapshot()));
        return out;
    }

    private VersionLog log(String series) {
        return logs.computeIfAbsent(series, f -> new VersionLog());
    }
}
