package io.versionfs.fs;

import io.versionfs.capture.Series;
import io.versionfs.capture.Targets;
import io.versionfs.capture.Version;
import io.versionfs.capture.ManifestLine;
import io.versionfs.text.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.FuseBufs;
import io.versionfs.sys.InodeAttrs;
import io.versionfs.sys.LibC;
import io.versionfs.sys.OpenCall;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import jnr.ffi.Pointer;
import jnr.ffi.Struct;
import ru.serce.jnrfuse.FuseFillDir;
import ru.serce.jnrfuse.FuseStubFS;
import ru.serce.jnrfuse.struct.FileStat;
import ru.serce.jnrfuse.struct.FuseBufvec;
import ru.serce.jnrfuse.struct.FuseFileInfo;
import ru.serce.jnrfuse.struct.Statvfs;
import ru.serce.jnrfuse.struct.Timespec;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Consumer;
import java.util.function.IntUnaryOperator;

/**
 * The capture filesystem: a pass-through of one backing folder (reached through a descriptor, as
 * libfuse's passthrough_hp does) in which the files matched by {@link Targets} are versioned.
 *
 * <p>Identity is the inode: every open looks up the backing file's (dev, ino) in a table of
 * {@link LiveFile}s, so a file renamed, hard-linked or unlinked while open keeps one state and
 * one descriptor whatever name it is reached by. Callbacks stay thin: resolve the handle or name,
 * delegate, answer 0/size or -errno. Each public callback is an exception barrier: a Java
 * exception becomes -EIO for that one call (logged), never a crash of the loop, a lost write
 * elsewhere or a leaked descriptor.
 *
 * <p>Versions folders that live inside the mounted folder (directory mode) are read-only through
 * the mount: nothing the program does can change a saved version.
 */
public final class CaptureFs extends FuseStubFS {
    /**
     * A write-only open of a versioned file goes direct_io: its writes reach us without first
     * being copied into the mount's page cache, a copy no one needs while the writer writes
     * (back-to-back 512 MiB rewrites: 0.72 of libfuse's C pass-through without it, 1.16 with
     * it, bench of 2026-12-07). The price: the first read after the write comes through us (about
     * 1 GB/s here) rather than from that cache (5 GB/s); the next reads are cached again. Other
     * opens keep the cache, which the kernel drops where a direct write lands, since about
     * Linux 6.6; older kernels keep serving the old pages to readers, so there writes stay cached
     * (6.9 and later only, to be safe; EngineIT.aReaderNeverSeesOldContentAfterARewrite checks
     * it). -Dversionfs.directWrites=false turns this off.
     */
    static final boolean DIRECT_WRITES = !"false".equals(System.getProperty("versionfs.directWrites"))
            && io.versionfs.sys.Kernel.atLeast(6, 9);

    /** Prefix of our temp files in the backing folder; hidden from listings. */
    public static final String TMP_PREFIX = ".versionfs~";
    private static final java.util.concurrent.atomic.AtomicInteger TMP_SEQ = new java.util.concurrent.atomic.AtomicInteger();

    private static final LibC C = Posix.C;
    private static final int EILSEQ = 84;

    private final int rootFd;
    private final Path rootListing;   // /proc/self/fd/N: lists the backing folder even under a mount
    private final Targets targets;
    /** Names to inodes may change only under the write side (rename, link, unlink, swaps). */
    private final ReentrantReadWriteLock namespace = new ReentrantReadWriteLock();
    /**
     * Inode to LiveFile. Changed under the namespace lock: added under either side (lookup),
     * moved and removed under the write side (swap, forget); read anywhere (a concurrent map).
     */
    private final Map<FileId, LiveFile> table = new ConcurrentHashMap<>();
    /** Open handles by FUSE's fh: registered at open, removed at release; no lock (a concurrent map). */
    private final Map<Long, Handle> handles = new ConcurrentHashMap<>();
    private final AtomicLong nextFh = new AtomicLong(1);
    /** The kernel's question before every write(2), answered from memory for a second (see CapabilityMemo). */
    private final CapabilityMemo caps = new CapabilityMemo(1_000_000_000L);
    private final CountDownLatch initialized = new CountDownLatch(1);
    private volatile boolean stopping;
    private volatile Consumer<String> renameListener = s -> {};

    /**
     * @param rootFd  descriptor of the backing folder (kept open by the caller for the mount's life)
     * @param targets which names are versioned, and where their versions go
     */
    public CaptureFs(int rootFd, Targets targets) {
        this.rootFd = rootFd;
        this.rootListing = Path.of("/proc/self/fd/" + rootFd);
        this.targets = targets;
    }

    /** Notified (on a FUSE thread) when a versioned file is renamed away or unlinked. */
    public void onNamespaceEvent(Consumer<String> listener) {
        this.renameListener = listener;
    }

    CountDownLatch initialized() {
        return initialized;
    }

    int rootFd() {
        return rootFd;
    }

    ReentrantReadWriteLock namespace() {
        return namespace;
    }

    boolean stopping() {
        return stopping;
    }

    /**
     * The run is ending (the job is being killed, or is gone): every wait for a copy-on-write copy
     * is cancelled so that no program stays blocked in close() or write() (a process blocked in a
     * FUSE call cannot be killed, and Slurm would drain the node). The versions that could not be
     * separated in time give way and are recorded lost.
     */
    public void stop() {
        stopping = true;
    }

    /** Mounts at {@code mountPoint} with {@code args} and serves on the calling thread until unmounted. */
    int runLoop(String[] args, java.nio.file.Path mountPoint) {
        FuseSupport.allowNullPaths(fuseOperations); // a file unlinked while open keeps working
        if (!FuseLoop.JAVA_THREADS) {
            return libFuse.fuse_main_real(args.length, args, fuseOperations, Struct.size(fuseOperations), null);
        }
        return FuseLoop.run(args, Struct.getMemory(fuseOperations), Struct.size(fuseOperations), mountPoint);
    }

    /**
     * jnr-fuse hands us paths decoded as UTF-8: a name that is not valid UTF-8 arrives with
     * U+FFFD in place of its bad bytes, and two different names would become one (one file's
     * data read or written through the other's name). Such names are refused (EILSEQ), never
     * confused: the program gets an error, no file is touched.
     */
    private static final class BadName extends RuntimeException {
        BadName() {
            super(null, null, false, false);
        }
    }

    private static String rel(String path) {
        if (path == null) return null;
        if (path.indexOf('\uFFFD') >= 0) throw new BadName();
        if (path.equals("/")) return ".";
        return path.startsWith("/") ? path.substring(1) : path;
    }

    /** A fresh name for a temp file of ours in the backing folder (a copy, an empty file, a link being moved). */
    static String tmpName() {
        return TMP_PREFIX + TMP_SEQ.incrementAndGet() + "~" + ProcessHandle.current().pid();
    }

    private static boolean isTemp(String r) {
        return r.startsWith(TMP_PREFIX) || r.contains("/" + TMP_PREFIX);
    }

    /** The exception barrier's one exit: log (rarely) and fail only this call. */
    private static int failed(String op, String path, Throwable t) {
        if (t instanceof BadName) {
            Log.warnOnce("badname", "a file name that is not valid UTF-8 was refused (EILSEQ) in the mounted folder:"
                    + " versionfs cannot tell such names apart; rename the file (e.g. with convmv) to use it");
            return -EILSEQ;
        }
        Log.warnOnce("fail:" + op + ":" + t.getClass().getName(), "internal error in " + op + " " + path + " (" + t
                + "); that call failed with EIO, everything else goes on. Please report it.");
        return Errno.EIO.negated();
    }

