package io.versionfs.capture;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * The keep rules ({@link Retention}) applied right at capture, inside the program's close(), so
 * a --max-size budget holds at every moment, not only once hashes catch up: versions no rule keeps
 * are removed, each with a manifest line saying why. Only this run's versions are considered;
 * {@code versionfs prune} handles the rest. The newest is always kept (it may share the live
 * file), so removing others never touches the live file.
 */
final class LiveRetention {
    private final Publication publication;
    private final Hasher hasher;
    private final Tally tally;
    private final Supplier<Hooks> hooks;
    private volatile Retention.Policy policy = Retention.Policy.KEEP_ALL;
    /** This run's saved versions per series that the rules still keep, oldest first. Each list guards itself. */
    private final Map<String, List<Version>> kept = new ConcurrentHashMap<>();
    private final AtomicInteger pruned = new AtomicInteger();

    LiveRetention(Publication publication, Hasher hasher, Tally tally, Supplier<Hooks> hooks) {
        this.publication = publication;
        this.hasher = hasher;
        this.tally = tally;
        this.hooks = hooks;
    }

    void policy(Retention.Policy p) {
        this.policy = p;
    }

    Retention.Policy policy() {
        return policy;
    }

    /** A version was saved: the rules are applied to its series now. */
    void saved(Version v) {
        if (policy.keepsAll()) return;
        List<Version> list = kept.computeIfAbsent(v.file, k -> new ArrayList<>());
        synchronized (list) {
            list.add(v);
        }
        prune(v.file);
    }

    /**
     * Removes what the rules do not keep, except a version whose --on-version hook runs right
     * now: it goes when the hook ends (this runs again then), so no hook finds its file gone.
     */
    void prune(String series) {
        Retention.Policy p = policy;
        List<Version> list = p.keepsAll() ? null : kept.get(series);
        if (list == null) return;
        synchronized (list) {
            List<Retention.Entry> entries = new ArrayList<>(list.size());
            for (Version x : list) entries.add(new Retention.Entry(x.number, Math.max(0, x.disk >= 0 ? x.disk : x.size), x.time));
            Set<Long> gone = new HashSet<>();
            for (Retention.Decision d : Retention.toPrune(entries, p)) {
                Version x = list.stream().filter(y -> y.number == d.entry().number()).findFirst().orElse(null);
                if (x != null && remove(x, d.why())) gone.add(x.number);
            }
            list.removeIf(y -> gone.contains(y.number));
        }
    }

    int prunedCount() {
        return pruned.get();
    }

    /** Removes {@code x} for the keep rules and records it; false while its hook runs. */
    private boolean remove(Version x, String why) {
        Hooks h = hooks.get();
        boolean hookQueued;
        synchronized (x) { // as its hook: it either runs on the file, or finds it removed
            if (h != null && h.busy(x)) return false;
            publication.remove(x); // not hashed yet: its "saved" line is not written, the pruned one is
            hookQueued = x.hookQueued;
        }
        // A queued hook counts itself as skipped when its turn comes; one never queued is counted here.
        if (h != null && !hookQueued) h.skip(x, "the version was removed by the keep rules before its hook's turn");
        hasher.cancel(x.versionFile);
        pruned.incrementAndGet();
        tally.pruned(x.file, x.number);
        hasher.append(x.toLine().path(null).status("pruned").pruned(why).build());
        return true;
    }
}
