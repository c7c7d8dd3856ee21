package io.versionfs.fs;

import io.versionfs.capture.Series;
import io.versionfs.capture.Version;
import io.versionfs.capture.VersionStore;
import io.versionfs.text.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.InodeAttrs;
import io.versionfs.sys.IoError;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.BooleanSupplier;

/**
 * The copy-on-write state of one live file and its transitions: whether its backing inode is
 * also a saved version, and so must be copied before the next change, and how it gets an inode
 * of its own again. One small state machine instead of flags:
 *
 * <pre>
 *   INDEPENDENT --version by link--> COPYING (eager copy accepted by the pool)       {@link #versionLinked}
 *                                 \-> SHARED  (pool saturated, or the program rewrites from scratch)
 *   SHARED --quiet for a while: a background copy starts---------------------> COPYING   {@link #separateInBackground}
 *   COPYING --copy done, nobody changing the file: fresh inode swapped in-----> INDEPENDENT
 *   SHARED/COPYING --change: copy done (inline if needed), fresh inode swapped in--> INDEPENDENT  {@link #unshareForChange}
 *   SHARED/COPYING --truncate to 0: an empty inode swapped in, no copy-----------> INDEPENDENT  {@link #truncateToZero}
 *   SHARED/COPYING --copy impossible (disk full): the versions give way ---------> INDEPENDENT
 *   SHARED with a version of an earlier (killed) run --copy impossible--> SHARED, and the change
 *                                fails (ENOSPC): that version is not ours to drop
 *   SHARED/COPYING --end of run: copy done in the time left, swapped in---------> INDEPENDENT  {@link #unshareAtEnd}
 *                  (no time or no room: SHARED, and said; a version of ours gives way to a full disk)
 *   SHARED/COPYING --no name leads to the inode any more----------------------> INDEPENDENT  {@link #forgotten}
 * </pre>
 *
 * A file with hard links that we did not make never gets here: its versions are copies (see
 * {@link LiveFile}), because a write through those other names would bypass us.
 *
 * <p>Every transition runs under the write side of the owner's lock ({@link Host#lock}): the
 * owner's callers hold it, and the background step ({@link #separateInBackground}, run by
 * {@link Separation}) takes it. The state is read under either side. Transitions reach the file system only through {@link Host} and the
 * owner's folder, so CowTest drives them on a plain folder, without FUSE.
 */
final class Cow {
    private static final LibC C = Posix.C;

    enum State {
        /** The inode belongs to the live file alone: changes go in place. */
        INDEPENDENT,
        /** The inode is also the file of {@link #versions()}; no copy running. */
        SHARED,
        /** As SHARED, with a background copy to a fresh inode running ({@link #job()}). */
        COPYING
    }

    /**
     * A version whose file is this inode, and the store that can give it up; {@code version} null
     * for a version an earlier run left sharing the inode (it may not be given up).
     */
    record Linked(VersionStore store, Version version) {
        boolean mayGiveUp() {
            return version != null;
        }
    }

    /** What the transitions need from the live file they belong to ({@link LiveFile}; a plain folder in CowTest). */
    interface Host {
        /** The owner's lock: its write side guards this state and the descriptor; every transition holds it. */
        ReentrantReadWriteLock lock();

        /** The folder of the live file: copies and fresh files are made there, then renamed over its names. */
        int dirFd();

        /** The live descriptor. Transitions run after the caller made sure there is one (or {@link #ensureFd}). */
        int fd();

        /** Opens a descriptor if there is none (a background step has no handle to rely on): 0 or -errno. */
        int ensureFd();

        /** The live file's main name, as the user reaches it; null once no name leads to it. */
        String name();

        /**
         * Puts {@code tmp} under every name of the live file at once and makes {@code nf} (open
         * read-write on it) the live descriptor; the old inode keeps only the versions' names. 0,
         * or -errno with nothing changed (the caller still owns {@code nf} and {@code tmp}).
         */
        int replaceWith(String tmp, int nf);

        /** The series the live file is versioned in, null if none: its versions give way for space too. */
        Series series();

        /** The run is ending: waits for copies are cancelled. */
        boolean stopping();

        /** A background step is over: close the descriptor unless a handle needs it. */
        void backgroundDone();
    }

    private final Host host;
    private final Separation separation;
    // Guarded by the owner's lock: written under its write side, read under either.
    private State state = State.INDEPENDENT;
    private final List<Linked> versions = new ArrayList<>(1);
    private CopyJob job;
    /** The program was seen rewriting the file from scratch: no eager copy at the next version (it would be thrown away). */
    private boolean rewritesFromScratch;