    private int pid() {
        return (int) getContext().pid.get();
    }

    // ---- the inode table (lock order: a LiveFile's lock, then namespace, then the table) ------

    void rekey(FileId from, FileId to, LiveFile lf) {
        table.remove(from, lf);
        table.put(to, lf);
    }

    /**
     * Removes {@code lf} from the table if {@code unused} says so, asked under the namespace
     * write lock (references are taken and names change under the namespace lock: the answer
     * stays true until the removal); runs {@code cleanup} when it does.
     */
    boolean forget(LiveFile lf, java.util.function.BooleanSupplier unused, Runnable cleanup) {
        namespace.writeLock().lock();
        caps.forgetAll(); // names change: see CapabilityMemo
        try {
            if (!unused.getAsBoolean()) return false;
            table.remove(lf.id(), lf);
            cleanup.run();
            return true;
        } finally {
            namespace.writeLock().unlock();
        }
    }

    /**
     * The LiveFile of an inode just reached by {@code r} (namespace lock held): the known one, or a
     * new one when the name is versioned. Null for a pass-through file.
     */
    private LiveFile lookup(FileStat st, String r) {
        FileId id = FileId.of(st);
        LiveFile lf = table.get(id);
        if (lf != null || !Stat.isRegular(st)) return lf;
        Series s = targets.seriesFor(r);
        if (s == null) return null;
        return table.computeIfAbsent(id, k -> new LiveFile(this, k, r, s));
    }

    /**
     * A pass-through inode just got a versioned name (rename or link onto a target): from now on
     * its open handles go through the new LiveFile, after their writes in flight have landed.
     */
    private void attachOpenHandles(LiveFile lf, FileId id) {
        for (Handle h : handles.values()) {
            if (h.live == null && id.equals(h.id)) {
                lf.acquire();
                h.attach(lf);
            }
        }
    }

    // ---- lifecycle --------------------------------------------------------------------------

    @Override
    public Pointer init(Pointer conn) {
        initialized.countDown();
        return null;
    }

    /** This mount is coherent with other nodes' mounts (no attribute or name timeouts): nothing is remembered. */
    void coherentAcrossNodes() {
        caps.off();
    }

    /** Number of open handles: at the end of a run we wait for this to reach zero (release is async). */
    public int openHandles() {
        return handles.size();
    }

    /**
     * The content a target had before the run becomes its version "initial". The one code path
     * for both modes: the live file is registered as sharing its inode with that version, so the
     * first change copies (or, for a rewrite from scratch, simply starts a new file).
     */
    public Version captureInitial(String r) {
        LiveFile lf;
        Series s;
        boolean leftover;
        namespace.readLock().lock();
        try {
            FileStat st = Stat.at(rootFd, r, LibC.AT_SYMLINK_NOFOLLOW);
            if (st == null || !Stat.isRegular(st)) return null;
            // Read everything from st now: it is this thread's buffer, and opening the versions
            // folder below (seriesFor) stats other files into it.
            FileId id = FileId.of(st);
            long links = Stat.nlink(st);
            s = targets.seriesFor(r);
            if (s == null) return null;
            leftover = links > 1 && s.store().isLatestVersion(s.name(), id.dev(), id.ino());
            lf = table.computeIfAbsent(id, k -> new LiveFile(this, k, r, s));
        } finally {
            namespace.readLock().unlock();
        }
        if (leftover) {
            Log.info(r + " still shared its storage with its last version (a run was killed before it could separate"
                    + " them): protected, and separated at the end of this run");
            event(s, ManifestLine.event("recovered").file(r).detail("shared with its last version"));
        }
        return lf.captureInitial(s.store(), leftover);
    }

    /**
     * The file at {@code r} leaves its version series (symlink mode followed a rename-away of
     * the target: what the file holds is now the renamed file's). Changes it has that no version
     * covers yet are saved first; its later closes make no versions.
     */
    public void leaveSeries(String r, String why) {
        LiveFile lf = refByName(r);
        if (lf == null) return;
        try {
            lf.captureIfChanged("final-unclosed", 0);
            Series old;
            namespace.writeLock().lock();
            caps.forgetAll(); // names change: see CapabilityMemo
            try {
                old = lf.series();
                lf.setSeries(null);
            } finally {
                namespace.writeLock().unlock();
            }
            event(old, ManifestLine.event("left-series").file(r).why(why));
        } finally {
            lf.release();
        }
    }

    /**
     * A call the name trap does for the job (symlink mode), in-process on the backing folder,
     * never through the mount (a daemon thread waiting on its own mount cannot be killed): whose
     * call it is, and the names the job used, so the manifest says "job.tmp renamed onto job.gbw
     * by pid 4711 (orca)" rather than naming our private folder and our own pid.
     */
    public record OnBehalf(int pid, String from, String to, boolean writtenOutside) {
        public OnBehalf(int pid, String from, String to) {
            this(pid, from, to, false);
        }
    }

    /**
     * A file the trap just put at the versioned name {@code r} (renamed or linked onto the
     * target): it is the target's content now, one version at once. A file known from before (it
     * was the target, renamed away and back) rejoins the series.
     */
    public Version arrived(String r, String reason, OnBehalf who) {
        LiveFile lf;
        namespace.writeLock().lock();
        caps.forgetAll(); // names change: see CapabilityMemo
        try {
            FileStat st = Stat.at(rootFd, r, LibC.AT_SYMLINK_NOFOLLOW);
            if (st == null || !Stat.isRegular(st)) return null;
            FileId id = FileId.of(st); // before seriesFor: opening a versions folder stats into this thread's buffer
            Series s = targets.seriesFor(r);
            if (s == null) return null;
            lf = table.get(id);
            if (lf == null) {
                lf = new LiveFile(this, id, r, s);
                table.put(id, lf);
                attachOpenHandles(lf, id);
            } else {
                lf.nameAdded(r);
                lf.promote(r);
                lf.setSeries(s);
            }
            lf.acquire();
        } finally {
            namespace.writeLock().unlock();
        }
        try {
            if (who.writtenOutside()) lf.markWrittenOutside();
            return lf.captureNow(reason, who.pid());
        } finally {
            lf.release();
        }
    }

    /**
     * The file at {@code r} leaves its series now, quietly (the trap is about to move it out of
     * the mount: the target renamed away): from here on its closes link no new version to it.
     * Returns its series, for {@link #rejoin} or {@link #departed}.
     */
    public Series leaveSeries(String r) {
        LiveFile lf = refByName(r);
        if (lf == null) return null;
        try {
            namespace.writeLock().lock();
            caps.forgetAll(); // names change: see CapabilityMemo
            try {
                Series s = lf.series();
                lf.setSeries(null);
                return s;
            } finally {
                namespace.writeLock().unlock();
            }
        } finally {
            lf.release();
        }
    }

    /** The move out failed: the file at {@code r} is the target's again. */
    public void rejoin(String r, Series s) {
        LiveFile lf = refByName(r);
        if (lf == null) return;
        try {
            namespace.writeLock().lock();
            caps.forgetAll(); // names change: see CapabilityMemo
            try {
                lf.setSeries(s);
            } finally {
                namespace.writeLock().unlock();
            }
        } finally {
            lf.release();
        }
    }

