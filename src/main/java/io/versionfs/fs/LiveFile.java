package io.versionfs.fs;

import io.versionfs.sys.FileCopier;
import io.versionfs.capture.Version;
import io.versionfs.capture.VersionStore;
import io.versionfs.report.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import jnr.ffi.Pointer;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The live content of one versioned file, and the rule that turns it into versions.
 *
 * <h2>Consistency</h2>
 * Reads and writes hold the read lock (positional I/O on one descriptor is safe concurrently, just
 * as on a local disk); taking a version holds the write lock, so it waits for writes in flight and
 * no write from another process or handle can land in the middle of it.
 *
 * <h2>O(1) capture: hard link, then copy-on-write</h2>
 * A version is a hard link of the live file, made inside flush in microseconds whatever the size.
 * From then on the live inode <em>is</em> the version and must never change, so the file is
 * marked {@code shared} and a background copy of it to a fresh file starts at once. The next
 * modification waits only for whatever of that copy is unfinished, then swaps the fresh copy in
 * under the live name and carries on there. A truncate to zero (the usual full rewrite) needs no
 * copy at all: the copy is cancelled and an empty file swapped in; and once a program is seen
 * rewriting from scratch, the eager copy is not even started (it would double the job's write
 * I/O for nothing) until the program edits in place again.
 */
final class LiveFile {
    private static final LibC C = Posix.C;
    private static final AtomicInteger TMP_SEQ = new AtomicInteger();
    /** Copies are I/O bound; a small pool keeps several files' copies going without a thread each. */
    private static final ThreadPoolExecutor COPIER = new ThreadPoolExecutor(2, 64, 60, TimeUnit.SECONDS,
            new SynchronousQueue<>(), Posix.backgroundThreads("versionfs-copier"));

    static {
        COPIER.prestartAllCoreThreads(); // no thread creation inside the program's close()
    }

    private final int rootFd;
    private final String file;            // name of the version series (basename)
    private final VersionStore store;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final AtomicLong modCount = new AtomicLong();

    // All below guarded by lock (written under the write lock).
    private volatile String rel;          // path relative to rootFd; changes on rename
    private int fd = -1;                  // shared descriptor while any handle is open
    private int opens;
    private volatile long versionedMod;   // modCount covered by the last version (read unlocked in flushFrom)
    private volatile boolean shared;      // live inode is also the latest version file
    private Version sharedWith;
    private CopyJob pending;
    private volatile boolean unlinked;
    /**
     * Whether the program rewrote the file from scratch (truncate to zero) after the last
     * version. Then the eager background copy would be thrown away unread, doubling the job's
     * write I/O for nothing; so it is skipped until the program is seen editing in place again.
     */
    private boolean rewritesFromScratch;

    private volatile boolean retired;     // renamed away to a name that is not versioned

    LiveFile(int rootFd, String rel, String file, VersionStore store) {
        this.rootFd = rootFd;
        this.rel = rel;
        this.file = file;
        this.store = store;
        // A file with other hard links may be a version file (a run killed before it could
        // unshare): copy before the first modification, whatever we know or not.
        Pointer st = Posix.allocStat();
        if (C.fstatat(rootFd, rel, st, LibC.AT_SYMLINK_NOFOLLOW) == 0 && Posix.statNlink(st) > 1) shared = true;
    }

    /** The file was renamed to a name that is not versioned: its closes make no more versions. */
    void retire() {
        retired = true;
    }

    String rel() {
        return rel;
    }

    VersionStore store() {
        return store;
    }

    // ---- descriptor lifetime -------------------------------------------------------------

    /** Registers an open handle; returns 0 or -errno. */
    int acquire() {
        lock.writeLock().lock();
        try {
            if (fd < 0) {
                int r = openLive();
                if (r < 0) return r;
                fd = r;
            }
            opens++;
            return 0;
        } finally {
            lock.writeLock().unlock();
        }
    }