    Cow(Host host) {
        this(host, Separation.QUIET_NANOS);
    }

    /** @param quietNanos how long a shared file stays unchanged before the background separates it */
    Cow(Host host, long quietNanos) {
        this.host = host;
        this.separation = new Separation(this::separateInBackground, quietNanos);
    }

    State state() {
        return state;
    }

    boolean mustCopyBeforeChange() {
        return state != State.INDEPENDENT;
    }

    /** The versions whose file is this inode (empty when INDEPENDENT). */
    List<Linked> versions() {
        return versions;
    }

    CopyJob job() {
        return job;
    }

    // ---- the state alone ---------------------------------------------------------------------

    /**
     * A version was linked to this inode ({@code v} null: one left by an earlier run). {@code copy}
     * is a copy already accepted by the pool, or null.
     */
    void linked(VersionStore store, Version v, CopyJob copy) {
        versions.add(new Linked(store, v));
        if (job != null && copy != null) copy.discard(); // one copy of one inode is enough
        else if (copy != null) job = copy;
        state = job != null ? State.COPYING : State.SHARED;
    }

    /** A copy was started later, while SHARED (the file stayed quiet): SHARED becomes COPYING. */
    void copying(CopyJob copy) {
        job = copy;
        state = State.COPYING;
    }

    /** Takes the running copy, if any, for the caller to await or discard (COPYING becomes SHARED). */
    CopyJob takeJob() {
        CopyJob j = job;
        job = null;
        if (state == State.COPYING) state = State.SHARED;
        return j;
    }

    /** A fresh inode took the live name (or the versions gave way): nothing is shared any more. */
    void independent() {
        job = null;
        versions.clear();
        state = State.INDEPENDENT;
    }

    /**
     * The disk is full: gives up one version of this file's series or of its shared versions'
     * stores (true), or finds none (false). Changes no state here: the data path calls it under
     * the owner's read lock.
     */
    boolean dropVersionForSpace() {
        Series s = host.series();
        if (s != null && s.store().room().dropOne()) return true;
        for (Linked l : versions) if (l.store().room().dropOne()) return true;
        return false;
    }

    // ---- transitions (the owner's write lock held) --------------------------------------------

    /** A version was just linked to the live inode: a copy starts at once, unless the program rewrites from scratch. */
    void versionLinked(VersionStore store, Version v) {
        CopyJob copy = !rewritesFromScratch && state == State.INDEPENDENT ? startCopy(true) : null;
        linked(store, v, copy);
        separation.shared();
        if (copy != null) copy.whenDone(separation::now);
        else separation.afterQuiet();
    }

    /** The inode is the last version of a killed run: protected, and separated in the background like ours. */
    void leftoverLinked(VersionStore store) {
        linked(store, null, null);
        separation.shared();
        separation.afterQuiet();
    }

    /** The content before the run is saved: such files are usually rewritten from scratch, not edited. */
    void expectRewrites() {
        rewritesFromScratch = true;
    }

    /**
     * Before a change by the program: the live name gets an inode of its own (the running copy,
     * or one made here). If no copy can be made (disk full), versions of this run give way, and a
     * protected version of an earlier run makes the change fail. 0 or -errno.
     */
    int unshareForChange() {
        rewritesFromScratch = false; // edited in place: copy eagerly again
        return unshare(true, host::stopping);
    }

    /**
     * End of a run, nobody writes any more: as {@link #unshareForChange}, within what {@code
     * cancel} allows. A copy that cannot be made leaves the file sharing its storage (said),
     * except that a version of ours gives way to a full disk: it holds the final file's content.
     */
    void unshareAtEnd(BooleanSupplier cancel) {
        unshare(false, cancel);
    }

    private int unshare(boolean mayDropVersions, BooleanSupplier cancel) {
        CopyJob copy = takeJob();
        if (copy == null) copy = startCopy(false);
        IoError err = copy == null ? IoError.last("cannot reopen the live file") : copy.await(cancel);
        // No room for the copy: older versions of this run give way first.
        while (err != null && err.noSpace() && dropVersionForSpace()) {
            copy = startCopy(false);
            if (copy == null) break;
            err = copy.await(cancel);
        }
        if (err != null && err.noSpace() && !mayDropVersions && settled()) {
            // At the end: space a version given way still held (the hasher was reading it) is
            // free once the hasher is through; one more try before the last version gives way.
            copy = startCopy(false);
            if (copy != null) err = copy.await(cancel);
        }
        if (err == null) {
            int r = putInPlace(copy.tmp);
            if (r == 0) return 0;
            err = new IoError(-r, "rename");
        }
        return copyFailed(err, mayDropVersions, "could not copy the live file");
    }