    /**
     * Whether names {@code a} and {@code b} are one file now: read under the namespace lock, which
     * a copy-on-write swap holds while it moves every name of a file to the new inode.
     */
    public boolean sameFile(String a, String b) {
        namespace.readLock().lock();
        try {
            FileStat st = Stat.at(rootFd, a, LibC.AT_SYMLINK_NOFOLLOW);
            if (st == null) return false;
            FileId ia = FileId.of(st);
            st = Stat.at(rootFd, b, LibC.AT_SYMLINK_NOFOLLOW);
            return st != null && ia.equals(FileId.of(st));
        } finally {
            namespace.readLock().unlock();
        }
    }

    /**
     * Moves the file at {@code r} out of the backing folder to {@code dstName} in {@code dstDir}
     * (the target renamed away), and forgets that name of exactly the inode moved: under the
     * namespace lock, so no create of a new file at {@code r} can slip in between and be taken
     * for it. Its open handles keep writing it, now there. 0 or -errno.
     */
    public int moveOut(String r, int dstDir, String dstName, boolean noReplace, Series old, OnBehalf who) {
        LiveFile lf;
        namespace.writeLock().lock();
        caps.forgetAll(); // names change: see CapabilityMemo
        try {
            FileStat st = Stat.at(rootFd, r, LibC.AT_SYMLINK_NOFOLLOW);
            if (st == null) return -Posix.errno();
            FileId id = FileId.of(st);
            lf = table.get(id);
            int pin = pinIfLastName(lf, r);
            int rc = noReplace ? C.renameat2(rootFd, r, dstDir, dstName, 1 /* RENAME_NOREPLACE */) : C.renameat(rootFd, r, dstDir, dstName);
            if (rc != 0) return unpinned(pin, -Posix.errno());
            if (lf != null) lf.nameRemoved(r);
            keepInode(lf, pin);
        } finally {
            namespace.writeLock().unlock();
        }
        if (old != null) event(old, ManifestLine.event("rename").from(who.from()).to(who.to()).pid(who.pid()));
        if (lf != null) forgetSoon(lf);
        return 0;
    }

    /**
     * Makes the file at {@code r} independent of its versions now (finishing or making the
     * copy-on-write copy within {@code budgetMillis}), before its inode is given to a name outside
     * the mount where the job can write it directly. False if it still shares its storage.
     */
    public boolean detach(String r, long budgetMillis) {
        LiveFile lf = refByName(r);
        if (lf == null) return true;
        try {
            lf.detach(System.nanoTime() + budgetMillis * 1_000_000L);
            return !lf.sharesWithVersion();
        } finally {
            lf.release();
        }
    }

    /**
     * Lets go of a file a namespace change may have left unused, without waiting for its lock:
     * the unlink or rename that calls this holds the kernel's lock on the folder until it
     * returns, and while it does an open(O_CREAT) of the same name fails (ENOENT), a write of the
     * job lost; the lock can be held for seconds (a copy-on-write copy of a big file). Then one
     * background thread does it once the lock is free; until then the pin keeps the inode.
     */
    private static void forgetSoon(LiveFile lf) {
        if (!lf.tryForgetIfUnused()) FORGETTER.execute(lf::forgetIfUnused);
    }

    private static final java.util.concurrent.ExecutorService FORGETTER =
            java.util.concurrent.Executors.newSingleThreadExecutor(Posix.backgroundThreads("versionfs-forget"));

    /** The object the table holds for the inode at {@code r} now, or null; no reference taken (tests look at it). */
    LiveFile knownAt(String r) {
        namespace.readLock().lock();
        try {
            FileStat st = Stat.at(rootFd, r, LibC.AT_SYMLINK_NOFOLLOW);
            return st != null ? table.get(FileId.of(st)) : null;
        } finally {
            namespace.readLock().unlock();
        }
    }

    /** Open handles on the file at {@code r} (0 for a name that is not open or not there). */
    public int openHandlesOn(String r) {
        namespace.readLock().lock();
        try {
            FileStat st = Stat.at(rootFd, r, LibC.AT_SYMLINK_NOFOLLOW);
            if (st == null) return 0;
            FileId id = FileId.of(st);
            LiveFile lf = table.get(id);
            if (lf != null) return lf.users();
            int n = 0;
            for (Handle h : handles.values()) if (id.equals(h.id)) n++;
            return n;
        } finally {
            namespace.readLock().unlock();
        }
    }

    /** Saves a version of every file changed but never closed since its last version. */
    public List<Version> captureUnclosed() {
        List<Version> out = new ArrayList<>();
        for (LiveFile lf : List.copyOf(table.values())) {
            Version v = lf.captureIfChanged("final-unclosed", 0);
            if (v != null) out.add(v);
        }
        return out;
    }

    /**
     * Finishes pending copy-on-write copies so the live files are independent of their versions,
     * within {@code budgetMillis} (a run being killed has Slurm's KillWait, not hours); a copy that
     * does not fit is left undone and said.
     */
    public void detachAll(long budgetMillis) {
        long deadline = System.nanoTime() + budgetMillis * 1_000_000L;
        for (LiveFile lf : List.copyOf(table.values())) lf.detach(deadline);
    }

    // ---- attributes -------------------------------------------------------------------------

    /**
     * Names in the mount change through libfuse (directory mode, versionfs mount): a lookup of a
     * versioned name by an open that may create is answered "absent", so the kernel creates
     * (see {@link #getattr}).
     */
    private volatile boolean createAtLookup;

    /** Turns on {@link #createAtLookup}: for mounts where the job's deletes go through libfuse. */
    public void createAtLookup() {
        createAtLookup = true;
    }

