package io.versionfs.fs;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * An open file description as FUSE sees it (one per open(); dup and fork share it). A handle on a
 * versioned file does its I/O through its {@link LiveFile}; any other handle through its own
 * descriptor. A pass-through handle becomes a versioned one when its file is renamed or linked
 * onto a versioned name while open ({@link #attach}).
 */
final class Handle {
    /** Our descriptor from open(); pass-through I/O uses it. -1 for handles opened on a LiveFile. */
    final int fd;
    final FileId id;
    final boolean writable;
    /** Opened with O_APPEND: every write goes to the end of the real file, whatever offset the kernel computed. */
    boolean append;
    /** Set at open for a versioned file, or later by {@link #attach}. Read without a lock. */
    volatile LiveFile live;
    /** The file's change counter right after this handle's last change; 0 = it never changed it. */
    volatile long wrote;
    /** Pass-through operations in flight on {@link #fd}: {@link #attach} waits for them to end. */
    private final AtomicInteger inflight = new AtomicInteger();

    Handle(int fd, FileId id, boolean writable, LiveFile live) {
        this.fd = fd;
        this.id = id;
        this.writable = writable;
        this.live = live;
    }

    /**
     * Starts a pass-through operation: returns false (and starts nothing) if the handle is now
     * attached to a LiveFile, whose path must be used instead. Pairs with {@link #endPassThrough}.
     */
    boolean beginPassThrough() {
        inflight.incrementAndGet();
        if (live == null) return true;
        inflight.decrementAndGet();
        return false;
    }

    void endPassThrough() {
        inflight.decrementAndGet();
    }

    /**
     * Routes this handle through {@code lf} from now on, and waits for pass-through writes already
     * in flight on the old descriptor (at most one system call each; bounded wait) so that none
     * lands after the version the caller is about to take. Volatile write then read here, and
     * increment then read in {@link #beginPassThrough}: one side always sees the other.
     */
    void attach(LiveFile lf) {
        live = lf;
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (inflight.get() != 0 && System.nanoTime() < deadline) Thread.onSpinWait();
    }
}