    void release() {
        lock.writeLock().lock();
        try {
            if (--opens == 0 && fd >= 0) {
                C.close(fd);
                fd = -1;
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    int openCount() {
        lock.readLock().lock();
        try {
            return opens;
        } finally {
            lock.readLock().unlock();
        }
    }

    private int openLive() {
        int r = C.openat(rootFd, rel, LibC.O_RDWR | LibC.O_CLOEXEC, 0);
        if (r < 0 && Posix.errno() == Errno.EACCES) r = C.openat(rootFd, rel, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        return r < 0 ? -Posix.errno() : r;
    }

    // ---- data path -------------------------------------------------------------------------

    int read(Pointer buf, long size, long offset) {
        lock.readLock().lock();
        try {
            long n = C.pread(fd, buf, size, offset);
            return n < 0 ? -Posix.errno() : (int) n;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** write_buf: the data arrives as a FUSE buffer vector (possibly a pipe to splice from). */
    int writeBuf(Pointer bufvec, long offset, Handle h) {
        int err = lockForModify();
        if (err < 0) return err;
        try {
            int n = io.versionfs.sys.FuseBufs.copyToFd(bufvec, fd, offset);
            if (n < 0) return n;
            h.wroteMod = modCount.incrementAndGet();
            return n;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** ftruncate (h != null), truncate(2) on the path (h == null), or O_TRUNC at open. */
    int truncate(long size, Handle h) {
        if (size == 0) {
            lock.writeLock().lock();
            try {
                if (shared) {
                    int r = swapInEmpty();
                    if (r < 0) return r;
                } else {
                    int r = ftruncateLocked(0);
                    if (r <= 0) return r; // 0: already empty, not a change
                }
                markChanged(h);
                return 0;
            } finally {
                lock.writeLock().unlock();
            }
        }
        int err = lockForModify();
        if (err < 0) return err;
        try {
            int r = ftruncateLocked(size);
            if (r > 0) markChanged(h);
            return Math.min(r, 0);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Truncates under a held lock; returns 1 if the size changed, 0 if it already had that size, or -errno. */
    private int ftruncateLocked(long size) {
        int f = fd;
        boolean temp = false;
        if (f < 0) {
            f = C.openat(rootFd, rel, LibC.O_WRONLY | LibC.O_CLOEXEC, 0);
            if (f < 0) return -Posix.errno();
            temp = true;
        }
        try {
            Pointer st = Posix.allocStat();
            if (C.fstat(f, st) == 0 && Posix.statSize(st) == size) return 0;
            return C.ftruncate(f, size) == 0 ? 1 : -Posix.errno();
        } finally {
            if (temp) C.close(f);
        }
    }

    /**
     * Records a change. Only changes made through a handle (write, ftruncate) make that handle's
     * close a version; a truncation at open (O_TRUNC, or truncate(2) before open as libfuse2 does)
     * is not a write: shells open with O_TRUNC, dup2 and close the original descriptor before
     * writing a byte, and that close must not produce an empty version. Such changes are still
     * versioned by the next writer's close, or as "final-unclosed" at the end.
     */
    private void markChanged(Handle h) {
        long m = modCount.incrementAndGet();
        if (h != null) h.wroteMod = m;
    }

    /** A fresh create: new (empty) content, but like O_TRUNC not a write by the handle. */
    void created() {
        lock.writeLock().lock();
        try {
            markChanged(null);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * Returns holding the read lock with the live file safe to modify (not shared with a version),
     * or returns -errno holding nothing.
     */
    private int lockForModify() {
        lock.readLock().lock();
        if (!shared) return 0;
        lock.readLock().unlock();
        lock.writeLock().lock();
        try {
            if (shared) {
                int r = unshareLocked();
                if (r < 0) return r;
            }
            lock.readLock().lock(); // downgrade: still ours when the write lock goes
            return 0;
        } finally {
            lock.writeLock().unlock();
        }
    }

    // ---- capture ---------------------------------------------------------------------------

    /**
     * Called from flush (the program's close() is waiting): saves a version when the file changed
     * since the last version and this handle took part in that change. A handle that only read
     * (O_RDWR opened to read), or a dup/fork closing its copy after the version was already taken,
     * gives nothing.
     */
    void flushFrom(Handle h, int pid) {
        // Cheap exits, no lock, no /proc read: readers, and dup/fork copies closing after the version.
        if (h.wroteMod <= versionedMod || retired) return;
        String cmd = Caller.commandLine(pid);   // outside the lock: other writers need not wait for /proc
        lock.writeLock().lock();
        try {
            long m = modCount.get();
            if (m == versionedMod) return;
            if (h.wroteMod <= versionedMod) return;
            takeVersionLocked("close", pid, cmd, m);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Saves a version if anything changed since the last one, whoever changed it. */
    Version captureIfChanged(String reason, int pid) {
        lock.writeLock().lock();
        try {
            long m = modCount.get();
            if (m == versionedMod) return null;
            return takeVersionLocked(reason, pid, Caller.commandLine(pid), m);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Saves the current content unconditionally (e.g. a file renamed onto a target name). */
    Version captureNow(String reason, int pid) {
        lock.writeLock().lock();
        try {
            return takeVersionLocked(reason, pid, Caller.commandLine(pid), modCount.get());
        } finally {
            lock.writeLock().unlock();
        }
    }

    private Version takeVersionLocked(String reason, int pid, String cmd, long m) {
        VersionStore.Captured c;
        if (fd >= 0) {
            // Through the descriptor: works even if the name was unlinked meanwhile.
            c = store.capture(LibC.AT_FDCWD, "/proc/self/fd/" + fd, LibC.AT_SYMLINK_FOLLOW_LINK, file, reason, pid, cmd);
        } else {
            c = store.capture(rootFd, rel, 0, file, reason, pid, cmd);
        }
        versionedMod = m;
        if (c.linked()) {
            shared = true;
            sharedWith = c.version();
            if (!rewritesFromScratch) {
                pending = new CopyJob(rel);
                pending.start();
            }
        }
        return c.version();
    }

    // ---- copy-on-write ---------------------------------------------------------------------

    /** Makes the live name an independent file again; caller holds the write lock. */
    private int unshareLocked() {
        return unshareLocked(true);
    }

    /**
     * @param mayDropVersion when the copy fails (disk full): true drops the version so the program
     *                       can write in place; false (end of run, nobody writes any more) keeps
     *                       the version and leaves the file sharing its storage.
     */
    private int unshareLocked(boolean mayDropVersion) {
        CopyJob job = pending;
        pending = null;
        if (mayDropVersion) rewritesFromScratch = false; // edited in place: copy eagerly again
        if (job == null) {
            job = new CopyJob(rel);
            job.run();
        }
        String err = job.await();
        if (err == null) {
            if (C.renameat(rootFd, job.tmp, rootFd, rel) != 0) {
                err = "rename: " + Posix.strerror(Posix.errno());
                C.unlinkat(rootFd, job.tmp, 0);
            }
        }
        if (err != null && !mayDropVersion) {
            Log.warn(rel + " shares its storage with its last version (no room for a separate copy: " + err
                    + "); copy it before editing it in place, or that version changes too");
            return 0;
        }
        if (err != null) {
            if (sharedWith == null) {
                // Linked to something we did not capture in this run (left by a killed run):
                // writing in place would change that file, so the write fails instead.
                return -Errno.ENOSPC;
            }
            // No room for a fresh copy. The program's write must still succeed, so the version
            // gives way: its link is removed (the manifest says why) and we write in place.
            store.giveUp(sharedWith, "dropped before the next write: could not copy the live file (" + err + ")");
        } else if (fd >= 0) {
            C.close(fd);
            int r = openLive();
            if (r < 0) {
                fd = -1;
                shared = false;
                return r;
            }
            fd = r;
        }
        shared = false;
        sharedWith = null;
        return 0;
    }

    /** Truncate-to-zero while shared: no need to copy anything, an empty file takes the name. */
    private int swapInEmpty() {
        rewritesFromScratch = true;
        CopyJob job = pending;
        pending = null;
        if (job != null) {
            job.cancel();
            job.await();
            C.unlinkat(rootFd, job.tmp, 0);
        }
        String tmp = tmpName(rel);
        int mode = currentMode();
        int nf = C.openat(rootFd, tmp, LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL | LibC.O_CLOEXEC, mode);
        if (nf < 0 || C.renameat(rootFd, tmp, rootFd, rel) != 0) {
            int e = Posix.errno();
            if (nf >= 0) {
                C.close(nf);
                C.unlinkat(rootFd, tmp, 0);
            }
            if (sharedWith == null) return -e;
            store.giveUp(sharedWith, "dropped before truncation: could not create a new file (" + Posix.strerror(e) + ")");
            shared = false;
            sharedWith = null;
            return ftruncateLocked(0) < 0 ? -e : 0;
        }
        if (fd >= 0) {
            C.close(fd);
            fd = nf;
        } else {
            C.close(nf);
        }
        shared = false;
        sharedWith = null;
        return 0;
    }

    private int currentMode() {
        Pointer st = Posix.allocStat();
        if (C.fstatat(rootFd, rel, st, LibC.AT_SYMLINK_NOFOLLOW) == 0) return Posix.statMode(st) & 07777;
        return 0644;
    }

    private static String tmpName(String rel) {
        int slash = rel.lastIndexOf('/');
        String dir = slash < 0 ? "" : rel.substring(0, slash + 1);
        return dir + CaptureFs.TMP_PREFIX + rel.substring(slash + 1) + "~" + TMP_SEQ.incrementAndGet();
    }

    /** Background copy of the (shared, hence immutable) live file to a fresh temp file beside it. */
    private final class CopyJob implements Runnable {
        final String src;
        final String tmp;
        volatile boolean cancelled;
        final CompletableFuture<String> done = new CompletableFuture<>();

        CopyJob(String src) {
            this.src = src;
            this.tmp = tmpName(src);
        }

        void start() {
            COPIER.execute(this);
        }

        void cancel() {
            cancelled = true;
        }

        /** Waits for the copy; null on success, else why it failed. */
        String await() {
            return done.join();
        }

        @Override
        public void run() {
            try {
                done.complete(FileCopier.copyAt(rootFd, src, rootFd, tmp, false, () -> cancelled));
            } catch (Throwable t) {
                C.unlinkat(rootFd, tmp, 0);
                done.complete(String.valueOf(t));
            }
        }
    }

    // ---- namespace changes -----------------------------------------------------------------

    void renamedTo(String newRel) {
        lock.writeLock().lock();
        try {
            rel = newRel;
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** The name was unlinked: drop a pending copy (nobody will write to this name through us). */
    void unlinked() {
        lock.writeLock().lock();
        try {
            unlinked = true;
            if (pending != null) {
                pending.cancel();
                pending.await();
                C.unlinkat(rootFd, pending.tmp, 0);
                pending = null;
            }
            shared = false;
            sharedWith = null;
        } finally {
            lock.writeLock().unlock();
        }
    }

    boolean isUnlinked() {
        return unlinked;
    }

    /**
     * At the end of a run: make the live file independent of the last version (finishing the
     * pending copy), so it can be moved into place without the version changing afterwards.
     */
    void detach() {
        lock.writeLock().lock();
        try {
            if (shared && !unlinked) unshareLocked(false);
        } finally {
            lock.writeLock().unlock();
        }
    }

    int fsync(boolean dataOnly) {
        lock.readLock().lock();
        try {
            if (fd < 0) return 0;
            int r = dataOnly ? C.fdatasync(fd) : C.fsync(fd);
            return r == 0 ? 0 : -Posix.errno();
        } finally {
            lock.readLock().unlock();
        }
    }

    int fstat(Pointer st) {
        lock.readLock().lock();
        try {
            if (fd < 0) return C.fstatat(rootFd, rel, st, LibC.AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -Posix.errno();
            return C.fstat(fd, st) == 0 ? 0 : -Posix.errno();
        } finally {
            lock.readLock().unlock();
        }
    }
}