    /**
     * Also the kernel's lookup of a name. A lookup by an open that may create (O_CREAT without
     * O_EXCL) of a versioned name answers ENOENT when {@link #createAtLookup} is on: the kernel
     * then sends one create (FUSE_CREATE), which opens the file if it is there and creates it if
     * not, in one step on the backing folder. Otherwise it sends an open after the lookup, and a
     * delete by another process in between (another process of the job: rm, then create) made
     * libfuse2 forget the name and answer that open ENOENT itself, before versionfs saw it: an
     * open(O_CREAT) failing, which never happens on a plain disk (the file's write lost).
     *
     * <p>Only a name that is absent or a regular file is answered "absent". A symlink is answered
     * as it is, so the kernel follows it itself: the create would otherwise reach us for the
     * symlink's own name, and opening that name follows the link on our side, while the kernel
     * holds the folder locked for the create. A link to an absolute path through the mount (the
     * mount is over the job's folder) then waited for that lock in our FUSE thread: the job and
     * versionfs stuck for good, beyond kill -9.
     */
    @Override
    public int getattr(String path, FileStat stat) {
        try {
            String r = rel(path);
            if (r == null) return Errno.ENOENT.negated();
            if (isTemp(r)) return Errno.ENOENT.negated();
            int rc = C.fstatat(rootFd, r, Struct.getMemory(stat), LibC.AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -Posix.errno();
            if (createAtLookup && (rc != 0 || Stat.isRegular(stat)) && targets.matches(r) && OpenCall.mayCreate(pid())) {
                return Errno.ENOENT.negated();
            }
            return rc;
        } catch (Throwable t) {
            return failed("getattr", path, t);
        }
    }

    @Override
    public int fgetattr(String path, FileStat stat, FuseFileInfo fi) {
        try {
            Handle h = handles.get(fi.fh.get());
            if (h == null) return getattr(path, stat);
            LiveFile lf = h.live;
            if (lf != null) return lf.fstat(Struct.getMemory(stat));
            return C.fstat(h.fd, Struct.getMemory(stat)) == 0 ? 0 : -Posix.errno();
        } catch (Throwable t) {
            return failed("fgetattr", path, t);
        }
    }

    @Override
    public int access(String path, int mask) {
        try {
            return C.faccessat(rootFd, rel(path), mask, 0) == 0 ? 0 : -Posix.errno();
        } catch (Throwable t) {
            return failed("access", path, t);
        }
    }

    /**
     * The LiveFile behind a name, with a reference held (the caller releases it), or null for a
     * pass-through file. Used by operations by path on files that may be versioned.
     */
    private LiveFile refByName(String r) {
        namespace.readLock().lock();
        try {
            FileStat st = Stat.at(rootFd, r, LibC.AT_SYMLINK_NOFOLLOW);
            if (st == null) return null;
            LiveFile lf = lookup(st, r);
            if (lf != null) lf.acquire();
            return lf;
        } finally {
            namespace.readLock().unlock();
        }
    }

    /**
     * An operation by path: on a versioned file through its LiveFile (a reference held meanwhile),
     * on any other by {@code byPath} (FUSE's answer), run under the namespace lock. Why under it:
     * a name found absent, or not versioned, could otherwise become a versioned file in between
     * (a create at the target's name, even a version of it), and the operation land on that
     * version; under the lock no rename or link reaches the name, and an absent name answers
     * ENOENT, as the call would have just before that create.
     */
    private int byName(String r, java.util.function.ToIntFunction<String> byPath, java.util.function.ToIntFunction<LiveFile> versioned) {
        LiveFile lf;
        namespace.readLock().lock();
        try {
            FileStat st = Stat.at(rootFd, r, LibC.AT_SYMLINK_NOFOLLOW);
            if (st == null) return -Posix.errno();
            lf = lookup(st, r);
            if (lf == null) return byPath.applyAsInt(r);
            lf.acquire();
        } finally {
            namespace.readLock().unlock();
        }
        try {
            return versioned.applyAsInt(lf);
        } finally {
            lf.release();
        }
    }

    /** A metadata change by path, as libc answers it (0, or -1 with errno) for a file that is not versioned. */
    @FunctionalInterface
    private interface ByPath {
        int apply(String r);
    }

    /**
     * The one shape of every metadata change (chmod, chown, utimens, setxattr, removexattr), as an
     * exception barrier: refused in a versions folder (saved versions never change); on a
     * versioned file through its descriptor, after the copy-on-write separation so that no
     * version shares the change ({@link LiveFile#changeMetadata}); else by path. {@code byPath} and
     * {@code byFd} answer as libc does, translated to FUSE's answer here. {@code xattr}, if not
     * null, is an attribute name checked first (as the path is).
     */
    private int metadata(String op, String path, String xattr, ByPath byPath, IntUnaryOperator byFd) {
        try {
            String r = rel(path);
            if (xattr != null) xname(xattr);
            if (targets.isProtected(r)) return readOnly(r);
            caps.forgetAll(); // metadata changes (setcap is a setxattr): see CapabilityMemo
            return byName(r, name -> result(byPath.apply(name)), lf -> lf.changeMetadata(fd -> result(byFd.applyAsInt(fd))));
        } catch (Throwable t) {
            return failed(op, path, t);
        }
    }

    /** libc's answer as FUSE's: 0, or -errno (read right after the call, on the calling thread). */
    private static int result(int rc) {
        return rc == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int chmod(String path, long mode) {
        int m = (int) mode & 07777;
        return metadata("chmod", path, null, r -> C.fchmodat(rootFd, r, m, 0), fd -> C.fchmod(fd, m));
    }

    @Override
    public int chown(String path, long uid, long gid) {
        return metadata("chown", path, null, r -> C.fchownat(rootFd, r, (int) uid, (int) gid, LibC.AT_SYMLINK_NOFOLLOW),
                fd -> C.fchown(fd, (int) uid, (int) gid));
    }

    @Override
    public int utimens(String path, Timespec[] timespec) {
        return metadata("utimens", path, null, r -> C.utimensat(rootFd, r, Struct.getMemory(timespec[0]), LibC.AT_SYMLINK_NOFOLLOW),
                fd -> C.futimens(fd, Struct.getMemory(timespec[0])));
    }

    @Override
    public int statfs(String path, Statvfs stbuf) {
        try {
            return C.fstatvfs(rootFd, Struct.getMemory(stbuf)) == 0 ? 0 : -Posix.errno();
        } catch (Throwable t) {
            return failed("statfs", path, t);
        }
    }

    // ---- extended attributes ------------------------------------------------------------------

    /**
     * The backing file of {@code r} by a path the *xattr calls can take: our folder descriptor's
     * /proc link (libc has no *xattrat). Used with the l* calls, so a symlink's own attributes
     * are read, as the kernel asks (it follows symlinks through the mount itself).
     */
    private String procPath(String r) {
        return rootListing + "/" + r;
    }

    /** jnr-fuse decodes attribute names as UTF-8 too: one that is not would be confused with another. */
    private static String xname(String name) {
        if (name == null || name.indexOf('\uFFFD') >= 0) throw new BadName();
        return name;
    }

    /**
     * Extended attributes through the mount ({@code -Dversionfs.xattrs=false} turns them off).
     * Their price: once a FUSE file system answers getxattr, the kernel asks it for
     * security.capability before every write(2) (FUSE clears SB_NOSEC; libfuse2 cannot negotiate
     * FUSE_HANDLE_KILLPRIV_V2, which would stop that): one more round trip per write call, which
     * matters for small writes (see README). Off, every xattr call answers ENOSYS once, after
     * which the kernel answers EOPNOTSUPP itself, as for a file system without xattrs.
     */
    static final boolean XATTRS = !"false".equals(System.getProperty("versionfs.xattrs"));

    /** Reading attributes changes nothing: straight from the backing file. */
    @Override
    public int getxattr(String path, String name, Pointer value, long size) {
        try {
            if (!XATTRS) return Errno.ENOSYS.negated();
            String r = rel(path);
            if (r == null || isTemp(r)) return Errno.ENOENT.negated();
            boolean cap = CapabilityMemo.NAME.equals(name);
            if (cap && caps.knownAbsent(r)) return Errno.ENODATA.negated(); // the kernel's ask before each write(2)
            long n = C.lgetxattr(procPath(r), xname(name), size == 0 ? null : value, size);
            if (n >= 0) return (int) n;
            int e = Posix.errno();
            if (cap && e == Errno.ENODATA.code) caps.absent(r);
            return -e;
        } catch (Throwable t) {
            return failed("getxattr", path, t);
        }
    }

    @Override
    public int listxattr(String path, Pointer list, long size) {
        try {
            if (!XATTRS) return Errno.ENOSYS.negated();
            String r = rel(path);
            if (r == null || isTemp(r)) return Errno.ENOENT.negated();
            long n = C.llistxattr(procPath(r), size == 0 ? null : list, size);
            return n < 0 ? -Posix.errno() : (int) n;
        } catch (Throwable t) {
            return failed("listxattr", path, t);
        }
    }

    /**
     * Attributes are the inode's, so a versioned file that still shares its inode with its last
     * version is separated first (as for chmod): that version's attributes never change.
     */
    @Override
    public int setxattr(String path, String name, Pointer value, long size, int flags) {
        if (!XATTRS) return Errno.ENOSYS.negated();
        return metadata("setxattr", path, name, r -> C.lsetxattr(procPath(r), name, value, size, flags),
                fd -> C.fsetxattr(fd, name, value, size, flags));
    }

    @Override
    public int removexattr(String path, String name) {
        if (!XATTRS) return Errno.ENOSYS.negated();
        return metadata("removexattr", path, name, r -> C.lremovexattr(procPath(r), name), fd -> C.fremovexattr(fd, name));
    }

    // ---- ioctl ------------------------------------------------------------------------------

    /**
     * The ioctls the kernel passes to a FUSE file system (libfuse2: restricted ones, on files).
     * Only the inode flags are ours to answer, and the kernel sends them itself (chattr, lsattr,
     * xfs_io: it opens the file read-only for the call): read from the backing file, changed
     * after the copy-on-write separation like any metadata, never +i/+a (see {@link
     * io.versionfs.sys.InodeAttrs}). Anything else is not for a regular file here: ENOTTY, what
     * the kernel said before we had an ioctl (and what a plain file says to a tty ioctl such as
     * isatty's TCGETS). FICLONE, FIEMAP, FIONREAD, FIGETBSZ never reach us: the kernel answers
     * them.
     */
    @Override
    public int ioctl(String path, int cmd, Pointer arg, FuseFileInfo fi, long flags, Pointer data) {
        try {
            boolean read = cmd == InodeAttrs.FS_IOC_GETFLAGS || cmd == InodeAttrs.FS_IOC_FSGETXATTR;
            boolean set = cmd == InodeAttrs.FS_IOC_SETFLAGS || cmd == InodeAttrs.FS_IOC_FSSETXATTR;
            if ((!read && !set) || data == null) return Errno.ENOTTY.negated();
            String r = rel(path); // null: a file unlinked while open
            if (set && r != null && targets.isProtected(r)) return readOnly(r); // a saved version's flags never change
            Handle h = handles.get(fi.fh.get());
            if (h == null) return Errno.EBADF.negated();
            if (h.live == null && h.beginPassThrough()) {
                try {
                    return read ? InodeAttrs.ioctl(h.fd, cmd, data) : setFlags(h.fd, cmd, data);
                } finally {
                    h.endPassThrough();
                }
            }
            LiveFile lf = h.live;
            return read ? lf.readMetadata(fd -> InodeAttrs.ioctl(fd, cmd, data)) : lf.changeMetadata(fd -> setFlags(fd, cmd, data));
        } catch (Throwable t) {
            return failed("ioctl", path, t);
        }
    }

    /**
     * FS_IOC_SETFLAGS / FS_IOC_FSSETXATTR, refusing to add or remove immutable or append-only
     * (EPERM, what an ordinary user gets on a plain file): such a file cannot be linked (a
     * version) or replaced (the copy-on-write swap), so versionfs could not keep its promises.
     */
    private static int setFlags(int fd, int cmd, Pointer data) {
        boolean xflags = cmd == InodeAttrs.FS_IOC_FSSETXATTR;
        int guarded = xflags ? InodeAttrs.FS_XFLAG_IMMUTABLE | InodeAttrs.FS_XFLAG_APPEND
                : InodeAttrs.FS_IMMUTABLE_FL | InodeAttrs.FS_APPEND_FL;
        Pointer now = jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), InodeAttrs.FSXATTR_SIZE);
        int r = InodeAttrs.ioctl(fd, xflags ? InodeAttrs.FS_IOC_FSGETXATTR : InodeAttrs.FS_IOC_GETFLAGS, now);
        if (r < 0) return r;
        if (((now.getInt(0) ^ data.getInt(0)) & guarded) != 0) return Errno.EPERM.negated();
        return InodeAttrs.ioctl(fd, cmd, data);
    }