    /** Truncate to zero while shared: nothing to copy, an empty inode takes the names. 0 or -errno. */
    int truncateToZero() {
        rewritesFromScratch = true;
        CopyJob copy = takeJob();
        if (copy != null) copy.discard();
        String tmp = CaptureFs.tmpName();
        int r = createEmpty(tmp);
        if (r == 0) r = putInPlace(tmp);
        if (r == 0) return 0;
        int e = copyFailed(new IoError(-r, "create"), true, "could not create an empty file");
        if (e < 0) return e;
        return C.ftruncate(host.fd(), 0) == 0 ? 0 : -Posix.errno();
    }

    /** The owner leaves the table (no name leads to the inode, or nothing is shared): its versions cannot change now. */
    void forgotten() {
        CopyJob copy = takeJob();
        if (copy != null) copy.discard();
        if (mustCopyBeforeChange()) becameIndependent();
    }

    // ---- the steps ---------------------------------------------------------------------------

    /** A copy of the live inode to a temp file: on the pool ({@code background}), else for running inline. */
    private CopyJob startCopy(boolean background) {
        int src = CopyJob.reopenForRead(host.fd());
        if (src < 0) return null;
        CopyJob copy = new CopyJob(src, host.dirFd(), CaptureFs.tmpName());
        if (background && !copy.trySubmit()) {
            // Saturated: no copy now (the next change copies inline). Never a job that no one runs.
            copy.discard();
            return null;
        }
        return copy;
    }

    /** An empty file at {@code tmp} with the live file's mode. 0 or -errno. */
    private int createEmpty(String tmp) {
        FileStat st = Stat.of(host.fd());
        int mode = st != null ? Stat.mode(st) & 07777 : 0644;
        int nf = C.openat(host.dirFd(), tmp, LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL | LibC.O_CLOEXEC, mode);
        if (nf < 0) return -Posix.errno();
        C.close(nf);
        return 0;
    }

    /** The fresh inode at {@code tmp} takes the live names and the versions are on their own. 0, or -errno with {@code tmp} removed. */
    private int putInPlace(String tmp) {
        int r = swapIn(tmp);
        if (r != 0) {
            C.unlinkat(host.dirFd(), tmp, 0);
            return r;
        }
        becameIndependent();
        return 0;
    }

    /** Puts the inode of {@code tmp} (a complete copy, or an empty file) under the live names, with the live file's owner, attributes and mode. */
    private int swapIn(String tmp) {
        int nf = C.openat(host.dirFd(), tmp, LibC.O_RDWR | LibC.O_CLOEXEC, 0);
        if (nf < 0) return -Posix.errno();
        int fd = host.fd();
        FileStat old = fd >= 0 ? Stat.of(fd) : null;
        if (old != null) {
            int mode = Stat.mode(old) & 07777; // read now: old is this thread's stat buffer
            C.fchown(nf, old.st_uid.intValue(), old.st_gid.intValue()); // as root; as the owner a no-op
            // After the owner (chown drops file capabilities), before the mode (which then agrees
            // with a copied ACL): the live file keeps its xattrs and chattr flags across the swap.
            InodeAttrs.copy(fd, nf);
            C.fchmod(nf, mode);
        }
        int r = host.replaceWith(tmp, nf);
        if (r != 0) C.close(nf);
        return r;
    }

    /**
     * The live file no longer shares its versions' inode (a fresh inode took its names, no name
     * leads to the old one, or the versions gave way): the versions still kept get their names
     * now (see {@link VersionStore#publish}).
     */
    private void becameIndependent() {
        List<Linked> were = List.copyOf(versions);
        independent();
        for (Linked l : were) if (l.version() != null) l.store().publish(l.version());
    }

    // ---- when no copy can be made ------------------------------------------------------------

