package io.versionfs.fs;

import io.versionfs.capture.CaptureRule;
import io.versionfs.capture.Room;
import io.versionfs.capture.Series;
import io.versionfs.capture.Version;
import io.versionfs.capture.VersionStore;
import io.versionfs.report.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.IoError;
import io.versionfs.sys.FuseBufs;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import jnr.ffi.Pointer;
import ru.serce.jnrfuse.struct.FileStat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * One versioned file, identified by its backing inode ({@link FileId}), not by a name: every
 * handle on it, whatever name it was opened by and whatever renames, links and unlinks happened
 * since, reads and writes through this object and its one descriptor.
 *
 * <h2>Consistency</h2>
 * Reads and writes hold the read lock (positional I/O on one descriptor is safe concurrently, as
 * on a local disk); taking a version and every copy-on-write transition hold the write lock, so a
 * version waits for writes in flight and no write from another process lands in the middle of it.
 *
 * <h2>O(1) capture: hard link, then copy-on-write</h2>
 * A version is a hard link of the live inode, made inside flush in microseconds whatever the size.
 * From then on that inode <em>is</em> the version and never changes again: the next change first
 * puts a fresh inode under the live name ({@link Cow}): a background copy started at the capture,
 * or an empty file when the program truncates to zero (the usual full rewrite: no copy at all).
 * Once a program is seen rewriting from scratch, the eager copy is not even started (it would
 * double the job's write I/O for nothing) until the program edits in place again.
 *
 * <h2>A bounded end: separate while the file is quiet</h2>
 * A file still sharing its inode with its last version when the run ends would need a full copy
 * then, O(size) at the worst moment (a stopped job lives on Slurm's KillWait, 30 s by default:
 * not enough for 50 GB). So a version left shared is separated in the background once the file
 * has been quiet for {@link #QUIET_NANOS} (a program computing between two writes of its file),
 * and a finished copy is swapped in at once: at the end there is normally nothing left to copy.
 * The trade-off, written down: a program that rewrites a big file from scratch at intervals longer
 * than the quiet time writes its data twice (once itself, once our copy, at low priority).
 *
 * <h2>Lock order</h2>
 * This file's lock, then the filesystem's namespace lock, then the file table. Namespace changes
 * (rename, link, unlink in {@link CaptureFs}) update names here without taking this lock; the
 * swap of a fresh inode under the live name takes the namespace lock inside this lock.
 */
final class LiveFile {
    /** {@link #attach} result: the name now leads to another inode; look it up again. */
    static final int RETRY = Integer.MIN_VALUE;
    private static final LibC C = Posix.C;
    private static final AtomicInteger TMP_SEQ = new AtomicInteger();

    private final CaptureFs fs;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** Change counter (see {@link CaptureRule}). */
    private final AtomicLong changes = new AtomicLong();
    /** Open handles plus temporary users; changed under the namespace lock (read or write). */
    final AtomicInteger refs = new AtomicInteger();

    // Names: written only under the namespace write lock, read under the namespace lock.
    private volatile String rel;                          // main name; null once every name is gone
    private final List<String> aliases = new ArrayList<>(0); // more names, made by link() through the mount
    private volatile Series series;                       // null: not versioned (renamed away)

    // Guarded by lock (id also by the namespace write lock when it changes).
    private volatile FileId id;
    private int fd = -1;
    private boolean fdWritable;
    private final Cow cow;
    private boolean rewritesFromScratch;
    /** Change counter covered by the last version; read unlocked for the cheap exits in flush. */
    private volatile long saved;
    /** When a version last became shared with the live inode (System.nanoTime). Guarded by lock. */
    private long sharedSince;
    /** A background separation is scheduled (at most one per file). */
    private final java.util.concurrent.atomic.AtomicBoolean separationScheduled = new java.util.concurrent.atomic.AtomicBoolean();
    /** Background copies that could not be made in a row (no room, failed): each doubles the wait. Guarded by lock. */
    private int separationSetbacks;

    /** How long a shared file must stay unchanged before it is separated in the background. */
    static final long QUIET_NANOS = Long.getLong("versionfs.quietMillis", 5_000) * 1_000_000L;
    /** One low-priority thread that only starts copies and swaps finished ones in (O(1) each). */
    private static final java.util.concurrent.ScheduledThreadPoolExecutor SEPARATOR =
            new java.util.concurrent.ScheduledThreadPoolExecutor(1, Posix.backgroundThreads("versionfs-separator"));

    LiveFile(CaptureFs fs, FileId id, String rel, Series series) {
        this.fs = fs;
        this.id = id;
        this.rel = rel;
        this.series = series;
        this.cow = new Cow();
    }

    // ---- names (namespace write lock held by the caller) -------------------------------------

    FileId id() {
        return id;
    }

    String rel() {
        return rel;
    }

    Series series() {
        return series;
    }

    void setSeries(Series s) {
        series = s;
    }

    int nameCount() {
        return (rel == null ? 0 : 1) + aliases.size();
    }

    void nameAdded(String name) {
        if (rel == null) rel = name;
        else if (!name.equals(rel) && !aliases.contains(name)) aliases.add(name);
    }

    /** {@code to} becomes the main name (a link or rename onto a versioned name). */
    void promote(String to) {
        if (to.equals(rel)) return;
        aliases.remove(to);
        if (rel != null) aliases.add(rel);
        rel = to;
    }

    void nameMoved(String from, String to) {
        if (from.equals(rel)) rel = to;
        else aliases.replaceAll(a -> a.equals(from) ? to : a);
    }

    /** A folder was renamed: names under it move with it. */
    void folderMoved(String fromDir, String toDir) {
        String r = rel;
        if (r != null && r.startsWith(fromDir + "/")) rel = toDir + r.substring(fromDir.length());
        aliases.replaceAll(a -> a.startsWith(fromDir + "/") ? toDir + a.substring(fromDir.length()) : a);
    }

    /** @return true if the removed name was the main one */
    boolean nameRemoved(String name) {
        if (name.equals(rel)) {
            rel = aliases.isEmpty() ? null : aliases.remove(0);
            return true;
        }
        aliases.remove(name);
        return false;
    }

    // ---- descriptor lifetime -----------------------------------------------------------------

    /**
     * Gives this file a descriptor fit for the new handle, from {@code fd0} (the caller's fresh
     * open of the same name, which this method always closes or keeps). {@code RETRY} if the file
     * moved to another inode since the caller looked it up.
     */
    int attach(int fd0, FileId id0, boolean fd0ReadWrite, boolean wantWrite) {
        lock.writeLock().lock();
        try {
            if (!id.equals(id0)) {
                C.close(fd0);
                return RETRY;
            }
            if (fd >= 0 && (fdWritable || !wantWrite)) {
                C.close(fd0);
                return 0;
            }
            int nf;
            boolean w = true;
            if (fd0ReadWrite) {
                nf = fd0;
                fd0 = -1;
            } else {
                nf = reopen(fd0, LibC.O_RDWR);
                if (nf < 0 && !wantWrite) {
                    nf = reopen(fd0, LibC.O_RDONLY);
                    w = false;
                }
            }
            if (nf < 0) {
                int e = Posix.errno();
                C.close(fd0);
                return -e;
            }
            if (fd0 >= 0) C.close(fd0);
            if (fd >= 0) C.close(fd);
            fd = nf;
            fdWritable = w;
            return 0;
        } finally {
            lock.writeLock().unlock();
        }
    }

    private static int reopen(int fd, int mode) {
        return C.openat(LibC.AT_FDCWD, "/proc/self/fd/" + fd, mode | LibC.O_CLOEXEC, 0);
    }

    /** Under the write lock: makes sure there is a descriptor (a path operation with no handle open). */
    private int ensureFd(boolean write) {
        if (fd >= 0 && (fdWritable || !write)) return 0;
        String r = rel;
        if (r == null) return fd >= 0 ? Errno.EBADF.negated() : Errno.ENOENT.negated();
        int nf = C.openat(fs.rootFd(), r, LibC.O_RDWR | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, 0);
        boolean w = true;
        if (nf < 0 && !write) {
            nf = C.openat(fs.rootFd(), r, LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, 0);
            w = false;
        }
        if (nf < 0) return -Posix.errno();
        FileStat st = Stat.of(nf);
        if (st == null || !FileId.of(st).equals(id)) {
            C.close(nf);
            return Errno.EAGAIN.negated(); // the name was just renamed over: the caller may retry
        }
        if (fd >= 0) C.close(fd);
        fd = nf;
        fdWritable = w;
        return 0;
    }

    /** The last handle went away: close the descriptor unless someone attached meanwhile. */
    void closeIfIdle() {
        lock.writeLock().lock();
        try {
            if (refs.get() == 0 && fd >= 0) {
                C.close(fd);
                fd = -1;
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * Whether nothing needs this object any more: no handle, and either no name left or no series
     * and nothing shared (a shared inode must stay known as long as a name leads to it, or a later
     * open would write into a version). Drops the descriptor and any copy when so. Called with no
     * lock held; takes this lock, then the namespace lock to leave the table.
     */
    boolean forgetIfUnused() {
        lock.writeLock().lock();
        try {
            if (refs.get() != 0) return false;
            if (rel != null && (series != null || cow.mustCopyBeforeChange())) return false;
            return fs.forget(this, () -> {
                CopyJob j = cow.takeJob();
                if (j != null) j.discard();
                // No name leads to the inode any more: its versions cannot change now.
                if (cow.mustCopyBeforeChange()) becameIndependent();
                if (fd >= 0) C.close(fd);
                fd = -1;
            });
        } finally {
            lock.writeLock().unlock();
        }
    }

    // ---- data path -------------------------------------------------------------------------

    int read(Pointer buf, long size, long offset) {
        lock.readLock().lock();
        try {
            if (fd < 0) return Errno.EBADF.negated();
            long n = C.pread(fd, buf, size, offset);
            return n < 0 ? -Posix.errno() : (int) n;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** write_buf: the data arrives as a FUSE buffer vector (memory, or a pipe with splice_read). */
    int write(Pointer bufvec, long offset, Handle h) {
        int err = lockForChange();
        if (err < 0) return err;
        try {
            if (h.append) return append(bufvec, h);
            int n = FuseBufs.copyToFd(bufvec, fd, offset);
            // The job's writes come first: a full disk gives up versions of this run, oldest
            // first, until the write fits (or none is left, and the job sees ENOSPC as it would
            // without versionfs).
            n = retryForSpace(n, () -> FuseBufs.copyToFd(bufvec, fd, offset));
            if (n < 0) return n;
            h.wrote = changes.incrementAndGet();
            return n;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Serialises appenders: each finds the end of the file and writes there (held with the read lock). */
    private final java.util.concurrent.locks.ReentrantLock appendLock = new java.util.concurrent.locks.ReentrantLock();

    /**
     * O_APPEND: the kernel computed the offset from its own idea of the size, which is wrong when
     * the file was also written through another name (libfuse2's path API gives each hard link its
     * own kernel inode). The end of the real file is the truth.
     */
    private int append(Pointer bufvec, Handle h) {
        appendLock.lock();
        try {
            FileStat st = Stat.of(fd);
            if (st == null) return -Posix.errno();
            long end = Stat.size(st);
            int n = retryForSpace(FuseBufs.copyToFd(bufvec, fd, end), () -> FuseBufs.copyToFd(bufvec, fd, end));
            if (n < 0) return n;
            h.wrote = changes.incrementAndGet();
            return n;
        } finally {
            appendLock.unlock();
        }
    }

    /**
     * Whether the file has more than one name (ours, or links we did not make): its pages must
     * not be cached per name. {@code nlink} is from the caller's fstat of the same inode (open
     * already made one: no second system call on this path).
     */
    boolean multiplyLinked(long nlink) {
        lock.readLock().lock();
        try {
            return nameCount() > 1 || hasLinksWeDidNotMake(nlink);
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * Retries a write that found the disk full after giving up versions of this run, oldest
     * first. A version file just removed may still be open (being hashed), and its blocks come
     * back only when that ends: after the last drop, a few short waits (bounded, 0.5 s).
     */
    private int retryForSpace(int n, java.util.function.IntSupplier write) {
        boolean dropped = false;
        while ((n == Errno.ENOSPC.negated() || n == Errno.EDQUOT.negated()) && dropVersionForSpace()) {
            dropped = true;
            n = write.getAsInt();
        }
        for (int i = 0; dropped && i < 20 && (n == Errno.ENOSPC.negated() || n == Errno.EDQUOT.negated()); i++) {
            try {
                Thread.sleep(25);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            n = write.getAsInt();
        }
        return n;
    }

    private boolean dropVersionForSpace() {
        Series s = series;
        if (s != null && s.store().room().dropOne()) return true;
        for (Cow.Linked l : cow.versions()) if (l.store().room().dropOne()) return true;
        return false;
    }

    /** ftruncate (h != null), truncate(2) by path (h == null), or O_TRUNC at open (h == null). */
    int truncate(long size, Handle h) {
        if (size == 0) {
            lock.writeLock().lock();
            try {
                int r = ensureFd(true);
                if (r < 0) return r;
                if (cow.mustCopyBeforeChange()) {
                    r = swapInEmpty();
                    if (r < 0) return r;
                } else {
                    FileStat st = Stat.of(fd);
                    if (st != null && Stat.size(st) == 0) return 0; // already empty: not a change
                    if (C.ftruncate(fd, 0) != 0) return -Posix.errno();
                }
                markChanged(h);
                return 0;
            } finally {
                lock.writeLock().unlock();
            }
        }
        int err = lockForChange();
        if (err < 0) return err;
        try {
            FileStat st = Stat.of(fd);
            if (st != null && Stat.size(st) == size) return 0;
            if (C.ftruncate(fd, size) != 0) return -Posix.errno();
            markChanged(h);
            return 0;
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * fallocate(2) in any mode the backing filesystem has (allocate, KEEP_SIZE, PUNCH_HOLE,
     * ZERO_RANGE, ...), after the copy-on-write copy like a write: a punched hole must never reach
     * a saved version. A full disk gives up versions first, as for a write.
     */
    int fallocate(int mode, long offset, long length, Handle h) {
        int err = lockForChange();
        if (err < 0) return err;
        try {
            java.util.function.IntSupplier call = () -> C.fallocate(fd, mode, offset, length) == 0 ? 0 : -Posix.errno();
            int r = retryForSpace(call.getAsInt(), call);
            if (r < 0) return r;
            markChanged(h);
            return 0;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** A change; only changes through a handle make its close a version (see {@link CaptureRule}). */
    private void markChanged(Handle h) {
        long m = changes.incrementAndGet();
        if (h != null) h.wrote = m;
    }

    /** A fresh create: new (empty) content, but like O_TRUNC not a write by the handle. */
    void created() {
        changes.incrementAndGet();
    }

    /** Metadata that versions must not share (mode, owner, times, xattrs, inode flags): separate the inode first. */
    int changeMetadata(java.util.function.IntUnaryOperator onFd) {
        lock.writeLock().lock();
        try {
            int r = ensureFd(false);
            if (r < 0) return r;
            if (cow.mustCopyBeforeChange()) {
                r = unshare(true);
                if (r < 0) return r;
            }
            return onFd.applyAsInt(fd);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Reads metadata through the descriptor (an ioctl that only reads); opens one if needed. */
    int readMetadata(java.util.function.IntUnaryOperator onFd) {
        lock.writeLock().lock();
        try {
            int r = ensureFd(false);
            return r < 0 ? r : onFd.applyAsInt(fd);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * Returns holding the read lock with a writable descriptor on an inode that no version shares,
     * or returns -errno holding nothing.
     */
    private int lockForChange() {
        lock.readLock().lock();
        if (fd >= 0 && fdWritable && !cow.mustCopyBeforeChange()) return 0;
        lock.readLock().unlock();
        lock.writeLock().lock();
        try {
            int r = ensureFd(true);
            if (r < 0) return r;
            if (cow.mustCopyBeforeChange()) {
                r = unshare(true);
                if (r < 0) return r;
            }
            lock.readLock().lock(); // downgrade: still ours when the write lock goes
            return 0;
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
            if (fd >= 0) return C.fstat(fd, st) == 0 ? 0 : -Posix.errno();
            String r = rel;
            if (r == null) return Errno.ENOENT.negated();
            return C.fstatat(fs.rootFd(), r, st, LibC.AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -Posix.errno();
        } finally {
            lock.readLock().unlock();
        }
    }

    // ---- capture ---------------------------------------------------------------------------

    /**
     * From flush (the program's close() waits for this): a version if {@link CaptureRule} says so.
     * The cheap exits need no lock and no /proc read (readers, dup/fork copies closing late).
     */
    void flushFrom(Handle h, int pid) {
        if (CaptureRule.atClose(h.wrote, changes.get(), saved, series != null) != CaptureRule.AtClose.VERSION) return;
        String cmd = Caller.commandLine(pid); // outside the lock: other writers need not wait for /proc
        lock.writeLock().lock();
        try {
            long m = changes.get();
            if (CaptureRule.atClose(h.wrote, m, saved, series != null) != CaptureRule.AtClose.VERSION) return;
            // A file whose every name is gone (unlinked, or replaced by a rename) while a program
            // still writes it: versioned, but marked, so "the latest version" stays the file the
            // user sees under that name.
            takeVersion(rel == null ? "close-unlinked" : "close", pid, cmd, m);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** A version if anything changed since the last one, whoever changed it ("final-unclosed"). */
    Version captureIfChanged(String reason, int pid) {
        lock.writeLock().lock();
        try {
            long m = changes.get();
            if (!CaptureRule.unsavedAtEnd(m, saved, series != null)) return null;
            return takeVersion(reason, pid, Caller.commandLine(pid), m);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * A version of the current content whatever the counters say: a file arrived at a versioned
     * name by rename or link (the content before the run goes through {@link #captureInitial}).
     */
    Version captureNow(String reason, int pid) {
        return captureNow(reason, pid, null);
    }

    /** As {@link #captureNow(String, int)}, into {@code into} (a link onto another versioned name) if not null. */
    Version captureNow(String reason, int pid, Series into) {
        lock.writeLock().lock();
        try {
            return takeVersion(reason, pid, Caller.commandLine(pid), changes.get(), into);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * The file's content before the run is the user's own file: others may hold it open (a
     * job's log opened before the mount) or reach it by hard links we do not know, writing without
     * going through us. So it is saved as a copy (a reflink where the filesystem can: O(1)),
     * never by sharing its inode. If the inode is the last version of a run that was killed
     * before it could separate them ({@code leftover}), that version is protected like our own.
     */
    Version captureInitial(VersionStore leftoverStore, boolean leftover) {
        lock.writeLock().lock();
        try {
            rewritesFromScratch = true;
            if (leftover) {
                // Shared since the killed run: separated in the background like our own versions,
                // so this run's end does not have to copy it.
                cow.linked(leftoverStore, null, null);
                sharedSince = System.nanoTime();
                scheduleSeparation(QUIET_NANOS);
            }
            return takeVersion("initial", 0, "", changes.get(), null);
        } finally {
            lock.writeLock().unlock();
        }
    }

    private Version takeVersion(String reason, int pid, String cmd, long m) {
        return takeVersion(reason, pid, cmd, m, null);
    }

    private Version takeVersion(String reason, int pid, String cmd, long m, Series into) {
        Series s = into != null ? into : series;
        if (s == null) return null;
        int r = ensureFd(false);
        if (r < 0) {
            saved = m;
            return s.store().recordLost(s.name(), reason, pid, cmd, "cannot open the live file: " + Posix.strerror(-r));
        }
        // One fstat for both questions below: this runs inside the program's close().
        FileStat now = Stat.of(fd);
        long size = now != null ? Stat.size(now) : 0, nlink = now != null ? Stat.nlink(now) : Long.MAX_VALUE;
        // What a version takes is its blocks, not its apparent size (a sparse file's holes are free).
        if (s.store().room().skipIfLow(s.name(), reason, pid, now != null ? Stat.diskBytes(now) : 0)) {
            // The headroom guard: no version rather than a job that runs out of disk.
            if (into == null) saved = m;
            return null;
        }
        VersionStore.Captured c = reason.equals("initial") || writtenOutside || hasLinksWeDidNotMake(nlink)
                ? s.store().copyFd(fd, s.name(), reason, pid, cmd, fs::stopping)
                : s.store().captureFd(fd, s.name(), reason, pid, cmd, fs::stopping);
        if (into == null) saved = m;
        if (c.linked()) {
            CopyJob job = null;
            if (!rewritesFromScratch && cow.state() == Cow.State.INDEPENDENT) job = startCopy(true);
            cow.linked(s.store(), c.version(), job);
            sharedSince = System.nanoTime();
            if (job != null) job.whenDone(() -> scheduleSeparation(0));
            else scheduleSeparation(QUIET_NANOS);
        }
        if (refs.get() == 0) closeFdLocked();
        return c.version();
    }

    /**
     * Whether the inode has names we do not know of (a hard link made outside the mount, or
     * before the run): a write through such a name bypasses us, so a version must not share the
     * inode. Known names: ours in the mount, and the versions already linked to it.
     */
    private boolean hasLinksWeDidNotMake(long nlink) {
        // A link or unlink racing with the caller's fstat errs on the safe side: a name added
        // after it is known here; one removed after it makes the count look foreign (a copy).
        fs.namespace().readLock().lock();
        try {
            return nlink > Math.max(1, nameCount()) + cow.versions().size();
        } finally {
            fs.namespace().readLock().unlock();
        }
    }

    private void closeFdLocked() {
        if (fd >= 0) C.close(fd);
        fd = -1;
    }

    // ---- copy-on-write ---------------------------------------------------------------------

    /** A copy of the current inode to a temp file: on the pool ({@code background}), else for running inline. */
    private CopyJob startCopy(boolean background) {
        int src = CopyJob.reopenForRead(fd);
        if (src < 0) return null;
        CopyJob job = new CopyJob(src, fs.rootFd(), tmpName());
        if (background && !job.trySubmit()) {
            // Saturated: no copy now (the next change copies inline). Never a job that no one runs.
            job.discard();
            return null;
        }
        return job;
    }

    /**
     * Makes the live name an independent inode again; caller holds the write lock.
     *
     * @param mayDropVersions when the copy fails (disk full): true gives the versions up so the
     *                        program's change can go in place; false (end of run, nobody writes
     *                        any more) keeps them and leaves the file sharing its storage.
     */
    private int unshare(boolean mayDropVersions) {
        return unshare(mayDropVersions, fs::stopping);
    }

    private int unshare(boolean mayDropVersions, java.util.function.BooleanSupplier cancel) {
        CopyJob job = cow.takeJob();
        if (mayDropVersions) rewritesFromScratch = false; // edited in place: copy eagerly again
        IoError err;
        if (job == null) job = startCopy(false);
        if (job == null) {
            err = IoError.last("cannot reopen the live file");
        } else {
            err = job.await(cancel);
            // No room for the copy: older versions of this run give way first.
            while (err != null && err.noSpace() && dropVersionForSpace()) {
                job = startCopy(false);
                if (job == null) break;
                err = job.await(cancel);
            }
            if (err == null) {
                int r = swapIn(job.tmp);
                if (r == 0) {
                    becameIndependent();
                    return 0;
                }
                C.unlinkat(fs.rootFd(), job.tmp, 0);
                err = new IoError(-r, "rename");
            }
        }
        return copyFailed(err, mayDropVersions, "could not copy the live file");
    }

    /**
     * The live file no longer shares its versions' inode (a fresh inode took its names, no name
     * leads to the old one, or the versions gave way): the versions still kept get their names
     * now (see {@link VersionStore#publish}). Caller holds the write lock.
     */
    private void becameIndependent() {
        List<Cow.Linked> were = List.copyOf(cow.versions());
        cow.independent();
        for (Cow.Linked l : were) if (l.version() != null) l.store().publish(l.version());
    }

    /** Truncate to zero while shared: no need to copy anything, an empty inode takes the name. */
    private int swapInEmpty() {
        rewritesFromScratch = true;
        CopyJob job = cow.takeJob();
        if (job != null) job.discard();
        String tmp = tmpName();
        FileStat st = Stat.of(fd);
        int mode = st != null ? Stat.mode(st) & 07777 : 0644;
        int nf = C.openat(fs.rootFd(), tmp, LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL | LibC.O_CLOEXEC, mode);
        int r = nf < 0 ? -Posix.errno() : 0;
        if (nf >= 0) {
            C.close(nf);
            r = swapIn(tmp);
            if (r < 0) C.unlinkat(fs.rootFd(), tmp, 0);
        }
        if (r == 0) {
            becameIndependent();
            return 0;
        }
        int e = copyFailed(new IoError(-r, "create"), true, "could not create an empty file");
        if (e < 0) return e;
        return C.ftruncate(fd, 0) == 0 ? 0 : -Posix.errno();
    }

    /** The copy-on-write copy failed: the versions give way (the job's writes come first), or the change fails. */
    private int copyFailed(IoError err, boolean mayDropVersions, String what) {
        boolean noRoom = err.noSpace();
        if (!mayDropVersions && noRoom && cow.versions().stream().allMatch(Cow.Linked::mayGiveUp)) {
            // End of run, no room to keep the last version apart from the final file: the version
            // gives way (its content is the final file's), never a version left sharing the file
            // the user will edit next.
            for (Cow.Linked l : cow.versions()) {
                l.store().room().giveUp(l.version(), "no room to keep it apart from the final file, which holds the same content ("
                        + err + ")");
            }
            becameIndependent();
            return 0;
        }
        if (!mayDropVersions) {
            String why = err.cancelled() ? "no time left to copy it before the end of the run"
                    : "no room for a separate copy: " + err;
            // Named as the user knows it (in symlink mode rel is the name inside our mount).
            Series s = series;
            String who = s != null ? s.name() + " (versions in " + s.store().dir() + ")" : rel != null ? rel : "a deleted file";
            Log.warn(who + " still shares its storage with its last version (" + why
                    + "). Before editing it in place, make it a file of its own (cp --reflink=auto FILE FILE.tmp &&"
                    + " mv FILE.tmp FILE), or that version changes too");
            for (Cow.Linked l : cow.versions()) {
                if (l.mayGiveUp()) l.store().room().stillShared(l.version(), why);
            }
            return 0;
        }
        if (cow.versions().stream().anyMatch(l -> !l.mayGiveUp())) {
            // The inode is also the last version of a run that was killed: that version is not
            // ours to drop, so the change fails as a full disk would.
            Log.warn("cannot change " + rel + ": it is still a version saved by an earlier run and there is no room"
                    + " for a separate copy (" + err + ")");
            return noRoom ? -err.errno() : Errno.EIO.negated(); // as a plain file would: ENOSPC or EDQUOT
        }
        String why = fs.stopping() ? "the run was stopping before it could be separated from the live file"
                : what + " (" + err + ")";
        for (Cow.Linked l : cow.versions()) l.store().room().giveUp(l.version(), "dropped before the next change: " + why);
        becameIndependent();
        return 0;
    }

    /**
     * Puts the inode of {@code tmp} (a complete copy, or an empty file) under the live name and
     * every alias, and moves this object and its descriptor to it. The old inode keeps only the
     * versions' names. Holds the namespace lock for the renames, so no open or rename in between
     * can see a half-swapped file.
     */
    private int swapIn(String tmp) {
        int root = fs.rootFd();
        int nf = C.openat(root, tmp, LibC.O_RDWR | LibC.O_CLOEXEC, 0);
        if (nf < 0) return -Posix.errno();
        FileStat old = fd >= 0 ? Stat.of(fd) : null;
        if (old != null) {
            int uid = old.st_uid.intValue(), gid = old.st_gid.intValue();
            C.fchown(nf, uid, gid); // keep the owner (works as root; as the owner it is a no-op)
            // After the owner (chown drops file capabilities), before the mode (which then agrees
            // with a copied ACL): the live file keeps its xattrs and chattr flags across the swap.
            io.versionfs.sys.InodeAttrs.copy(fd, nf);
            C.fchmod(nf, Stat.mode(old) & 07777);
        }
        FileStat st = Stat.of(nf);
        FileId newId = st != null ? FileId.of(st) : null;
        fs.namespace().writeLock().lock();
        try {
            String name = rel;
            if (name != null) {
                if (C.renameat(root, tmp, root, name) != 0) {
                    int e = Posix.errno();
                    C.close(nf);
                    return -e;
                }
                for (String a : aliases) relink(name, a);
            } else {
                C.unlinkat(root, tmp, 0); // no name left: the fresh inode lives on through our descriptor
            }
            if (newId != null) fs.rekey(id, newId, this);
            if (newId != null) id = newId;
        } finally {
            fs.namespace().writeLock().unlock();
        }
        if (fd >= 0) C.close(fd);
        fd = nf;
        fdWritable = true;
        return 0;
    }

    /** Points {@code alias} at the inode now under {@code name} (a link made by the program stays a link). */
    private void relink(String name, String alias) {
        int root = fs.rootFd();
        String t = tmpName();
        if (C.linkat(root, name, root, t, 0) != 0 || C.renameat(root, t, root, alias) != 0) {
            C.unlinkat(root, t, 0);
            Log.warn("could not keep " + alias + " linked to " + name + " (" + Posix.strerror(Posix.errno())
                    + "): it keeps the content of the last version");
        }
    }

    private String tmpName() {
        return CaptureFs.TMP_PREFIX + TMP_SEQ.incrementAndGet() + "~" + ProcessHandle.current().pid();
    }

    // ---- background separation (the bounded end) --------------------------------------------

    /** Schedules {@link #separateInBackground} (no-op if one is pending). Takes no lock of ours. */
    private void scheduleSeparation(long delayNanos) {
        if (!separationScheduled.compareAndSet(false, true)) return;
        try {
            SEPARATOR.schedule(this::separateInBackground, delayNanos, java.util.concurrent.TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            separationScheduled.set(false);
        }
    }

    /** A background copy could not be made: try again after twice the wait of the last try (at most ~85 min at 5 s). */
    private void setback() {
        int n = Math.min(separationSetbacks++, 10);
        scheduleSeparation(QUIET_NANOS << n);
    }

    /**
     * Moves a shared file one step towards independence without ever waiting for a copy: starts
     * the copy once the file has been quiet long enough, and swaps a finished copy in. Everything
     * under the write lock is O(1); a lock held by the program's own I/O is not waited for long
     * (try again shortly) and a stopping run is left alone.
     */
    private void separateInBackground() {
        separationScheduled.set(false);
        if (fs.stopping()) return;
        boolean locked;
        try {
            locked = lock.writeLock().tryLock(200, java.util.concurrent.TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            return;
        }
        if (!locked) {
            scheduleSeparation(QUIET_NANOS / 5);
            return;
        }
        try {
            if (!cow.mustCopyBeforeChange() || rel == null) return; // independent, or nothing to put back
            CopyJob j = cow.job();
            if (j == null) {
                long quiet = System.nanoTime() - sharedSince;
                if (quiet < QUIET_NANOS) {
                    scheduleSeparation(QUIET_NANOS - quiet);
                    return;
                }
                if (ensureFd(false) != 0) return;
                FileStat st = Stat.of(fd);
                if (st != null && !Room.forOptionalCopy(fd, Stat.diskBytes(st))) {
                    setback(); // no room to spare: the job's own writes come first; look again later
                    return;
                }
                j = startCopy(true);
                if (j == null) {
                    scheduleSeparation(QUIET_NANOS); // pool busy: later
                    return;
                }
                cow.copying(j);
                j.whenDone(() -> scheduleSeparation(0));
                return;
            }
            if (!j.isDone()) {
                j.whenDone(() -> scheduleSeparation(0));
                return;
            }
            cow.takeJob();
            IoError err = j.await(() -> true); // already done: returns at once
            if (err != null) {
                setback(); // e.g. the disk filled meanwhile: the next change or the end tries again
                return;
            }
            if (ensureFd(false) != 0) {
                C.unlinkat(fs.rootFd(), j.tmp, 0);
                return;
            }
            if (swapIn(j.tmp) == 0) {
                becameIndependent();
                separationSetbacks = 0;
            } else {
                C.unlinkat(fs.rootFd(), j.tmp, 0);
            }
        } finally {
            if (refs.get() == 0) closeFdLocked();
            lock.writeLock().unlock();
        }
    }

    /**
     * Set when a process writes this inode without going through the mount (a file renamed onto
     * the target while still open for writing): its versions are copies, like the initial one.
     */
    private volatile boolean writtenOutside;

    void markWrittenOutside() {
        writtenOutside = true;
    }

    /** Whether the live file still shares its inode with a version (a copy is due before its next change). */
    boolean sharesWithVersion() {
        lock.readLock().lock();
        try {
            return cow.mustCopyBeforeChange();
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * End of a run: make the live file independent of its last version (finishing a pending copy),
     * so it can be moved into place without the version changing afterwards.
     */
    void detach(long deadlineNanos) {
        lock.writeLock().lock();
        try {
            if (cow.mustCopyBeforeChange() && rel != null && ensureFd(false) == 0) {
                unshare(false, () -> System.nanoTime() > deadlineNanos);
            }
            if (refs.get() == 0) closeFdLocked();
        } finally {
            lock.writeLock().unlock();
        }
    }
}
