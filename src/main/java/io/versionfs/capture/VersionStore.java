package io.versionfs.capture;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.report.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.IoError;
import io.versionfs.sys.FileCopier;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * One versions folder: the numbered version files, {@code manifest.jsonl}, and the hidden
 * {@code .versionfs/} area (the live backing files in symlink mode, temp files). Living inside the
 * versions folder puts the backing store on the job's filesystem, next to the versions, which is
 * what makes an O(1) capture by hard link possible.
 *
 * <p>Capturing is a hard link of the live file (the caller guarantees the live file is not
 * modified afterwards: see {@code fs.LiveFile}). Only where a link is impossible do we copy,
 * inside the capture, and say so once. Hashing and the manifest line happen on one background
 * thread, in capture order.
 */
public final class VersionStore implements AutoCloseable {
    public static final String HIDDEN = ".versionfs";

    private final Path dir;          // as the user knows it (summary, manifest path)
    private final Path access;       // how we reach it: /proc/self/fd/N, never through our own mount
    private final int dirFd;
    /** The user's or group's quota on the versions filesystem, where the kernel shows it. */
    private final io.versionfs.sys.Quota quota;
    private final Manifest manifest;
    private final Instant start;
    private final Map<String, AtomicLong> next = new ConcurrentHashMap<>();
    private final Map<String, VersionLog> logs = new ConcurrentHashMap<>();
    private final AtomicInteger lost = new AtomicInteger();
    private final Hasher hasher;

    private VersionStore(Path dir, int dirFd, Manifest manifest, Instant start) {
        this.dir = dir;
        this.dirFd = dirFd;
        this.quota = io.versionfs.sys.Quota.of(dirFd);
        this.access = Path.of("/proc/self/fd/" + dirFd);
        this.manifest = manifest;
        this.start = start;
        this.hasher = new Hasher(dir, access, dirFd, manifest, this::queueHook);
    }

    /** Creates (if needed) and opens a versions folder. Throws IOException with a clear message. */
    public static VersionStore open(Path dir, Instant start) throws IOException {
        Path abs = dir.toAbsolutePath().normalize();
        return open(abs, abs, start);
    }

    /**
     * Opens a versions folder reached through {@code access} (e.g. /proc/self/fd/N/name.versions,
     * for a folder inside a directory that our own mount now covers) but known to the user as
     * {@code shown}. Everything after this goes through the folder's descriptor.
     */
    public static VersionStore open(Path access, Path shown, Instant start) throws IOException {
        Files.createDirectories(access.resolve(HIDDEN).resolve("live"));
        Files.createDirectories(access.resolve(HIDDEN).resolve("tmp"));
        if (!Files.isWritable(access)) throw new IOException(shown + " is not writable");
        Files.createDirectories(access.resolve(PENDING));
        int fd = Posix.openDir(access.toString());
        Path fdPath = Path.of("/proc/self/fd/" + fd);
        Path dirty = fdPath.resolve(HIDDEN).resolve(DIRTY);
        boolean wasDirty = Files.exists(dirty);
        VersionStore store = new VersionStore(shown, fd, new Manifest(fdPath, shown), start);
        boolean recovered = store.recoverPending();
        if (wasDirty || recovered) store.adoptUnlisted();
        Files.writeString(dirty, Long.toString(ProcessHandle.current().pid()));
        return store;
    }

    /** Present while a run has the folder open; found at open, it means that run was killed. */
    private static final String DIRTY = "open";

