package io.versionfs.fs;

import io.versionfs.sys.Posix;

import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * When the background separation of one file ({@link Cow#separateInBackground}) runs next: once
 * the file has been quiet for a while after a version became shared, right after a copy ends,
 * shortly when its lock was busy, and ever later after setbacks (no room, a failed copy).
 *
 * <p>Why in the background at all: a file still sharing its inode with its last version when the
 * run ends would need a full copy then, O(size) at the worst moment (a stopped job lives on
 * Slurm's KillWait, 30 s by default: not enough for 50 GB). The trade-off, written down: a
 * program that rewrites a big file from scratch at intervals longer than the quiet time writes
 * its data twice (once itself, once our copy, at low priority).
 */
final class Separation {
    /** How long a shared file must stay unchanged before it is separated in the background. */
    static final long QUIET_NANOS = Long.getLong("versionfs.quietMillis", 5_000) * 1_000_000L;
    /** One low-priority thread for every file: it only starts copies and swaps finished ones in (O(1) each). */
    private static final ScheduledThreadPoolExecutor THREAD =
            new ScheduledThreadPoolExecutor(1, Posix.backgroundThreads("versionfs-separator"));

    private final Runnable step;
    private final long quietNanos;
    /** A step is scheduled (at most one per file). Atomic, no lock: copies ending on the pool schedule too. */
    private final AtomicBoolean scheduled = new AtomicBoolean();
    /** When a version last became shared with the live inode (System.nanoTime). Guarded by the owner's write lock. */
    private long sharedSince;
    /** Background copies that could not be made in a row: each doubles the wait. Guarded by the owner's write lock. */
    private int setbacks;

    Separation(Runnable step, long quietNanos) {
        this.step = step;
        this.quietNanos = quietNanos;
    }

    /** A version just became shared: the quiet time starts over. */
    void shared() {
        sharedSince = System.nanoTime();
    }

    /** How much longer the file must stay quiet (0 or less: it has been quiet long enough). */
    long quietLeft() {
        return quietNanos - (System.nanoTime() - sharedSince);
    }

    /** A copy ended: swap it in now. Takes no lock. */
    void now() {
        after(0);
    }

    void afterQuiet() {
        after(quietNanos);
    }

    /** The file's lock was busy: try again shortly. */
    void soon() {
        after(quietNanos / 5);
    }

    /** A background copy could not be made: try again after twice the wait of the last try (at most ~85 min at 5 s). */
    void setback() {
        int n = Math.min(setbacks++, 10);
        after(quietNanos << n);
    }

    /** The file is independent again: the next setback waits the quiet time again. */
    void succeeded() {
        setbacks = 0;
    }

    /** Schedules the step (no-op if one is pending). Takes no lock. */
    void after(long delayNanos) {
        if (!scheduled.compareAndSet(false, true)) return;
        try {
            THREAD.schedule(this::run, delayNanos, TimeUnit.NANOSECONDS);
        } catch (RejectedExecutionException e) {
            scheduled.set(false);
        }
    }

    private void run() {
        scheduled.set(false);
        step.run();
    }
}
