package io.versionfs.fs;

import io.versionfs.capture.CaptureRule;
import io.versionfs.capture.Series;
import io.versionfs.capture.Version;
import io.versionfs.capture.VersionStore;
import io.versionfs.text.Log;
import io.versionfs.sys.Errno;
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
 * A version left shared is separated in the background once the file has been quiet for a while
 * ({@link Separation}), and a finished copy is swapped in at once: at the end of a run there is
 * normally nothing left to copy. The transitions are {@link Cow}'s; this class gives them its
 * lock, descriptor and names ({@link CowHost}).
 *
 * <h2>Lock order</h2>
 * This file's lock, then the filesystem's namespace lock, then the file table. Namespace changes
 * (rename, link, unlink in {@link CaptureFs}) update names here without taking this lock; the
 * swap of a fresh inode under the live name takes the namespace lock inside this lock.
 *
 * <h2>Lifetime</h2>
 * {@link #acquire} and {@link #release} count the open handles plus temporary users. The table
 * drops this object only when the count is zero, checked under the namespace write lock
 * ({@link #forgetIfUnused}); so whoever takes a reference does it under the namespace lock (either
 * side), on an object reached through the table: the two cannot cross, and no object still in
 * use leaves the table. Releasing needs no lock: the count is atomic, and what follows a last
 * release (closing the descriptor, leaving the table) checks again under the locks.
 */
final class LiveFile {
    /** {@link #attach} result: the name now leads to another inode; look it up again. */
    static final int RETRY = Integer.MIN_VALUE;
    private static final LibC C = Posix.C;

    private final CaptureFs fs;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** Change counter (see {@link CaptureRule}). */
    private final AtomicLong changes = new AtomicLong();
    /** Open handles plus temporary users: see Lifetime above. Atomic; taken under the namespace lock. */
    private final AtomicInteger refs = new AtomicInteger();

    // Names: written only under the namespace write lock. aliases is read under the namespace
    // lock; rel and series are volatile and also read without it, where a name just changed
    // costs at most a retry (ensureFd checks the inode), a log line, or a version of a file that
    // was renamed away in the same instant.
    private volatile String rel;                          // main name; null once every name is gone
    private final List<String> aliases = new ArrayList<>(0); // more names, made by link() through the mount
    private volatile Series series;                       // null: not versioned (renamed away)
    /**
     * An O_PATH descriptor on the inode once its last name is gone, closed when this object leaves
     * the table: the table knows a file by (dev, ino), and the number of a freed inode goes to the
     * next new file at once (ext4), which a create would then take for this object: a new file
     * with no name as far as we know, so that its next copy-on-write swap left a saved version
     * under the live name, to be written in place. So no inode dies while its object is in the
     * table. Set and closed under the namespace write lock (and, when it moves, this lock).
     */
    private int pin = -1;

    // Guarded by lock (id also by the namespace write lock when it changes; read without a lock).
    private volatile FileId id;
    private int fd = -1;
    private boolean fdWritable;
    /** Copy-on-write state and transitions; guarded by lock like the descriptor it works on. */
    private final Cow cow;
    /** Change counter covered by the last version; written under lock, read unlocked for the cheap exits in flush. */
    private volatile long saved;

    LiveFile(CaptureFs fs, FileId id, String rel, Series series) {
        this.fs = fs;
        this.id = id;
        this.rel = rel;
        this.series = series;
        this.cow = new Cow(new CowHost());
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

    /**
     * {@code fd} (O_PATH, or -1 if none could be opened) was opened on the inode just before a
     * name of it went: kept if no name is left (see {@link #pin}), else closed.
     */
    void keepInode(int fd) {
        if (fd < 0) return;
        if (nameCount() > 0) {
            C.close(fd);
            return;
        }
        unpin(); // of an inode this object left at a swap, if any: this one is current
        pin = fd;
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

    // ---- lifetime -----------------------------------------------------------------------------

    /** One more user (a handle, or an operation in progress). Caller holds the namespace lock: see Lifetime. */
    void acquire() {
        assert fs.namespace().getReadHoldCount() > 0 || fs.namespace().isWriteLockedByCurrentThread()
                : "a reference taken outside the namespace lock may cross forgetIfUnused";
        refs.incrementAndGet();
    }

    /** One user less; the last one closes the descriptor and lets this object leave the table if nothing needs it. */
    void release() {
        if (refs.decrementAndGet() == 0) {
            closeIfIdle();
            forgetIfUnused();
        }
    }

    /** Open handles and operations in progress on this file. */
    int users() {
        return refs.get();
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
            takeFd(nf, w);
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
        takeFd(nf, w);
        return 0;
    }

    /**
     * {@code nf} becomes the live descriptor. While the file has one, its <em>number</em> never
     * changes: the new file is put under the old number with dup3 (closing the old file and reusing
     * the number in one step), and {@code nf} is closed. Why: {@link #readFd} hands that number to
     * libfuse, which splices the reply from it after the callback has returned and every lock
     * is released; a copy-on-write swap (or a reopen read-write) in between must never leave the
     * number closed, or reused by another open. A read that races with a swap reads the new inode
     * (as if it came after the change); the old one is a version, whose content the live file
     * had at the swap anyway. Under the write lock.
     */
    private void takeFd(int nf, boolean writable) {
        if (fd < 0) {
            fd = nf;
        } else if (C.dup3(nf, fd, LibC.O_CLOEXEC) >= 0) {
            C.close(nf);
        } else {
            // Cannot happen with two valid descriptors (EMFILE does not apply to dup3 onto an open
            // number); if it does, a reply in flight gets EBADF rather than another file's data.
            C.close(fd);
            fd = nf;
        }
        fdWritable = writable;
    }

    /** The last handle went away: close the descriptor unless someone attached meanwhile. */
    private void closeIfIdle() {
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
     * Leaves the table if nothing needs this object any more: no user, and either no name left or
     * no series and nothing shared (a shared inode must stay known as long as a name leads to it,
     * or a later open would write into a version). Drops the descriptor and any copy when so.
     * Called with no lock held; takes this lock, then the namespace lock, under which it decides
     * (names and references change under that lock).
     */
    void forgetIfUnused() {
        lock.writeLock().lock();
        try {
            forgetLocked();
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * As {@link #forgetIfUnused}, but only if this file's lock is free now; false (nothing done)
     * while it is held, e.g. by a copy-on-write copy of a big file that takes seconds.
     */
    boolean tryForgetIfUnused() {
        if (!lock.writeLock().tryLock()) return false;
        try {
            forgetLocked();
            return true;
        } finally {
            lock.writeLock().unlock();
        }
    }

    private void forgetLocked() {
        fs.forget(this, this::unused, () -> {
            cow.forgotten();
            closeFdLocked();
            unpin(); // out of the table: its inode may go now
        });
    }

    /** Under this lock and the namespace write lock: no user, and nothing a later open by name would need. */
    private boolean unused() {
        return refs.get() == 0 && (rel == null || (series == null && !cow.mustCopyBeforeChange()));
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

    /**
     * The descriptor libfuse splices a read reply from (read_buf), after this returns: valid as
     * long as a handle is open (closing waits for the last release, which the kernel sends only
     * after every reply on it), and never another file's, since the number stays this file's
     * across swaps ({@link #takeFd}). -EBADF if there is none.
     */
    int readFd() {
        lock.readLock().lock();
        try {
            return fd >= 0 ? fd : Errno.EBADF.negated();
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
        fs.namespace().readLock().lock();
        try {
            return nameCount() > 1 || linksWeDidNotMake(nlink);
        } finally {
            fs.namespace().readLock().unlock();
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
        while ((n == Errno.ENOSPC.negated() || n == Errno.EDQUOT.negated()) && cow.dropVersionForSpace()) {
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

    /** ftruncate (h != null), truncate(2) by path (h == null), or O_TRUNC at open (h == null). */
    int truncate(long size, Handle h) {
        if (size == 0) {
            lock.writeLock().lock();
            try {
                int r = ensureFd(true);
                if (r < 0) return r;
                if (cow.mustCopyBeforeChange()) {
                    r = cow.truncateToZero();
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
                r = cow.unshareForChange();
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
                r = cow.unshareForChange();
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
            cow.expectRewrites();
            // Shared since the killed run: separated in the background like our own versions,
            // so this run's end does not have to copy it.
            if (leftover) cow.leftoverLinked(leftoverStore);
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
        if (c.linked()) cow.versionLinked(s.store(), c.version());
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
            return linksWeDidNotMake(nlink);
        } finally {
            fs.namespace().readLock().unlock();
        }
    }

    /** As {@link #hasLinksWeDidNotMake}; this lock and the namespace lock held. */
    private boolean linksWeDidNotMake(long nlink) {
        return nlink > Math.max(1, nameCount()) + cow.versions().size();
    }

    private void closeFdLocked() {
        if (fd >= 0) C.close(fd);
        fd = -1;
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
                cow.unshareAtEnd(() -> System.nanoTime() > deadlineNanos);
            }
            if (refs.get() == 0) closeFdLocked();
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** This file's lock (see Lock order): a test holds it to stop the file's own steps at a chosen point. */
    ReentrantReadWriteLock lock() {
        return lock;
    }

    // ---- what Cow's transitions see of this file ----------------------------------------------

    /** This file as {@link Cow} reaches it: its lock, descriptor and names (every call under the write lock). */
    private final class CowHost implements Cow.Host {
        @Override
        public ReentrantReadWriteLock lock() {
            return lock;
        }

        @Override
        public int dirFd() {
            return fs.rootFd();
        }

        @Override
        public int fd() {
            return fd;
        }

        @Override
        public int ensureFd() {
            return LiveFile.this.ensureFd(false);
        }

        @Override
        public String name() {
            return rel;
        }

        @Override
        public int replaceWith(String tmp, int nf) {
            return LiveFile.this.replaceWith(tmp, nf);
        }

        @Override
        public Series series() {
            return series;
        }

        @Override
        public boolean stopping() {
            return fs.stopping();
        }

        @Override
        public void backgroundDone() {
            if (refs.get() == 0) closeFdLocked();
        }
    }

    /**
     * The inode of {@code tmp} takes the live name and every alias, and this object and its
     * descriptor move to it; the old inode keeps only the versions' names. Holds the namespace
     * lock for the renames, so no open or rename in between can see a half-swapped file.
     */
    private int replaceWith(String tmp, int nf) {
        int root = fs.rootFd();
        FileStat st = Stat.of(nf);
        FileId newId = st != null ? FileId.of(st) : null;
        fs.namespace().writeLock().lock();
        try {
            String name = rel;
            if (name != null) {
                if (C.renameat(root, tmp, root, name) != 0) return -Posix.errno();
                for (String a : aliases) relink(name, a);
                unpin(); // the fresh inode has a name: that keeps it
            } else {
                C.unlinkat(root, tmp, 0); // no name left: the fresh inode lives on through our descriptor
                repin(nf);
            }
            if (newId != null) {
                fs.rekey(id, newId, this);
                id = newId;
            }
        } finally {
            fs.namespace().writeLock().unlock();
        }
        takeFd(nf, true);
        return 0;
    }

    /** The fresh inode {@code nf}, which has no name, is the one that must stay alive now (see {@link #pin}). Both locks held. */
    private void repin(int nf) {
        unpin();
        pin = C.fcntl(nf, LibC.F_DUPFD_CLOEXEC, 0);
    }

    private void unpin() {
        if (pin >= 0) C.close(pin);
        pin = -1;
    }

    /** Points {@code alias} at the inode now under {@code name} (a link made by the program stays a link). */
    private void relink(String name, String alias) {
        int root = fs.rootFd();
        String t = CaptureFs.tmpName();
        if (C.linkat(root, name, root, t, 0) != 0 || C.renameat(root, t, root, alias) != 0) {
            C.unlinkat(root, t, 0);
            Log.warn("could not keep " + alias + " linked to " + name + " (" + Posix.strerror(Posix.errno())
                    + "): it keeps the content of the last version");
        }
    }
}
