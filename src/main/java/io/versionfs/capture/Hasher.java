package io.versionfs.capture;

import io.versionfs.sys.Extents;
import io.versionfs.sys.IoError;
import io.versionfs.sys.Sha256;
import io.versionfs.text.Log;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * Writes the manifest of one versions folder: every line goes through one background thread, in
 * the order it was handed over, and a saved version is hashed there first (hashing 512 MiB inside
 * the program's close() would take seconds). A version identical to the one before it in its
 * series says so ({@code same_as}) and shares that one's blocks where the filesystem can.
 */
final class Hasher {
    /**
     * One thread for every folder, in hand-over order. Shared so that a glob matching thousands
     * of files does not mean thousands of threads.
     */
    private static final ExecutorService THREAD =
            Executors.newSingleThreadExecutor(Posix.backgroundThreads("versionfs-hasher", Posix.Background.LOWEST));

    /** The last saved version of a series as hashed. */
    private record Hashed(long number, String name, long size, String sha256) {}

    private final Path dir;         // as the user knows it (warnings)
    private final Path access;      // how we reach it (see VersionStore)
    private final int dirFd;
    private final Manifest manifest; // written on the thread only (and at close, once it is drained)
    /** Told, on the thread, of each saved version once its line is written with its hash. */
    private final Consumer<Version> listed;
    /** Per series, the last saved version as hashed. The thread only. */
    private final Map<String, Hashed> lastHashed = new HashMap<>();
    private final AtomicLong dedupedBytes = new AtomicLong();
    /** Per series, the blocks the last hashed version shares by reflink. The thread only. */
    private final Map<String, List<Extents.Range>> lastShared = new HashMap<>();
    /** Whether the folder's filesystem can share blocks between files (XFS, btrfs): only then is FIEMAP worth a call. */
    private final boolean mayShare;
    /**
     * The version file being hashed now (written by the thread), and whether to stop (written by
     * whoever removes that file): a version given up must let go of its blocks at once.
     */
    private volatile String hashing;
    private volatile boolean cancelled;

    Hasher(Path dir, Path access, int dirFd, Manifest manifest, Consumer<Version> listed) {
        this.dir = dir;
        this.access = access;
        this.dirFd = dirFd;
        this.manifest = manifest;
        this.listed = listed;
        this.mayShare = Extents.mayShare(dirFd); // by descriptor: dir may be inside our own mount (--mode dir)
    }

    /** Hashes {@code v} (unless lost), writes its line, then tells {@code listed}. Removed meanwhile: no line. */
    void record(Version v) {
        THREAD.execute(() -> {
            if (v.gone()) return;
            if (!v.lost() && !hash(v)) return; // given up while being hashed: its own line follows
            ManifestLine.Builder line = v.toLine();
            if (!v.lost()) dedupe(v, line);
            if (!v.lost()) countSharedOnce(v);
            write(line.build());
            if (!v.lost() && v.sha256() != null) listed.accept(v);
        });
    }

    /** Appends a line (an event, or a version's later fate) in order with the versions. */
    void append(ManifestLine line) {
        THREAD.execute(() -> write(line));
    }

    /** The file {@code versionFile} was removed: if it is being hashed, stop, so its blocks come back now. */
    void cancel(String versionFile) {
        if (versionFile != null && versionFile.equals(hashing)) cancelled = true;
    }

    /** Waits until every line handed over so far is written. */
    /** As {@link #drain()}, but waits at most {@code millis}: true if the queue was through by then. */
    boolean drain(long millis) {
        try {
            THREAD.submit(() -> {}).get(millis, java.util.concurrent.TimeUnit.MILLISECONDS);
            return true;
        } catch (java.util.concurrent.TimeoutException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    void drain() {
        try {
            THREAD.submit(() -> {}).get();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Bytes not stored twice because a version equalled the one before it. */
    long dedupedBytes() {
        return dedupedBytes.get();
    }

    /** On the thread: sets {@code v}'s sha256 (null if unreadable); false if cancelled meanwhile. */
    private boolean hash(Version v) {
        hashing = v.versionFile;
        cancelled = false;
        try {
            v.sha256(sha256(access.resolve(v.versionFile), () -> cancelled));
        } finally {
            hashing = null;
        }
        return !cancelled;
    }

    /** Every line as written: with its host in a job on several nodes (set before the first capture). */
    private volatile java.util.function.UnaryOperator<ManifestLine> stamp = java.util.function.UnaryOperator.identity();

    void stampWith(java.util.function.UnaryOperator<ManifestLine> s) {
        stamp = s;
    }

    private void write(ManifestLine line) {
        try {
            manifest.append(stamp.apply(line));
        } catch (IOException e) {
            Log.warnOnce("manifest:" + dir, "cannot append to " + manifest.path() + ": " + e.getMessage());
        }
    }

    /**
     * A version identical to the previous one of its series (same size and sha256: a program that
     * rewrote the same content) says so, and shares the previous one's blocks where the
     * filesystem has reflinks. On the thread.
     */
    private void dedupe(Version v, ManifestLine.Builder line) {
        Hashed prev = lastHashed.get(v.file);
        lastHashed.put(v.file, new Hashed(v.number, v.versionFile, v.size, v.sha256()));
        if (prev == null || v.sha256() == null || prev.size() != v.size || !v.sha256().equals(prev.sha256())) return;
        line.sameAs(prev.number());
        if (shareExtents(prev.name(), v)) dedupedBytes.addAndGet(Math.max(0, v.disk >= 0 ? v.disk : v.size));
    }

    /**
     * On a filesystem with reflinks a version copied from the live file shares most of its blocks
     * with the version before it (an in-place edit changes a few): what it takes is its blocks
     * less those it shares with the previous version of its series, so that --max-size counts
     * each shared block once, with the earlier version. On the thread.
     */
    private void countSharedOnce(Version v) {
        if (!mayShare) return;
        int fd = Posix.C.openat(dirFd, v.versionFile, LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0);
        if (fd < 0) return;
        try {
            List<Extents.Range> mine = Extents.shared(fd);
            List<Extents.Range> prev = lastShared.put(v.file, mine);
            if (prev != null && v.disk > 0) v.disk = Math.max(0, v.disk - Extents.overlap(mine, prev));
        } finally {
            Posix.C.close(fd);
        }
    }

    /**
     * Makes {@code v}'s file share its blocks with {@code prev}'s (a reflink: two inodes, so a
     * write through one name never reaches the other) where the filesystem can. Not a hard link:
     * whoever gives a version its write bit back (chmod) would then change two versions.
     */
    private boolean shareExtents(String prev, Version v) {
        int src = Posix.C.openat(dirFd, prev, LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0);
        if (src < 0) return false; // the previous one is gone (pruned, dropped)
        FileStat was = Stat.of(src);
        if (was == null || Stat.size(was) != v.size) {
            // Not the content it was hashed with any more: on several nodes a version given way
            // is replaced by an empty tombstone (NodeNumbering.retire), which must never be cloned.
            Posix.C.close(src);
            return false;
        }
        String tmp = VersionStore.HIDDEN + "/tmp/" + v.versionFile.replace('/', '~') + ".same";
        int dst = Posix.C.openat(dirFd, tmp, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_EXCL | LibC.O_CLOEXEC, 0400);
        try {
            if (dst < 0 || Posix.C.ioctl(dst, LibC.FICLONE, src) != 0) return false;
            synchronized (v) { // the version's file: not removed meanwhile (else the rename would bring it back)
                FileStat st = v.gone() ? null : Stat.at(dirFd, v.versionFile, LibC.AT_SYMLINK_NOFOLLOW);
                if (st == null) return false;
                Posix.C.fchmod(dst, Stat.mode(st) & 07777);
                return Posix.C.renameat(dirFd, tmp, dirFd, v.versionFile) == 0;
            }
        } finally {
            Posix.C.close(src);
            if (dst >= 0) Posix.C.close(dst);
            Posix.C.unlinkat(dirFd, tmp, 0); // gone already if renamed
        }
    }

    /**
     * On the thread. Opened with O_CLOEXEC through libc, not a Java FileChannel: a descriptor
     * open while libfuse forks fusermount (auto_unmount) is inherited by that long-lived helper,
     * and a version given up to free space would keep its blocks.
     */
    /** The hash of a version file; null if cancelled or unreadable (then the line has no sha256, and verify says so). */
    private static String sha256(Path p, BooleanSupplier cancelled) {
        try {
            return Sha256.of(p, cancelled, true);
        } catch (IoError.Thrown e) {
            Log.debug("sha256: " + e.getMessage());
            return null;
        }
    }
}