    private int readOnly(String r) {
        Log.warnOnce("ro:" + r, "the program tried to change " + r + ", a versions folder: it is read-only while"
                + " versionfs runs (saved versions never change)");
        return Errno.EROFS.negated();
    }

    // ---- directories and names --------------------------------------------------------------

    @Override
    public int readdir(String path, Pointer buf, FuseFillDir filter, long offset, FuseFileInfo fi) {
        try {
            String r = rel(path);
            Path dir = r.equals(".") ? rootListing : rootListing.resolve(r);
            filter.apply(buf, ".", null, 0);
            filter.apply(buf, "..", null, 0);
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
                for (Path p : ds) {
                    String name = p.getFileName().toString();
                    if (name.startsWith(TMP_PREFIX)) continue;
                    if (filter.apply(buf, name, null, 0) != 0) break;
                }
                return 0;
            } catch (NoSuchFileException e) {
                return Errno.ENOENT.negated();
            } catch (NotDirectoryException e) {
                return Errno.ENOTDIR.negated();
            } catch (IOException e) {
                return Errno.EIO.negated();
            }
        } catch (Throwable t) {
            return failed("readdir", path, t);
        }
    }

    @Override
    public int mkdir(String path, long mode) {
        try {
            String r = rel(path);
            if (targets.isProtected(r)) return readOnly(r);
            return C.mkdirat(rootFd, r, (int) mode & 07777) == 0 ? 0 : -Posix.errno();
        } catch (Throwable t) {
            return failed("mkdir", path, t);
        }
    }

    @Override
    public int rmdir(String path) {
        try {
            String r = rel(path);
            if (targets.isProtected(r)) return readOnly(r);
            return C.unlinkat(rootFd, r, LibC.AT_REMOVEDIR) == 0 ? 0 : -Posix.errno();
        } catch (Throwable t) {
            return failed("rmdir", path, t);
        }
    }

    @Override
    public int symlink(String target, String linkPath) {
        try {
            String r = rel(linkPath);
            if (targets.isProtected(r)) return readOnly(r);
            return C.symlinkat(target, rootFd, r) == 0 ? 0 : -Posix.errno();
        } catch (Throwable t) {
            return failed("symlink", linkPath, t);
        }
    }

    @Override
    public int readlink(String path, Pointer buf, long size) {
        try {
            long n = C.readlinkat(rootFd, rel(path), buf, size - 1);
            if (n < 0) return -Posix.errno();
            buf.putByte(n, (byte) 0);
            return 0;
        } catch (Throwable t) {
            return failed("readlink", path, t);
        }
    }

    private void event(Series s, ManifestLine.Builder e) {
        if (s != null) s.store().event(e);
    }

    /**
     * A version that a namespace change made due (a file arrived at a versioned name): {@code file}
     * into {@code into} (null: its own series). Made under the namespace lock with the reference
     * taken there ({@link #arrival}); the version itself is taken after the lock is released.
     */
    private record Arrival(LiveFile file, Series into) {}

    /** Namespace lock held: the reference is taken here, so the file cannot leave the table before its version (see LiveFile, Lifetime). */
    private static Arrival arrival(LiveFile lf, Series into) {
        lf.acquire();
        return new Arrival(lf, into);
    }

    /** Takes the version a namespace change made due, if any (no lock held), and lets the file go. */
    private static void versionOf(Arrival a, String reason, int pid) {
        if (a == null) return;
        try {
            a.file().captureNow(reason, pid, a.into());
        } finally {
            a.file().release();
        }
    }

    /**
     * A hard link. Its new name shares the inode, so it shares the LiveFile: a write by either
     * name is one file's write, and the copy-on-write swap re-links every name. A link onto a
     * versioned name is new content at that name: a version (reason "link").
     */
    @Override
    public int link(String oldPath, String newPath) {
        try {
            String from = rel(oldPath), to = rel(newPath);
            if (targets.isProtected(from)) return readOnly(from); // a writable name for a version: never
            if (targets.isProtected(to)) return readOnly(to);
            Arrival a;
            namespace.writeLock().lock();
            caps.forgetAll(); // names change: see CapabilityMemo
            try {
                if (C.linkat(rootFd, from, rootFd, to, 0) != 0) return -Posix.errno();
                a = linked(from, to);
            } finally {
                namespace.writeLock().unlock();
            }
            versionOf(a, "link", pid());
            return 0;
        } catch (Throwable t) {
            return failed("link", newPath, t);
        }
    }

    /** Namespace write lock held: {@code to} is a new name of the file at {@code from}. The version that makes due, or null. */
    private Arrival linked(String from, String to) {
        FileStat st = Stat.at(rootFd, to, LibC.AT_SYMLINK_NOFOLLOW);
        if (st == null || !Stat.isRegular(st)) return null;
        FileId id = FileId.of(st);
        LiveFile lf = table.get(id);
        Series toSeries = targets.seriesFor(to);
        if (lf == null) {
            if (toSeries == null) return null;
            lf = new LiveFile(this, id, to, toSeries);
            lf.nameAdded(from);
            table.put(id, lf);
            attachOpenHandles(lf, id);
            return arrival(lf, null);
        }
        lf.nameAdded(to);
        if (toSeries == null) return null;
        if (lf.series() == null) {
            lf.setSeries(toSeries);
            lf.promote(to);
            return arrival(lf, null);
        }
        // One file, two versioned names: the new name's series gets this content as a version;
        // later closes keep going to the first series.
        return toSeries.equals(lf.series()) ? null : arrival(lf, toSeries);
    }

    /**
     * Unlink by name (mounted with hard_remove: an unlink while open is a real unlink, not a
     * rename to .fuse_hidden). The inode lives on for its open handles, whose writes go on and
     * are versioned at close.
     */
    @Override
    public int unlink(String path) {
        return unlink(path, null, "unlink");
    }

    /** As {@link #unlink(String)}, done by the name trap for {@code who}; {@code event} names it in the manifest (null: none). */
    public int unlink(String path, OnBehalf who, String eventName) {
        try {
            String r = rel(path);
            if (targets.isProtected(r)) return readOnly(r);
            int pid = who != null ? who.pid() : pid();
            LiveFile lf;
            namespace.writeLock().lock();
            caps.forgetAll(); // names change: see CapabilityMemo
            try {
                FileStat st = Stat.at(rootFd, r, LibC.AT_SYMLINK_NOFOLLOW);
                FileId id = st != null ? FileId.of(st) : null;
                lf = id != null ? table.get(id) : null;
                int pin = pinIfLastName(lf, r);
                if (C.unlinkat(rootFd, r, 0) != 0) return unpinned(pin, -Posix.errno());
                boolean mainName = lf != null && lf.nameRemoved(r);
                keepInode(lf, pin);
                if (mainName && eventName != null) {
                    ManifestLine.Builder e = ManifestLine.event(eventName).file(who != null ? who.from() : r).pid(pid);
                    event(lf.series(), who != null && who.to() != null ? e.by(who.to()) : e);
                    if (lf.series() != null && who == null) renameListener.accept("unlink " + r);
                }
            } finally {
                namespace.writeLock().unlock();
            }
            if (lf != null) forgetSoon(lf);
            return 0;
        } catch (Throwable t) {
            return failed("unlink", path, t);
        }
    }

    /**
     * A rename onto a versioned name is new content at that name: a version (reason "rename").
     * A rename away from a versioned name is recorded; the file lives on under its new name, and
     * its open handles keep writing to it (never to the version taken at the rename).
     */
    @Override
    public int rename(String oldPath, String newPath) {
        try {
            String from = rel(oldPath), to = rel(newPath);
            if (targets.isProtected(from)) return readOnly(from);
            if (targets.isProtected(to)) return readOnly(to);
            int pid = pid();
            LiveFile replaced = null;
            Arrival a = null;
            namespace.writeLock().lock();
            caps.forgetAll(); // names change: see CapabilityMemo
            try {
                FileStat st = Stat.at(rootFd, from, LibC.AT_SYMLINK_NOFOLLOW);
                if (st == null) return -Posix.errno();
                // Read st before the next stat: it is this thread's buffer.
                FileId idFrom = FileId.of(st);
                boolean regular = Stat.isRegular(st), folder = Stat.isDirectory(st);
                FileStat stTo = Stat.at(rootFd, to, LibC.AT_SYMLINK_NOFOLLOW);
                FileId idTo = stTo != null ? FileId.of(stTo) : null;
                boolean twoLinks = idFrom.equals(idTo);
                int pin = idTo != null && !twoLinks ? pinIfLastName(table.get(idTo), to) : -1;
                if (C.renameat(rootFd, from, rootFd, to) != 0) return unpinned(pin, -Posix.errno());
                if (twoLinks) return 0; // two links of one file: rename(2) does nothing
                if (idTo != null) replaced = nameReplaced(idTo, from, to, pid, pin);
                if (folder) folderRenamed(from, to);
                else if (regular) a = fileRenamed(idFrom, from, to, pid);
            } finally {
                namespace.writeLock().unlock();
            }
            if (replaced != null) forgetSoon(replaced);
            versionOf(a, "rename", pid);
            return 0;
        } catch (Throwable t) {
            return failed("rename", oldPath, t);
        }
    }

    /** Namespace write lock held: the rename put {@code from} over the file at {@code to}. That file's LiveFile, if any. */
    private LiveFile nameReplaced(FileId idTo, String from, String to, int pid, int pin) {
        LiveFile replaced = table.get(idTo);
        boolean mainName = replaced != null && replaced.nameRemoved(to);
        keepInode(replaced, pin);
        if (mainName && replaced.nameCount() == 0) {
            // Still open somewhere: its later closes are versions of a deleted file.
            event(replaced.series(), ManifestLine.event("replaced").file(to).by(from).pid(pid));
        }
        return replaced;
    }

    /**
     * Namespace write lock held, just before the name {@code r} of {@code lf} goes: an O_PATH
     * descriptor on the inode if that is its last name we know, for {@link #keepInode} (see
     * LiveFile's pin: an inode whose object is in the table must not die). -1 otherwise.
     */
    private int pinIfLastName(LiveFile lf, String r) {
        if (lf == null || lf.nameCount() > 1) return -1;
        return C.openat(rootFd, r, LibC.O_PATH | LibC.O_NOFOLLOW | LibC.O_CLOEXEC, 0);
    }

    /** Namespace write lock held, just after a name of {@code lf} went: {@code pin} is kept by it if that was its last name. */
    private static void keepInode(LiveFile lf, int pin) {
        if (lf != null) lf.keepInode(pin);
        else unpinned(pin, 0);
    }

    /** The name did not go (or there is no object to keep it): closes {@code pin}, returns {@code result}. */
    private static int unpinned(int pin, int result) {
        if (pin >= 0) C.close(pin);
        return result;
    }

    /** Namespace write lock held: the names under a renamed folder move; a file no longer at a versioned name leaves its series. */
    private void folderRenamed(String from, String to) {
        for (LiveFile f : table.values()) {
            f.folderMoved(from, to);
            if (f.rel() != null && f.series() != null && targets.seriesFor(f.rel()) == null) f.setSeries(null);
        }
    }

    /** Namespace write lock held: a regular file was renamed. The version that makes due, or null. */
    private Arrival fileRenamed(FileId id, String from, String to, int pid) {
        LiveFile lf = table.get(id);
        Series toSeries = targets.seriesFor(to);
        if (lf == null) {
            if (toSeries == null) return null;
            lf = new LiveFile(this, id, to, toSeries);
            table.put(id, lf);
            attachOpenHandles(lf, id);
            return arrival(lf, null);
        }
        Series old = lf.series();
        lf.nameMoved(from, to);
        if (!to.equals(lf.rel()) && toSeries == null) return null; // another name of it moved, to no versioned name
        if (old != null) {
            event(old, ManifestLine.event("rename").from(from).to(to).pid(pid));
            if (toSeries == null) renameListener.accept("rename " + from + " -> " + to);
        }
        if (toSeries == null) {
            lf.setSeries(null); // renamed away: its closes make no more versions
            return null;
        }
        lf.promote(to);
        lf.setSeries(toSeries);
        return arrival(lf, null);
    }

    // ---- files -----------------------------------------------------------------------------

    private long register(Handle h) {
        long fh = nextFh.getAndIncrement();
        handles.put(fh, h);
        return fh;
    }

    @Override
    public int create(String path, long mode, FuseFileInfo fi) {
        try {
            return openFile(path, fi, true, (int) mode & 07777);
        } catch (Throwable t) {
            return failed("create", path, t);
        }
    }

    @Override
    public int open(String path, FuseFileInfo fi) {
        try {
            return openFile(path, fi, false, 0);
        } catch (Throwable t) {
            return failed("open", path, t);
        }
    }

    /** What an open() asked for, from FUSE's flags. */
    private record OpenFlags(int flags, boolean create, int mode) {
        boolean readOnly() {
            return (flags & LibC.O_ACCMODE) == LibC.O_RDONLY;
        }

        boolean writeOnly() {
            return (flags & LibC.O_ACCMODE) == LibC.O_WRONLY;
        }

        boolean readWrite() {
            return (flags & LibC.O_ACCMODE) == LibC.O_RDWR;
        }

        boolean truncate() {
            return (flags & LibC.O_TRUNC) != 0 && !readOnly();
        }

        boolean write() {
            return !readOnly() || (flags & LibC.O_TRUNC) != 0;
        }

        boolean append() {
            return (flags & LibC.O_APPEND) != 0;
        }

        /** The flags for the backing file: never O_TRUNC (done after the lookup), O_APPEND (ours to do), or O_CREAT unless creating. */
        int backing() {
            return (flags & ~(LibC.O_TRUNC | LibC.O_APPEND | LibC.O_CREAT | LibC.O_EXCL)) | LibC.O_CLOEXEC
                    | (create ? LibC.O_CREAT | (flags & LibC.O_EXCL) : 0);
        }
    }

    /**
     * The backing file just opened: our descriptor, its inode, its link count, and its LiveFile
     * (acquired) if versioned; or only {@code err} (-errno) if it could not be opened.
     */
    private record Opened(int err, int fd, FileId id, long links, LiveFile live) {
        static Opened failed(int err) {
            return new Opened(err, -1, null, 0, null);
        }
    }

    /**
     * open and create: open the backing name (never with O_TRUNC: if the inode turns out to be
     * shared with a version, truncating it would change the version), find its LiveFile by inode,
     * and attach; retried if a copy-on-write swap moved the name to a fresh inode meanwhile.
     */
    private int openFile(String path, FuseFileInfo fi, boolean create, int mode) {
        String r = rel(path);
        OpenFlags how = new OpenFlags(fi.flags.get(), create, mode);
        if ((how.write() || create) && targets.isProtected(r)) return readOnly(r);
        for (int attempt = 0; attempt < 8; attempt++) {
            Opened o = openBacking(r, how);
            if (Errno.ELOOP.is(-o.err())) return Errno.ESTALE.negated(); // a symlink now: the kernel follows it (see openBacking)
            if (o.err() < 0) return create ? o.err() : lookAgainIfGone(o.err());
            int a = o.live() == null ? openPassThrough(o, how, fi) : openVersioned(o, how, fi);
            if (a != LiveFile.RETRY) return a;
        }
        return Errno.EAGAIN.negated();
    }

    /**
     * An open (not a create) of a name that is gone: the kernel looked the name up, then sent the
     * open (two FUSE calls), and in between the name went from the backing folder without libfuse
     * seeing it (a rename or delete of the target that the trap held and versionfs did there).
     * On a plain disk the open would get the file it looked up. ESTALE makes the kernel walk the
     * path once more (do_filp_open retries with LOOKUP_REVAL): an open with O_CREAT (which FUSE
     * does not pass to open) then creates the file, one without it gets ENOENT; either is what
     * the call gives had it come just after the change. ENOENT here failed open(O_CREAT).
     */
    private static int lookAgainIfGone(int err) {
        return Errno.ENOENT.is(-err) ? Errno.ESTALE.negated() : err;
    }

    /**
     * Opens and identifies the backing file under the namespace lock. Never through a symlink
     * (O_NOFOLLOW): the kernel follows symlinks itself and sends opens only for files, so a
     * symlink here is a name replaced since the kernel's lookup, and following it from here
     * could lead through our own mount while the kernel holds a folder of it locked (see
     * {@link #getattr}). ELOOP then tells the caller to have the kernel look again.
     */
    private Opened openBacking(String r, OpenFlags how) {
        namespace.readLock().lock();
        try {
            int fd = C.openat(rootFd, r, how.backing() | LibC.O_NOFOLLOW, how.mode());
            if (fd < 0) return Opened.failed(-Posix.errno());
            FileStat st = Stat.of(fd);
            if (st == null) {
                int e = Posix.errno();
                C.close(fd);
                return Opened.failed(-e);
            }
            FileId id = FileId.of(st);
            long links = Stat.nlink(st);
            try {
                LiveFile lf = lookup(st, r);
                if (lf != null) lf.acquire();
                return new Opened(0, fd, id, links, lf);
            } catch (RuntimeException | Error e) {
                C.close(fd); // the barrier answers EIO; the descriptor must not leak
                throw e;
            }
        } finally {
            namespace.readLock().unlock();
        }
    }

    /** A file that is not versioned: the handle does its I/O on our descriptor. */
    private int openPassThrough(Opened o, OpenFlags how, FuseFileInfo fi) {
        if (how.truncate() && C.ftruncate(o.fd(), 0) != 0) {
            int e = Posix.errno();
            C.close(o.fd());
            return -e;
        }
        Handle h = new Handle(o.fd(), o.id(), how.write(), null);
        if (how.append()) {
            // Our own descriptor: O_APPEND on it makes pwrite append at the real end.
            C.fcntl(o.fd(), LibC.F_SETFL, C.fcntl(o.fd(), LibC.F_GETFL, 0) | LibC.O_APPEND);
            h.append = true;
        }
        if (o.links() > 1) FuseSupport.directIo(fi); // see openVersioned
        fi.fh.set(register(h));
        return 0;
    }

    /** A versioned file: the handle does its I/O through the LiveFile; RETRY if its name moved to another inode meanwhile. */
    private int openVersioned(Opened o, OpenFlags how, FuseFileInfo fi) {
        LiveFile lf = o.live();
        int a = lf.attach(o.fd(), o.id(), how.readWrite(), how.write()); // closes our descriptor, or keeps it
        if (a < 0) {
            lf.release();
            return a;
        }
        // A file with several names: libfuse2's path API gives each name its own kernel inode, so
        // each would have its own page cache and a read through one name could miss a write
        // through another. direct_io sends every read and write to us instead. Asked before the
        // truncation below, while o.links() (the fstat of open) and the versions sharing the inode
        // still describe the same inode: a truncation that swaps in a fresh inode leaves the
        // versions behind, and the old count would then look like links we did not make (every
        // back-to-back rewrite after the first went direct_io).
        boolean direct = lf.multiplyLinked(o.links());
        if (how.create()) lf.created();
        if (how.truncate()) {
            int t = lf.truncate(0, null); // not a write by this handle: see CaptureRule
            if (t < 0) {
                lf.release();
                return t;
            }
        }
        Handle h = new Handle(-1, o.id(), how.write(), lf);
        h.append = how.append();
        if (direct || (DIRECT_WRITES && how.writeOnly())) FuseSupport.directIo(fi);
        fi.fh.set(register(h));
        return 0;
    }

    @Override
    public int read(String path, Pointer buf, long size, long offset, FuseFileInfo fi) {
        try {
            Handle h = handles.get(fi.fh.get());
            if (h == null) return Errno.EBADF.negated();
            LiveFile lf = h.live;
            if (lf != null) return lf.read(buf, size, offset);
            long n = C.pread(h.fd, buf, size, offset);
            return n < 0 ? -Posix.errno() : (int) n;
        } catch (Throwable t) {
            return failed("read", path, t);
        }
    }

    /**
     * The read path: with read_buf implemented libfuse never calls read(). The reply is our
     * descriptor and an offset, which libfuse splices from once we have returned (splice_write):
     * the data never enters the JVM, as in libfuse's C pass-through. The descriptor must still be
     * open, and still this file's, at that moment: a handle's own descriptor closes only at its
     * release (the kernel releases a file after every reply on it), and a versioned file's keeps
     * its number across copy-on-write swaps ({@code LiveFile.readFd}).
     */
    @Override
    public int read_buf(String path, Pointer bufp, long size, long offset, FuseFileInfo fi) {
        try {
            Handle h = handles.get(fi.fh.get());
            if (h == null) return Errno.EBADF.negated();
            LiveFile lf = h.live;
            int fd = lf != null ? lf.readFd() : h.fd;
            if (fd < 0) return Errno.EBADF.negated();
            return FuseBufs.replyFromFd(bufp, fd, size, offset);
        } catch (Throwable t) {
            return failed("read", path, t);
        }
    }

    /**
     * The write path: with write_buf implemented libfuse never calls write(). The buffer is
     * memory (or, with splice_read, a pipe to splice from).
     */
    @Override
    public int write_buf(String path, FuseBufvec buf, long off, FuseFileInfo fi) {
        try {
            Handle h = handles.get(fi.fh.get());
            if (h == null) return Errno.EBADF.negated();
            Pointer src = Struct.getMemory(buf);
            if (h.live == null && h.beginPassThrough()) {
                try {
                    return FuseBufs.copyToFd(src, h.fd, off);
                } finally {
                    h.endPassThrough();
                }
            }
            return h.live.write(src, off, h);
        } catch (Throwable t) {
            return failed("write", path, t);
        }
    }

    @Override
    public int truncate(String path, long size) {
        try {
            String r = rel(path);
            if (targets.isProtected(r)) return readOnly(r);
            return byName(r, name -> truncateUnversioned(name, size), lf -> lf.truncate(size, null));
        } catch (Throwable t) {
            return failed("truncate", path, t);
        }
    }

    /** truncate(2) of a file that is not versioned: 0 or -errno. */
    private int truncateUnversioned(String r, long size) {
        int fd = C.openat(rootFd, r, LibC.O_WRONLY | LibC.O_CLOEXEC | LibC.O_NONBLOCK | LibC.O_NOFOLLOW, 0); // see openBacking
        if (fd < 0) return -Posix.errno();
        try {
            return C.ftruncate(fd, size) == 0 ? 0 : -Posix.errno();
        } finally {
            C.close(fd);
        }
    }

    /** fallocate(2): as on the backing file, after copy-on-write for a versioned one (see LiveFile). */
    @Override
    public int fallocate(String path, int mode, long off, long length, FuseFileInfo fi) {
        try {
            Handle h = handles.get(fi.fh.get());
            if (h == null) return Errno.EBADF.negated();
            if (h.live == null && h.beginPassThrough()) {
                try {
                    return C.fallocate(h.fd, mode, off, length) == 0 ? 0 : -Posix.errno();
                } finally {
                    h.endPassThrough();
                }
            }
            return h.live.fallocate(mode, off, length, h);
        } catch (Throwable t) {
            return failed("fallocate", path, t);
        }
    }

    @Override
    public int ftruncate(String path, long size, FuseFileInfo fi) {
        try {
            Handle h = handles.get(fi.fh.get());
            if (h == null) return truncate(path, size);
            if (h.live == null && h.beginPassThrough()) {
                try {
                    return C.ftruncate(h.fd, size) == 0 ? 0 : -Posix.errno();
                } finally {
                    h.endPassThrough();
                }
            }
            return h.live.truncate(size, h);
        } catch (Throwable t) {
            return failed("ftruncate", path, t);
        }
    }

    /**
     * close() waits for this: the version is saved here, so the program cannot run ahead of it.
     * Must always be implemented (answering ENOSYS once makes the kernel stop sending flush), and
     * never fails the program's close() because a version could not be taken.
     */
    @Override
    public int flush(String path, FuseFileInfo fi) {
        try {
            Handle h = handles.get(fi.fh.get());
            if (h == null) return 0;
            LiveFile lf = h.live;
            if (lf != null) lf.flushFrom(h, pid());
            return 0;
        } catch (Throwable t) {
            failed("flush", path, t);
            return 0;
        }
    }

    @Override
    public int fsync(String path, int isdatasync, FuseFileInfo fi) {
        try {
            Handle h = handles.get(fi.fh.get());
            if (h == null) return 0;
            LiveFile lf = h.live;
            if (lf != null) return lf.fsync(isdatasync != 0);
            int r = isdatasync != 0 ? C.fdatasync(h.fd) : C.fsync(h.fd);
            return r == 0 ? 0 : -Posix.errno();
        } catch (Throwable t) {
            return failed("fsync", path, t);
        }
    }

    @Override
    public int release(String path, FuseFileInfo fi) {
        try {
            Handle h = handles.remove(fi.fh.get());
            if (h == null) return 0;
            if (h.fd >= 0) C.close(h.fd);
            LiveFile lf = h.live;
            if (lf != null) lf.release();
            return 0;
        } catch (Throwable t) {
            return failed("release", path, t);
        }
    }
}
