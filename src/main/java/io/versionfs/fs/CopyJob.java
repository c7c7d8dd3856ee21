package io.versionfs.fs;

import io.versionfs.sys.FileCopier;
import io.versionfs.sys.IoError;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

/**
 * One copy of a shared live file to a fresh temp file (the copy-on-write copy). It runs either on
 * the small background pool, started right after a version is taken, or inline by whoever needs
 * it first: {@link #await} takes over a job the pool has not started yet, so a wait never depends
 * on a pool thread being free. Every path completes the job, and every wait ends on completion or
 * on cancellation ({@link #cancel}, checked between 16 MiB chunks).
 *
 * <p>The pool never rejects work after the caller changed state: {@link #trySubmit} answers false
 * when saturated, and the caller records "shared, no copy running" instead (the next change copies
 * inline: the program is slowed, never hung).
 */
final class CopyJob implements Runnable {
    private static final int NEW = 0, RUNNING = 1, DONE = 2;
    /** 2 threads (2-core nodes are common; copies are I/O bound), 32 queued; beyond that, inline. */
    private static final ThreadPoolExecutor POOL = new ThreadPoolExecutor(2, 2, 60, TimeUnit.SECONDS,
            new ArrayBlockingQueue<>(32), Posix.backgroundThreads("versionfs-copier"), new ThreadPoolExecutor.AbortPolicy());

    static {
        POOL.prestartAllCoreThreads(); // no thread creation inside the program's close()
    }

    private final int srcFd;     // our own read descriptor on the shared inode; closed when done
    private final int dirFd;
    final String tmp;            // relative to dirFd
    private final AtomicInteger state = new AtomicInteger(NEW);
    private volatile boolean cancelled;
    private IoError error;       // guarded by this
    private boolean done;        // guarded by this
    private Runnable onDone;     // guarded by this; run once, outside the monitor

    /** @param srcFd a descriptor the job owns (it closes it) */
    CopyJob(int srcFd, int dirFd, String tmp) {
        this.srcFd = srcFd;
        this.dirFd = dirFd;
        this.tmp = tmp;
    }

    /** Opens a private read descriptor on the file behind {@code fd} (works even if it has no name). */
    static int reopenForRead(int fd) {
        return Posix.C.openat(LibC.AT_FDCWD, "/proc/self/fd/" + fd, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
    }

    boolean trySubmit() {
        try {
            POOL.execute(this);
            return true;
        } catch (RejectedExecutionException e) {
            return false;
        }
    }

    @Override
    public void run() {
        if (state.compareAndSet(NEW, RUNNING)) copy();
    }

    private void copy() {
        IoError err;
        try {
            err = FileCopier.copyFd(srcFd, dirFd, tmp, false, () -> cancelled);
        } catch (Throwable t) {
            Posix.C.unlinkat(dirFd, tmp, 0);
            err = IoError.of(t);
        } finally {
            Posix.C.close(srcFd);
        }
        Runnable then;
        synchronized (this) {
            error = err;
            done = true;
            state.set(DONE);
            notifyAll();
            then = onDone;
            onDone = null;
        }
        if (then != null) then.run();
    }

    /** Runs {@code r} once the copy has ended (now, if it has); it must not block. */
    void whenDone(Runnable r) {
        synchronized (this) {
            if (!done) {
                onDone = r;
                return;
            }
        }
        r.run();
    }

    synchronized boolean isDone() {
        return done;
    }

    void cancel() {
        cancelled = true;
    }

    /**
     * Waits for the copy (running it here if the pool has not started it); null on success, else
     * why it failed. When {@code stopping} turns true the copy is cancelled, so this returns within
     * one chunk's time whatever the file size.
     */
    IoError await(BooleanSupplier stopping) {
        if (state.compareAndSet(NEW, RUNNING)) {
            if (stopping.getAsBoolean()) cancel();
            copy();
        }
        synchronized (this) {
            while (!done) {
                if (stopping.getAsBoolean()) cancel();
                try {
                    wait(100);
                } catch (InterruptedException e) {
                    cancel();
                    Thread.currentThread().interrupt();
                }
            }
            return error;
        }
    }

    /** Cancels, waits, and removes the temp file: the copy is no longer wanted. */
    void discard() {
        cancel();
        if (await(() -> true) == null) Posix.C.unlinkat(dirFd, tmp, 0);
    }
}