    /** The copy-on-write copy failed: the versions give way (the job's writes come first), or the change fails. */
    private int copyFailed(IoError err, boolean mayDropVersions, String what) {
        if (!mayDropVersions) {
            keptAtEnd(err);
            return 0;
        }
        if (versions.stream().anyMatch(l -> !l.mayGiveUp())) {
            // The inode is also the last version of a run that was killed: that version is not
            // ours to drop, so the change fails as a full disk would.
            Log.warn("cannot change " + host.name() + ": it is still a version saved by an earlier run and there is no"
                    + " room for a separate copy (" + err + ")");
            return err.noSpace() ? -err.errno() : Errno.EIO.negated(); // as a plain file would: ENOSPC or EDQUOT
        }
        String why = host.stopping() ? "the run was stopping before it could be separated from the live file"
                : what + " (" + err + ")";
        giveUpAll("dropped before the next change: " + why);
        return 0;
    }

    /** Waits up to 2 s for the hashers of the versions sharing this inode; true if any had work left then. */
    private boolean settled() {
        boolean any = false;
        for (var s : versions.stream().map(Linked::store).distinct().toList()) any |= s.settle(SETTLE_MILLIS);
        return any;
    }

    private static final long SETTLE_MILLIS = 2_000;

    /** End of run and no copy: the file stays shared (said), unless versions of ours give way to a full disk. */
    private void keptAtEnd(IoError err) {
        if (err.noSpace() && versions.stream().allMatch(Linked::mayGiveUp)) {
            // No room to keep the last version apart from the final file: the version gives way
            // (its content is the final file's), never a version left sharing the file the user
            // will edit next.
            giveUpAll("no room to keep it apart from the final file, which holds the same content (" + err + ")");
            return;
        }
        String why = err.cancelled() ? "no time left to copy it before the end of the run"
                : "no room for a separate copy: " + err;
        Log.warn(shownName() + " still shares its storage with its last version (" + why
                + "). Before editing it in place, make it a file of its own (cp --reflink=auto FILE FILE.tmp &&"
                + " mv FILE.tmp FILE), or that version changes too");
        for (Linked l : versions) {
            if (l.mayGiveUp()) l.store().room().stillShared(l.version(), why);
        }
    }

    private void giveUpAll(String why) {
        for (Linked l : versions) l.store().room().giveUp(l.version(), why);
        becameIndependent();
    }

    /** The file as the user knows it (in symlink mode the live name is the one inside our mount). */
    private String shownName() {
        Series s = host.series();
        String name = host.name();
        return s != null ? s.name() + " (versions in " + s.store().dir() + ")" : name != null ? name : "a deleted file";
    }

    // ---- background separation (the bounded end) ---------------------------------------------

    /**
     * One step towards independence, on the separation thread, never waiting for a copy: starts
     * the copy once the file has been quiet long enough, and swaps a finished copy in. Everything
     * under the lock is O(1); a lock held by the program's own I/O is not waited for long (try
     * again shortly) and a stopping run is left alone.
     */
    void separateInBackground() {
        if (host.stopping()) return;
        ReentrantReadWriteLock.WriteLock w = host.lock().writeLock();
        try {
            if (!w.tryLock(200, TimeUnit.MILLISECONDS)) {
                separation.soon();
                return;
            }
        } catch (InterruptedException e) {
            return;
        }
        try {
            if (!mustCopyBeforeChange() || host.name() == null) return; // independent, or nothing to put back
            CopyJob j = job;
            if (j == null) startQuietCopy();
            else if (!j.isDone()) j.whenDone(separation::now);
            else swapInFinished(j);
        } finally {
            host.backgroundDone();
            w.unlock();
        }
    }

    /** SHARED: a copy starts if the file has been quiet long enough and the disk can spare it. */
    private void startQuietCopy() {
        long left = separation.quietLeft();
        if (left > 0) {
            separation.after(left);
            return;
        }
        if (host.ensureFd() != 0) return;
        FileStat st = Stat.of(host.fd());
        if (st != null && !io.versionfs.capture.Room.forOptionalCopy(host.fd(), Stat.diskBytes(st))) {
            separation.setback(); // no room to spare: the job's own writes come first; look again later
            return;
        }
        CopyJob copy = startCopy(true);
        if (copy == null) {
            separation.afterQuiet(); // pool busy: later
            return;
        }
        copying(copy);
        copy.whenDone(separation::now);
    }

    /** COPYING, and the copy is done: it takes the live names. */
    private void swapInFinished(CopyJob copy) {
        takeJob();
        if (copy.await(() -> true) != null) { // already done: returns at once
            separation.setback(); // e.g. the disk filled meanwhile: the next change or the end tries again
            return;
        }
        if (host.ensureFd() != 0) {
            C.unlinkat(host.dirFd(), copy.tmp, 0);
            return;
        }
        if (putInPlace(copy.tmp) == 0) separation.succeeded();
    }
}