    /**
     * A run killed between saving a version and writing its manifest line (the line follows the
     * hash, a few ms after close() returned) leaves version files the manifest does not list. They
     * are complete (a version file appears whole or not at all): hash them and list them, reason
     * "recovered-unlisted", so that every version file is accounted for.
     */
    private void adoptUnlisted() throws IOException {
        java.util.Set<String> listed = new java.util.HashSet<>();
        Map<String, String> seriesOfStem = new java.util.HashMap<>();
        for (ManifestLine r : Manifest.read(access)) {
            if (r.path() != null) listed.add(r.path());
            if (r.file() != null && r.path() != null) seriesOfStem.put(VersionNaming.seriesOfFileName(r.path()), r.file());
        }
        List<Path> found = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(access)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                if (!VersionNaming.isVersionFileName(n) || listed.contains(n) || !Files.isRegularFile(p)) continue;
                found.add(p);
            }
        }
        found.sort(null);
        for (Path p : found) {
            String n = p.getFileName().toString();
            String stemExt = VersionNaming.seriesOfFileName(n);
            String series = seriesOfStem.getOrDefault(stemExt, stemExt);
            var num = VersionNaming.parse(series, n);
            if (num.isEmpty()) continue;
            Instant mtime = Files.getLastModifiedTime(p).toInstant();
            Version v = new Version(num.getAsLong(), series, n, Files.size(p), mtime, 0, "", "recovered-unlisted",
                    Version.Status.SAVED, null);
            record(v);
        }
        if (!found.isEmpty()) {
            Log.warn(found.size() + " version file(s) in " + dir + " had no manifest line (a run was killed just after"
                    + " saving them): hashed and listed now, reason recovered-unlisted");
        }
    }

    /**
     * Opens a versions folder for a command, turning every failure into one line that names the
     * cause and the fix ({@link UserError}: exit 203, or 208 when the disk is full).
     */
    public static VersionStore openChecked(Path vdir, Instant start) {
        return openChecked(vdir, vdir, start);
    }

    /** As {@link #openChecked(Path, Instant)}, reached through {@code access} (see {@link #open(Path, Path, Instant)}). */
    public static VersionStore openChecked(Path access, Path vdir, Instant start) {
        checkUsable(vdir);
        try {
            return open(access, vdir, start);
        } catch (IOException e) {
            throw cannotUse(vdir, e);
        }
    }

    /** Checks that can refuse a versions folder before anything is created. */
    public static void checkUsable(Path vdir) {
        if (vdir.getParent() != null && Files.exists(vdir.getParent()) && !Files.isDirectory(vdir.getParent())) {
            throw new UserError(ExitCodes.VERSIONS_DIR, "the folder for versions cannot be created: "
                    + vdir.getParent() + " is a file, not a folder (choose another versions folder)");
        }
        if (vdir.getParent() == null || !Files.isDirectory(vdir.getParent())) {
            throw new UserError(ExitCodes.VERSIONS_DIR, "the folder for versions cannot be created: "
                    + vdir.getParent() + " does not exist (create it, or choose another versions folder)");
        }
        if (Files.exists(vdir) && !Files.isDirectory(vdir)) {
            throw new UserError(ExitCodes.VERSIONS_DIR, vdir + " exists and is not a folder: move that file away"
                    + " or choose another versions folder");
        }
    }

    /**
     * Removes a versions folder that holds nothing of value (no version, no manifest line): what
     * a run leaves when it is refused or fails before the job starts.
     */
    public static void removeIfUnused(Path vdir) throws IOException {
        if (!Files.isDirectory(vdir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
        List<Path> all;
        try (var walk = Files.walk(vdir)) {
            all = walk.sorted(java.util.Comparator.reverseOrder()).toList();
        }
        for (Path p : all) {
            if (Files.isDirectory(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) continue;
            if (p.equals(vdir.resolve(Manifest.FILE_NAME)) && Files.size(p) == 0) continue;
            return; // something of value (or not ours): keep the folder
        }
        for (Path p : all) Files.deleteIfExists(p);
    }

    /** One line for a versions folder that cannot be used, with the cause and the fix. */
    public static UserError cannotUse(Path vdir, IOException e) {
        {
            String m = e.getMessage() == null ? e.toString() : e.getMessage();
            if (Errno.isNoSpace(e)) {
                return new UserError(ExitCodes.NO_SPACE, "no space to create " + vdir + ": free space or quota, then retry");
            }
            if (Errno.ENAMETOOLONG.is(Errno.of(e))) {
                return new UserError(ExitCodes.VERSIONS_DIR, "cannot create " + vdir + ": File name too long"
                        + " (give a shorter name, or --versions-dir)");
            }
            return new UserError(ExitCodes.VERSIONS_DIR, "cannot use " + vdir + " as versions folder ("
                    + e.getClass().getSimpleName().replace("Exception", "") + ": " + m + "): check it is writable by you");
        }
    }

    public Path dir() {
        return dir;
    }

    /** Folder holding live backing files in symlink mode. */
    public Path liveDir() {
        return dir.resolve(HIDDEN).resolve("live");
    }

    /** The same folder, reached through our descriptor (safe while a mount covers its path). */
    public Path liveDirAccess() {
        return access.resolve(HIDDEN).resolve("live");
    }

    public Path manifestPath() {
        return manifest.path();
    }

    public Instant start() {
        return start;
    }

    /**
     * Next number for {@code series}, continuing after any versions already in the folder. The
     * folder is scanned once per series, streaming: a million old versions cost one pass, not a
     * million names held in memory.
     */
    private long allocate(String series) {
        return next.computeIfAbsent(series, f -> new AtomicLong(highestExisting(f) + 1)).getAndIncrement();
    }

    /** Whether the highest-numbered version file of {@code series} is the inode (dev, ino). */
    public boolean isLatestVersion(String series, long dev, long ino) {
        long n = highestExisting(series);
        if (n == 0) return false;
        FileStat st = Stat.at(dirFd, VersionNaming.versionName(series, n), LibC.AT_SYMLINK_NOFOLLOW);
        return st != null && Stat.dev(st) == dev && Stat.ino(st) == ino;
    }

    private long highestExisting(String series) {
        String folder = VersionNaming.folderOf(series);
        long max = 0;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(folder.isEmpty() ? access : access.resolve(folder))) {
            for (Path p : ds) {
                var num = VersionNaming.parse(series, p.getFileName().toString());
                if (num.isPresent()) max = Math.max(max, num.getAsLong());
            }
        } catch (IOException e) {
            // folder not there yet: numbering starts at 1
        }
        return max;
    }

    /** Result of a capture: the version, and whether the live file is now shared with it. */
    public record Captured(Version version, boolean linked) {}

    /**
     * Saves the current content of the open file {@code fd} as the next version of {@code series}:
     * a hard link through /proc/self/fd (O(1)), or a copy where a link is impossible (the file was
     * unlinked while open, or the versions folder is on another filesystem). The caller holds the
     * file's exclusive lock, so the content cannot change while we link or copy; {@code cancelled}
     * ends a copy early when the run is stopping.
     */
    public Captured captureFd(int fd, String series, String reason, int pid, String cmd, BooleanSupplier cancelled) {
        return capture(LibC.AT_FDCWD, "/proc/self/fd/" + fd, LibC.AT_SYMLINK_FOLLOW_LINK, fd, series, reason, pid, cmd,
                cancelled, false);
    }

    /**
     * As {@link #captureFd}, but always an independent copy (reflink where the filesystem can):
     * for a file that others can write without going through versionfs (its content before the
     * run, a file with hard links we did not make), whose inode must never be a version's.
     */
    public Captured copyFd(int fd, String series, String reason, int pid, String cmd, BooleanSupplier cancelled) {
        return capture(LibC.AT_FDCWD, "/proc/self/fd/" + fd, LibC.AT_SYMLINK_FOLLOW_LINK, fd, series, reason, pid, cmd,
                cancelled, true);
    }

    /** Saves a copy of the regular file at {@code path} (not ours: never linked) as the next version. */
    public Captured copyAtPath(Path path, String series, String reason) {
        int fd = Posix.C.openat(LibC.AT_FDCWD, path.toString(), LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0);
        if (fd < 0) return new Captured(recordLost(series, reason, 0, "", "open " + path + ": " + Posix.strerror(Posix.errno())), false);
        try {
            return capture(LibC.AT_FDCWD, "/proc/self/fd/" + fd, LibC.AT_SYMLINK_FOLLOW_LINK, fd, series, reason, 0, "",
                    () -> false, true);
        } finally {
            Posix.C.close(fd);
        }
    }

    /** Saves the file {@code rel} (relative to {@code dirFd}) as the next version: the "initial" version. */
    public Captured captureAt(int dirFd, String rel, String series, String reason) {
        return capture(dirFd, rel, 0, -1, series, reason, 0, "", () -> false, false);
    }

    private Captured capture(int srcDirFd, String srcRel, int linkFlags, int srcFd, String series, String reason, int pid,
                             String cmd, BooleanSupplier cancelled, boolean copy) {
        long number = allocate(series);
        String name = VersionNaming.versionName(series, number);
        Instant now = Instant.now();
        boolean linked = false;
        IoError error = null;
        if (copy) {
            if (!VersionNaming.folderOf(series).isEmpty()) Posix.C.mkdirat(dirFd, VersionNaming.folderOf(series), 0755);
            while (Posix.C.faccessat(dirFd, name, 0, LibC.AT_SYMLINK_NOFOLLOW) == 0) {
                number = allocate(series); // taken by a stray file: skip the number
                name = VersionNaming.versionName(series, number);
            }
            error = copyInto(srcFd, srcDirFd, srcRel, name, cancelled);
            while (error != null && error.noSpace() && dropOneForSpace()) error = copyInto(srcFd, srcDirFd, srcRel, name, cancelled);
            return finish(number, series, name, now, pid, cmd, reason, error, false);
        }
        // Linked under a hidden name: the inode is still the live file's (see publish).
        for (int tries = 0; tries < 1000 && Posix.C.faccessat(dirFd, name, 0, LibC.AT_SYMLINK_NOFOLLOW) == 0; tries++) {
            number = allocate(series); // a file already has that name (put there by hand): skip the number
            name = VersionNaming.versionName(series, number);
        }
        int rc = Posix.C.linkat(srcDirFd, srcRel, dirFd, pendingName(name), linkFlags);
        for (int tries = 0; rc != 0 && Posix.errno() == Errno.EEXIST.code && tries < 1000; tries++) {
            number = allocate(series);
            name = VersionNaming.versionName(series, number);
            rc = Posix.C.linkat(srcDirFd, srcRel, dirFd, pendingName(name), linkFlags);
        }
        if (rc == 0) {
            linked = true;
        } else {
            int e = Posix.errno();
            if (e == Errno.ENOENT.code && srcFd >= 0) {
                // The live name was unlinked while open: an inode with no name cannot be linked.
                error = copyInto(srcFd, srcDirFd, srcRel, name, cancelled);
            } else if (e == Errno.EXDEV.code || e == Errno.EPERM.code || e == Errno.EMLINK.code || e == Errno.EOPNOTSUPP.code) {
                Log.warnOnce("nolink:" + dir, "cannot hard-link into " + dir + " (" + Posix.strerror(e)
                        + "): copying each version instead, which makes close() wait for the copy."
                        + " Put the versions folder on the same filesystem as the target to avoid this.");
                error = copyInto(srcFd, srcDirFd, srcRel, name, cancelled);
            } else {
                error = new IoError(e, "link");
            }
            // No room for the copy: older versions of this run give way (oldest first).
            while (error != null && error.noSpace() && dropOneForSpace()) error = copyInto(srcFd, srcDirFd, srcRel, name, cancelled);
        }
        return finish(number, series, name, now, pid, cmd, reason, error, linked);
    }

    private Captured finish(long number, String series, String name, Instant now, int pid, String cmd, String reason,
                            IoError error, boolean linked) {
        Version v;
        if (error == null) {
            FileStat st = Stat.at(dirFd, linked ? pendingName(name) : name, LibC.AT_SYMLINK_NOFOLLOW);
            long size = st != null ? Stat.size(st) : -1;
            v = new Version(number, series, name, size, now, pid, cmd, reason, Version.Status.SAVED, null);
            if (st != null) v.disk = Stat.diskBytes(st);
            if (st != null) v.mode = Stat.mode(st) & 07777;
            if (linked) hide(v);
            else readOnly(name, v.mode);
            v.published = !linked;
        } else {
            lost.incrementAndGet();
            if (error.noSpace()) {
                // One line, not one per version: a full disk can cost thousands in a long run.
                Log.warnOnce("nospace-lost:" + dir, "version " + number + " of " + series + " and any later one that does"
                        + " not fit could not be saved: " + error + " (free space or quota in " + dir + "; the job's own"
                        + " writes are not affected; the summary counts them)");
            } else {
                Log.warn("version " + number + " of " + series + " could not be saved: " + error);
            }
            v = new Version(number, series, null, -1, now, pid, cmd, reason, Version.Status.LOST, error.toString());
        }
        log(series).add(v);
        if (!v.lost()) {
            synchronized (droppable) {
                (reason.equals("initial") ? lastResort : droppable).add(new Droppable(series, number, name, reason.intern()));
            }
        }
        if (!linked) recordInOrder(v);
        if (!v.lost()) applyRetention(series, v);
        return new Captured(v, linked);
    }

    // ---- publication: a version's name appears once the job can no longer write its inode ------

    /**
     * Where a version linked to the live inode waits, one folder per versionfs process: its
     * published name would lead to an inode the job still writes (until the copy-on-write swap),
     * and a tool writing through that name would change the job's file. Never listed, hashed or
     * given to a hook from here.
     */
    static final String PENDING_ROOT = HIDDEN + "/pending";
    private static final String PENDING = PENDING_ROOT + "/" + processId(ProcessHandle.current()) + "/";

    /**
     * A process by pid and start time: a pid alone is reused, and in a pid namespace (a container)
     * every run's JVM may be pid 1.
     */
    private static String processId(ProcessHandle p) {
        return p.pid() + "-" + p.info().startInstant().map(java.time.Instant::toEpochMilli).orElse(0L);
    }

    /** Whether the versionfs process that named a hidden folder {@code id} still runs (then the folder is its own). */
    private static boolean running(String id) {
        int dash = id.indexOf('-');
        try {
            long pid = Long.parseLong(dash < 0 ? id : id.substring(0, dash));
            return ProcessHandle.of(pid).map(VersionStore::processId).filter(id::equals).isPresent();
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /** Versions linked to a live inode, not yet published (see {@link #publish}). */
    private final java.util.Set<Version> pending = ConcurrentHashMap.newKeySet();

    /** The hidden name of a version that is not published yet: its name with '/' and '%' escaped. */
    static String pendingName(String versionFile) {
        return PENDING + escape(versionFile);
    }

    private static String escape(String versionFile) {
        return versionFile.replace("%", "%25").replace("/", "%2F");
    }

    private static String unescape(String pendingBase) {
        return pendingBase.replace("%2F", "/").replace("%25", "%");
    }

    /** Where the version's file is now: its published name, or its hidden one. Caller holds the version's monitor. */
    private static String storedName(Version v) {
        return v.published ? v.versionFile : pendingName(v.versionFile);
    }

    /** Version files are read-only to everyone, their owner too: a careless tool gets EACCES, not a changed version. */
    private void readOnly(String name, int mode) {
        if (mode >= 0) Posix.C.fchmodat(dirFd, name, mode & 07555, 0);
    }

    /**
     * The live file no longer shares the inode of {@code v} (a fresh inode took the live name, or
     * no name leads to it any more): gives the version its name, read-only, then hashes it, writes
     * its manifest line and queues its hook. O(1) (a chmod and a rename): it can run inside the
     * job's write. A version given up meanwhile is not published.
     */
    public void publish(Version v) {
        if (!pending.remove(v)) return;
        boolean named;
        synchronized (v) {
            named = !v.givenUp && moveOut(v);
        }
        if (named) recordInOrder(v);
        else unlist(v);
    }

    /** Gives a hidden version its read-only name; false if it cannot (said). Caller holds the version's monitor. */
    private boolean moveOut(Version v) {
        String from = pendingName(v.versionFile);
        readOnly(from, v.mode);
        if (!moveInto(from, v.versionFile)) return false;
        v.published = true;
        return true;
    }

    /**
     * End of the run: every version still pending is published. One that still shares its inode
     * with a file (the copy that separates them did not fit, and that was said) keeps its mode,
     * so that file stays writable.
     */
    public void publishRemaining() {
        for (Version v : List.copyOf(pending)) {
            if (!pending.remove(v)) continue;
            boolean named;
            synchronized (v) {
                FileStat st = v.givenUp ? null : Stat.at(dirFd, pendingName(v.versionFile), LibC.AT_SYMLINK_NOFOLLOW);
                // Still shared (st_nlink > 1): its bits stay, the file it shares must stay writable.
                if (st != null && Stat.nlink(st) > 1) v.mode = -1;
                named = st != null && moveOut(v); // st null: given up, or dropped to make room (recorded)
            }
            if (named) recordInOrder(v);
            else unlist(v);
        }
        synchronized (deferred) {
            for (String series : List.copyOf(deferred.keySet())) releaseDeferred(series);
        }
    }

    /**
     * Versions ready for their manifest line while an earlier version of their series is still
     * hidden, by series and number: the manifest stays in number order within a series (a file
     * replaced while open is published before the one that replaced it, which is older).
     */
    private final Map<String, java.util.TreeMap<Long, Version>> deferred = new java.util.HashMap<>();
    /**
     * Hidden versions not yet handed to {@link #recordInOrder} nor gone: what later versions wait
     * for. Guarded by {@code deferred}, so leaving it and joining the queue is one step (a version
     * published between the two would let a later one overtake it).
     */
    private final java.util.Set<Version> unlisted = new java.util.HashSet<>();

    private void hide(Version v) {
        synchronized (deferred) {
            unlisted.add(v);
        }
        pending.add(v);
    }

    /** Hashes and lists {@code v} now, or once every earlier hidden version of its series is published or gone. */
    private void recordInOrder(Version v) {
        synchronized (deferred) {
            unlisted.remove(v);
            deferred.computeIfAbsent(v.file, k -> new java.util.TreeMap<>()).put(v.number, v);
            releaseDeferred(v.file);
        }
    }

    /** {@code v} will not be listed as saved (given up, or it could not get its name): later ones go on. */
    private void unlist(Version v) {
        synchronized (deferred) {
            unlisted.remove(v);
            releaseDeferred(v.file);
        }
    }

    /** A hidden version of {@code series} was published or given up: what waited for it goes on. Caller holds deferred. */
    private void releaseDeferred(String series) {
        java.util.TreeMap<Long, Version> waiting = deferred.get(series);
        if (waiting == null) return;
        long firstHidden = Long.MAX_VALUE;
        for (Version p : unlisted) if (p.file.equals(series)) firstHidden = Math.min(firstHidden, p.number);
        while (!waiting.isEmpty() && waiting.firstKey() < firstHidden) record(waiting.pollFirstEntry().getValue());
        if (waiting.isEmpty()) deferred.remove(series);
    }

    /** {@code v} will get no manifest line of its own (removed): it no longer waits, nor holds up others. */
    private void undefer(Version v) {
        synchronized (deferred) {
            java.util.TreeMap<Long, Version> waiting = deferred.get(v.file);
            if (waiting != null && waiting.remove(v.number, v) && waiting.isEmpty()) deferred.remove(v.file);
        }
    }

    /** {@code v} left the hidden versions without being published (given up, pruned): later ones may go on. */
    private boolean unhide(Version v) {
        if (!pending.remove(v)) return false;
        unlist(v);
        return true;
    }

    /** Renames a hidden version file to its name, never over another file. False (and said) if it cannot. */
    private boolean moveInto(String from, String name) {
        int e = renameNoReplace(from, name);
        if (e == Errno.ENOENT.code && !VersionNaming.folderOf(name).isEmpty()) {
            Posix.C.mkdirat(dirFd, VersionNaming.folderOf(name), 0755); // first version of sub/x.dat
            e = renameNoReplace(from, name);
        }
        if (e == 0) return true;
        if (e != Errno.ENOENT.code) { // ENOENT: dropped to make room meanwhile, and recorded then
            Log.warn("version " + name + " stays hidden in " + dir.resolve(from) + ": cannot give it its name ("
                    + Posix.strerror(e) + ")");
        }
        return false;
    }

    /** 0, or the errno of renaming {@code from} to {@code name} where no file has that name. */
    private int renameNoReplace(String from, String name) {
        if (Posix.C.renameat2(dirFd, from, dirFd, name, LibC.RENAME_NOREPLACE) == 0) return 0;
        int e = Posix.errno();
        if (e != Errno.EINVAL.code) return e;
        // A filesystem without RENAME_NOREPLACE (some NFS): numbers are ours alone in a run, so a
        // check first is enough against a stray file.
        if (Posix.C.faccessat(dirFd, name, 0, LibC.AT_SYMLINK_NOFOLLOW) == 0) return Errno.EEXIST.code;
        return Posix.C.renameat(dirFd, from, dirFd, name) == 0 ? 0 : Posix.errno();
    }

    /**
     * Versions a killed run left hidden: each gets its name now, as a copy if its inode is still
     * shared (with the target that run was writing), so the version cannot change when that file
     * does. Folders of versionfs processes still running are theirs. True if any was recovered
     * (they are then listed by {@link #adoptUnlisted}).
     */
    private boolean recoverPending() throws IOException {
        boolean any = false;
        try (DirectoryStream<Path> pids = Files.newDirectoryStream(access.resolve(PENDING_ROOT))) {
            for (Path p : pids) {
                String id = p.getFileName().toString();
                if (running(id)) continue;
                String rel = PENDING_ROOT + "/" + id + "/";
                try (DirectoryStream<Path> ds = Files.newDirectoryStream(p)) {
                    for (Path f : ds) any |= recoverOne(rel + f.getFileName(), unescape(f.getFileName().toString()));
                }
                Posix.C.unlinkat(dirFd, rel, LibC.AT_REMOVEDIR); // empty now, unless one could not be recovered
            }
        }
        return any;
    }

    private boolean recoverOne(String from, String name) {
        FileStat st = Stat.at(dirFd, from, LibC.AT_SYMLINK_NOFOLLOW);
        if (st == null || !Stat.isRegular(st) || !VersionNaming.isVersionFileName(VersionNaming.baseOf(name))) return false;
        int mode = Stat.mode(st) & 07777;
        if (Stat.nlink(st) > 1) {
            String tmp = HIDDEN + "/tmp/" + escape(name) + ".recovered";
            IoError err = FileCopier.copyAt(dirFd, from, dirFd, tmp, false, () -> false);
            if (err != null) {
                Log.warn("a version left by a killed run stays hidden in " + dir.resolve(from) + ": no copy (" + err + ")");
                return false;
            }
            readOnly(tmp, mode);
            if (!moveInto(tmp, name)) {
                Posix.C.unlinkat(dirFd, tmp, 0);
                return false;
            }
            Posix.C.unlinkat(dirFd, from, 0);
            return true;
        }
        readOnly(from, mode);
        return moveInto(from, name);
    }

    // ---- hooks ---------------------------------------------------------------------------------

    private volatile Hooks hooks;

    /** Runs {@code h} after each version is saved and hashed (see {@link Hooks}). */
    public void hooks(Hooks h) {
        h.manifest(this::event);
        h.logAt(access.resolve(Hooks.LOG));
        h.onDone(v -> prune(v.file));
        this.hooks = h;
    }

    public Hooks hooks() {
        return hooks;
    }

    /** On the hasher's thread: a saved version has its line; its hook, if any, may run. */
    private void queueHook(Version v) {
        Hooks h = hooks;
        if (h != null) h.queue(v, dir.resolve(v.versionFile));
    }

    /**
     * The versions folder shows no more than its target does: the folder, its hidden folder,
     * the manifest (sha256s, command lines) and hooks.log get at most the target's permissions
     * (read and write bits; a folder's search bit where it may be read): a 0600 target gives a
     * 0700 folder and 0600 files. Permissions are only ever narrowed, never widened. Call after
     * {@link #hooks(Hooks)}.
     */
    public void restrictTo(int targetMode) {
        int files = targetMode & 0666;
        int dirs = files | ((files & 0444) >> 2);
        narrow(dirFd, null, dirs);
        narrow(dirFd, HIDDEN, dirs);
        narrow(dirFd, Manifest.FILE_NAME, files);
        if (hooks != null) {
            // Created now with that mode: the hooks' output is appended to it later.
            int f = Posix.C.openat(dirFd, Hooks.LOG, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_APPEND | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, files);
            if (f >= 0) Posix.C.close(f);
            narrow(dirFd, Hooks.LOG, files);
        }
    }

    private static void narrow(int dirFd, String name, int allowed) {
        FileStat st = name == null ? Stat.of(dirFd) : Stat.at(dirFd, name, LibC.AT_SYMLINK_NOFOLLOW);
        if (st == null) return;
        int mode = Stat.mode(st) & 07777;
        if ((mode & ~allowed & 0777) == 0) return;
        int narrowed = mode & (allowed | ~0777);
        if (name == null) Posix.C.fchmod(dirFd, narrowed);
        else Posix.C.fchmodat(dirFd, name, narrowed, 0);
    }

    // ---- headroom guard ------------------------------------------------------------------------

    /** Bytes to leave free on the versions filesystem; -1: the default, min(5%, 10 GiB). */
    private volatile long minFree = -1;
    private final AtomicInteger skipped = new AtomicInteger();

    public void minFree(long bytes) {
        this.minFree = bytes;
    }

    /**
     * Whether keeping a version of a {@code size}-byte file would leave less than the headroom
     * free: a version keeps those bytes (at once when copied; at the next rewrite when linked),
     * and the job's own next write of the file needs as much again. Null when there is room,
     * else why not.
     */
    public String lowOnSpace(long size) {
        if (NO_GUARD) return null;
        long[] space = space(dirFd);
        if (space == null) return null;
        String low = headroomShort(space[0], space[1], size, minFree);
        if (low != null) return "low space: " + space[0] + " bytes free in " + dir + ", " + low;
        // A quota fills before the disk does, and statvfs does not show it: EDQUOT would hit the
        // job's own next write. The same headroom rule, against the tightest limit in force.
        io.versionfs.sys.Quota.Limit q = quota.tightest();
        if (q == null) return null;
        low = headroomShort(q.headroom(), q.limit(), size, minFree);
        return low == null ? null : "low quota: " + q.headroom() + " bytes left under the " + q + " on " + dir + ", " + low;
    }

    /**
     * The headroom rule, for a disk ({@code avail} of {@code total} bytes) or a quota (headroom
     * of the limit): keeping a {@code size}-byte version must leave {@code minFree} bytes, or by
     * default min(5% of the total, 10 GiB). Null when it does; else the numbers, for the record.
     */
    public static String headroomShort(long avail, long total, long size, long minFree) {
        long keep = minFree >= 0 ? minFree : Math.min(total / 20, 10L << 30);
        if (avail - Math.max(0, size) >= keep) return null;
        return "a version of " + size + " bytes would leave less than " + keep + " (--min-free)";
    }

    /** The tightest quota in force on the versions filesystem, for reports; null if none is visible. */
    public io.versionfs.sys.Quota.Limit quota() {
        return NO_GUARD ? null : quota.tightest();
    }

    /**
     * Whether an optional copy of {@code size} bytes onto the filesystem of {@code fd} leaves the
     * default headroom (min(5%, 10 GiB)) for the job: a background copy must never take the job's
     * last free space. True when the space cannot be read (the copy's own ENOSPC is then handled).
     */
    public static boolean roomForOptionalCopy(int fd, long size) {
        if (NO_GUARD) return true;
        long[] space = space(fd);
        return space == null || headroomShort(space[0], space[1], size, -1) == null;
    }

    /** {available to us, total} bytes of the filesystem holding {@code fd}, or null if statvfs fails. */
    private static long[] space(int fd) {
        ru.serce.jnrfuse.struct.Statvfs sv = STATVFS.get();
        if (Posix.C.fstatvfs(fd, jnr.ffi.Struct.getMemory(sv)) != 0) return null;
        long frsize = sv.f_frsize.longValue() > 0 ? sv.f_frsize.longValue() : sv.f_bsize.longValue();
        return new long[] {sv.f_bavail.longValue() * frsize, sv.f_blocks.longValue() * frsize};
    }

    /** Tests of what happens when the disk fills anyway (another process filled it) turn the guard off. */
    private static final boolean NO_GUARD = Boolean.getBoolean("versionfs.noHeadroomGuard");

    private static final ThreadLocal<ru.serce.jnrfuse.struct.Statvfs> STATVFS = ThreadLocal.withInitial(
            () -> ru.serce.jnrfuse.struct.Statvfs.of(jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), 256)));

    /** A close that was not kept as a version because space is low: one manifest line, counted in the summary. */
    public void skipped(String series, String reason, int pid, String why) {
        if (skipped.incrementAndGet() == 1) {
            Log.warn("versions of " + series + " are being skipped: " + why + ". The job's own writes come first;"
                    + " the summary counts the skipped closes");
        }
        ManifestLine line = ManifestLine.event("skipped").file(series).reason(reason).pid(pid).why(why).build();
        hasher.append(line);
    }

    public int skippedCount() {
        return skipped.get();
    }

    // ---- retention (live) ----------------------------------------------------------------------

    private volatile Retention.Policy policy = Retention.Policy.KEEP_ALL;
    /** This run's saved versions per series that retention still keeps, oldest first. */
    private final Map<String, List<Version>> kept = new ConcurrentHashMap<>();
    private final AtomicInteger pruned = new AtomicInteger();

    /** The keep rules applied after each capture (see {@link Retention}); default: keep everything. */
    public void retention(Retention.Policy p) {
        this.policy = p;
    }

    /**
     * Applies the keep rules right at capture (inside the program's close(), so a --max-size
     * budget holds at every moment, not only once hashes catch up): versions no rule keeps are
     * removed, each with a manifest line saying why. Only this run's versions are considered;
     * {@code versionfs prune} handles the rest. The newest is always kept (it may share the live
     * file), so removing others never touches the live file.
     */
    private void applyRetention(String series, Version v) {
        if (policy.keepsAll()) return;
        List<Version> list = kept.computeIfAbsent(series, k -> new ArrayList<>());
        synchronized (list) {
            list.add(v);
        }
        prune(series);
    }

    /**
     * Removes what the keep rules do not keep, except a version whose --on-version hook runs right
     * now: it goes when the hook ends (this runs again then), so no hook finds its file gone.
     */
    private void prune(String series) {
        Retention.Policy p = policy;
        if (p.keepsAll()) return;
        List<Version> list = kept.get(series);
        if (list == null) return;
        Hooks h = hooks;
        synchronized (list) {
            List<Retention.Entry> entries = new ArrayList<>(list.size());
            for (Version x : list) entries.add(new Retention.Entry(x.number, Math.max(0, x.disk >= 0 ? x.disk : x.size), x.time));
            List<Retention.Decision> out = Retention.toPrune(entries, p);
            if (out.isEmpty()) return;
            java.util.Set<Long> gone = new java.util.HashSet<>();
            for (Retention.Decision d : out) {
                Version x = list.stream().filter(y -> y.number == d.entry().number()).findFirst().orElse(null);
                if (x == null) continue;
                boolean hookQueued;
                synchronized (x) {
                    if (h != null && h.busy(x)) continue;
                    x.givenUp = true; // not hashed yet: its "saved" line is not written, the pruned one is
                    Posix.C.unlinkat(dirFd, storedName(x), 0);
                    hookQueued = x.hookQueued;
                }
                unhide(x);
                undefer(x);
                // A queued hook counts itself as skipped when its turn comes; one never queued is counted here.
                if (h != null && !hookQueued) h.skip(x, "the version was removed by the keep rules before its hook's turn");
                hasher.cancel(x.versionFile);
                gone.add(x.number);
                pruned.incrementAndGet();
                log(series).markPruned(x.number);
                ManifestLine line = x.toLine().path(null).status("pruned").pruned(d.why()).build();
                hasher.append(line);
            }
            list.removeIf(y -> gone.contains(y.number));
        }
    }

    public int prunedCount() {
        return pruned.get();
    }

    /**
     * Copies the source into a temp file, then renames it into place: a version appears complete
     * or not at all (a partial copy is never a "saved" version).
     */
    private IoError copyInto(int srcFd, int srcDirFd, String srcRel, String name, BooleanSupplier cancelled) {
        String tmp = HIDDEN + "/tmp/" + name.replace('/', '~') + ".part";
        IoError err = srcFd >= 0 ? FileCopier.copyFd(srcFd, dirFd, tmp, false, cancelled)
                : FileCopier.copyAt(srcDirFd, srcRel, dirFd, tmp, false, cancelled);
        FileStat st = err == null ? Stat.at(dirFd, tmp, LibC.AT_SYMLINK_NOFOLLOW) : null;
        if (st != null) readOnly(tmp, Stat.mode(st) & 07777); // never under its name with a write bit
        if (err == null && Posix.C.renameat(dirFd, tmp, dirFd, name) != 0) {
            err = IoError.last("rename");
            Posix.C.unlinkat(dirFd, tmp, 0);
        }
        return err;
    }

    /** A version of this run that may give way when the job's own writes need its space. */
    private record Droppable(String series, long number, String name, String reason) {}

    /** Oldest first. */
    private final java.util.ArrayDeque<Droppable> droppable = new java.util.ArrayDeque<>();
    /**
     * The content before the run: given up only when nothing else of this run is left. Without
     * versionfs the job would have overwritten that content anyway; its writes come first.
     */
    private final java.util.ArrayDeque<Droppable> lastResort = new java.util.ArrayDeque<>();

    /**
     * The job's writes come first: when the disk is full, gives up the oldest version of this run
     * that holds blocks of its own (one that shares the live file frees nothing), records it lost
     * with the reason, and answers true so the write can be retried; false if none is left.
     */
    public boolean dropOneForSpace() {
        synchronized (droppable) {
            return dropFrom(droppable) || dropFrom(lastResort);
        }
    }

    private boolean dropFrom(java.util.ArrayDeque<Droppable> queue) {
        {
            var it = queue.iterator();
            while (it.hasNext()) {
                Droppable d = it.next();
                FileStat st = Stat.at(dirFd, d.name(), LibC.AT_SYMLINK_NOFOLLOW);
                if (st == null && Posix.C.faccessat(dirFd, pendingName(d.name()), 0, LibC.AT_SYMLINK_NOFOLLOW) == 0) {
                    continue; // not published yet: it shares the live file, removing it frees nothing
                }
                if (st == null) {
                    it.remove(); // already gone (given up another way)
                    continue;
                }
                if (Stat.nlink(st) > 1) continue; // shares the live file: removing it frees nothing
                long size = Stat.size(st);
                if (Posix.C.unlinkat(dirFd, d.name(), 0) != 0) continue;
                hasher.cancel(d.name()); // its blocks come back when the hasher lets go
                it.remove();
                lost.incrementAndGet();
                String why = "dropped to make room for the job's own writes (disk full or quota)";
                log(d.series()).markLost(d.number());
                Log.warnOnce("dropped:" + dir, "the disk of " + dir + " is full: versions of this run give way to the"
                        + " job's own writes, oldest first (each is recorded in the manifest)");
                if (queue == lastResort) {
                    Log.warn("version " + d.number() + " of " + d.series() + " (its content before the run) was given up:"
                            + " the job needed the space");
                }
                ManifestLine line = ManifestLine.version(d.number(), d.series()).size(size).status("lost").reason(d.reason())
                        .dropped(true).error(why).build();
                hasher.append(line);
                return true;
            }
            return false;
        }
    }

    /** Records a version that could not even be attempted (e.g. the live file vanished). */
    public Version recordLost(String file, String reason, int pid, String cmd, String error) {
        long number = allocate(file);
        Version v = new Version(number, file, null, -1, Instant.now(), pid, cmd, reason, Version.Status.LOST, error);
        lost.incrementAndGet();
        log(file).add(v);
        record(v);
        return v;
    }

    /**
     * A version that was saved but had to be given up later (its file could not be unshared from
     * the live file, e.g. disk full): the file is removed and the manifest says why.
     */
    public void giveUp(Version v, String error) {
        synchronized (v) {
            v.givenUp = true; // its "saved" line, if not written yet, is not written at all
            Posix.C.unlinkat(dirFd, storedName(v), 0);
        }
        unhide(v);
        lost.incrementAndGet();
        Version gone = new Version(v.number, v.file, null, v.size, v.time, v.pid, v.command, v.reason,
                Version.Status.LOST, error);
        log(v.file).replace(v, gone);
        hasher.append(gone.toLine().build());
    }

    private void record(Version v) {
        hasher.record(v);
    }

    /** Appends a non-version event (rename detected, run start/end) in order with the versions. */
    public void event(ManifestLine.Builder event) {
        hasher.append(event.build()); // stamped now, written in order with the versions
    }

    /**
     * One line on what the versions take: their total size, what they occupy on disk (identical
     * versions stored once, reflinked extents shared, holes not stored), and the free space left.
     */
    public String usage() {
        String u = Usage.of(access, dir, hasher.dedupedBytes());
        io.versionfs.sys.Quota.Limit q = quota();
        if (u == null || q == null) return u;
        return u + "; " + q + ": " + io.versionfs.report.Summary.bytes(q.used()) + " used of "
                + io.versionfs.report.Summary.bytes(q.limit());
    }

    /** Bytes not stored twice because a version equalled the one before it. */
    public long dedupedBytes() {
        return hasher.dedupedBytes();
    }

    /** Waits until every queued hash and manifest line is written. */
    public void drain() {
        hasher.drain();
    }

    private VersionLog log(String file) {
        return logs.computeIfAbsent(file, f -> new VersionLog());
    }

    /** Per file name, what the summary shows (bounded; the manifest has everything). */
    public Map<String, VersionLog.Snapshot> versions() {
        Map<String, VersionLog.Snapshot> out = new java.util.TreeMap<>();
        logs.forEach((f, l) -> out.put(f, l.snapshot()));
        return out;
    }

    public int lostCount() {
        return lost.get();
    }

    @Override
    public void close() {
        publishRemaining();
        drain();
        Posix.C.unlinkat(dirFd, PENDING, LibC.AT_REMOVEDIR); // empty unless a version could not get its name (said)
        try {
            Files.deleteIfExists(access.resolve(HIDDEN).resolve(DIRTY));
        } catch (IOException e) {
            Log.debug("dirty marker: " + e.getMessage());
        }
        try {
            manifest.close();
        } catch (IOException e) {
            Log.warn("could not finish " + manifest.path() + ": " + e.getMessage());
        } finally {
            Posix.C.close(dirFd);
        }
    }
}
