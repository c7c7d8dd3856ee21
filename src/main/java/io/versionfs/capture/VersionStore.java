package io.versionfs.capture;

import io.versionfs.text.Bytes;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.FileCopier;
import io.versionfs.sys.IoError;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Quota;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

/**
 * One versions folder: the numbered version files, {@code manifest.jsonl}, and the hidden
 * {@code .versionfs/} area (the live backing files in symlink mode, temp files, the pending
 * folder). Living inside the versions folder puts the backing store on the job's filesystem, next
 * to the versions, which is what makes an O(1) capture by hard link possible.
 *
 * <p>This class opens the folder (and recovers what a killed run left), numbers the versions and
 * captures them. Capturing is a hard link of the live file (the caller guarantees the live file is
 * not modified afterwards: see {@code fs.LiveFile}). Only where a link is impossible do we copy,
 * inside the capture, and say so once. The rest has one class each: {@link Publication} (when a
 * version gets its name and its manifest line), {@link Hasher} (hashes and manifest lines, on one
 * background thread), {@link GiveWay} behind {@link Room} (the job's writes come first),
 * {@link LiveRetention} (keep rules at capture), {@link Tally} (the summary), {@link Usage}.
 */
public final class VersionStore implements AutoCloseable {
    public static final String HIDDEN = ".versionfs";
    /** Present while a run has the folder open; found at open, it means that run was killed. */
    private static final String DIRTY = "open";

    private final Path dir;          // as the user knows it (summary, manifest path)
    private final Path access;       // how we reach it: /proc/self/fd/N, never through our own mount
    private final int dirFd;
    private final Manifest manifest; // written by the hasher's thread only
    private final Instant start;
    /** Per series, the next number to give. */
    private final Map<String, AtomicLong> next = new ConcurrentHashMap<>();
    private final Tally tally = new Tally();
    private final Hasher hasher;
    private final Publication publication;
    private final Headroom headroom;
    private final GiveWay giveWay;
    private final LiveRetention retention;
    private volatile Hooks hooks;

    private VersionStore(Path dir, int dirFd, Manifest manifest, Instant start) {
        this.dir = dir;
        this.dirFd = dirFd;
        this.access = Path.of("/proc/self/fd/" + dirFd);
        this.manifest = manifest;
        this.start = start;
        this.hasher = new Hasher(dir, access, dirFd, manifest, this::queueHook);
        this.publication = new Publication(dir, access, dirFd, hasher::record);
        this.headroom = new Headroom(dir, dirFd, hasher::append);
        this.giveWay = new GiveWay(dir, dirFd, headroom, publication, hasher, tally);
        this.retention = new LiveRetention(publication, hasher, tally, () -> hooks);
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
        Files.createDirectories(access.resolve(Publication.FOLDER));
        int fd = Posix.openDir(access.toString());
        Path fdPath = Path.of("/proc/self/fd/" + fd);
        Path dirty = fdPath.resolve(HIDDEN).resolve(DIRTY);
        boolean wasDirty = Files.exists(dirty);
        recoverNodeManifests(fd, fdPath, shown);
        VersionStore store = new VersionStore(shown, fd, new Manifest(fdPath, shown), start);
        boolean recovered = store.publication.recover();
        if (wasDirty || recovered) store.adoptUnlisted();
        Files.writeString(dirty, Long.toString(ProcessHandle.current().pid()));
        return store;
    }

    /**
     * A job on several nodes whose batch node was killed leaves its nodes' manifests unmerged:
     * merged now, before anything else reads the folder's history (see {@link ManifestMerge#recover}).
     * If that fails they stay, and the readers go on merging them as they read.
     */
    private static void recoverNodeManifests(int fd, Path fdPath, Path shown) {
        try {
            ManifestMerge.recover(fd, fdPath, shown);
        } catch (IOException e) {
            Log.warn("could not merge the node manifests left in " + shown.resolve(NodeNumbering.NODES) + " ("
                    + e.getMessage() + "): they stay there, and list, verify and restore read them too");
        }
    }

    /**
     * A run killed between saving a version and writing its manifest line (the line follows the
     * hash, a few ms after close() returned) leaves version files the manifest does not list. They
     * are complete (a version file appears whole or not at all): hash them and list them, reason
     * "recovered-unlisted", so that every version file is accounted for.
     */
    private void adoptUnlisted() throws IOException {
        Set<String> listed = new HashSet<>();
        Map<String, String> seriesOfStem = new HashMap<>();
        List<ManifestLine> rows = new ArrayList<>(Manifest.read(access));
        for (NodeManifests.Source n : NodeManifests.read(access)) {
            for (NodeManifests.Line l : n.lines()) if (l.parsed() != null) rows.add(l.parsed()); // not merged: still listed
        }
        for (ManifestLine r : rows) {
            if (r.path() != null) listed.add(r.path());
            if (r.file() != null && r.path() != null) seriesOfStem.put(VersionNaming.seriesOfFileName(r.path()), r.file());
        }
        List<Path> found = unlisted(listed);
        for (Path p : found) {
            String n = p.getFileName().toString();
            String stemExt = VersionNaming.seriesOfFileName(n);
            String series = seriesOfStem.getOrDefault(stemExt, stemExt);
            var num = VersionNaming.parse(series, n);
            if (num.isEmpty()) continue;
            Instant mtime = Files.getLastModifiedTime(p).toInstant();
            hasher.record(new Version(num.getAsLong(), series, n, Files.size(p), mtime, 0, "", "recovered-unlisted",
                    Version.Status.SAVED, null));
        }
        if (!found.isEmpty()) {
            Log.warn(found.size() + " version file(s) in " + dir + " had no manifest line (a run was killed just after"
                    + " saving them): hashed and listed now, reason recovered-unlisted");
        }
    }

    /** The version files in the folder that are not in {@code listed}, in name order. */
    private List<Path> unlisted(Set<String> listed) throws IOException {
        List<Path> found = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(access)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                if (VersionNaming.isVersionFileName(n) && !listed.contains(n) && Files.isRegularFile(p)
                        && !NodeNumbering.isTombstone(access, p)) found.add(p);
            }
        }
        found.sort(null);
        return found;
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
        if (!Files.isDirectory(vdir, LinkOption.NOFOLLOW_LINKS)) return;
        List<Path> all;
        try (var walk = Files.walk(vdir)) {
            all = walk.sorted(Comparator.reverseOrder()).toList();
        }
        for (Path p : all) {
            if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) continue;
            if (p.equals(vdir.resolve(Manifest.FILE_NAME)) && Files.size(p) == 0) continue;
            return; // something of value (or not ours): keep the folder
        }
        for (Path p : all) Files.deleteIfExists(p);
    }

    /** One line for a versions folder that cannot be used, with the cause and the fix. */
    public static UserError cannotUse(Path vdir, IOException e) {
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
     * Next number for {@code series}, continuing after any versions already in the folder and
     * after the numbers the manifest's newest lines name (a version whose file is gone: removed
     * by hand, given way, lost). The folder is scanned once per series, streaming: a million old
     * versions cost one pass, not a million names held in memory.
     */
    private long allocate(String series) {
        return next.computeIfAbsent(series, f -> new AtomicLong(Math.max(highestExisting(f), highestListed(f)) + 1))
                .getAndIncrement();
    }

    /** The manifest tail's highest numbers, read once (before this store's first version); guarded by its own lock. */
    private Map<String, Long> listed;
    private final Object listedLock = new Object();

    private long highestListed(String series) {
        synchronized (listedLock) {
            return listedNumbers().getOrDefault(series, 0L);
        }
    }

    private Map<String, Long> listedNumbers() {
        if (listed == null) {
            try {
                // Through our descriptor on the folder (never through our own mount); the history's
                // manifest.jsonl also on a node of a job on several nodes, whose own lines go elsewhere.
                listed = ManifestTail.highestNumbers(access.resolve(Manifest.FILE_NAME));
            } catch (IOException e) {
                Log.debug("cannot read the tail of " + dir.resolve(Manifest.FILE_NAME) + ": " + e.getMessage());
                listed = Map.of();
            }
        }
        return listed;
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

    private boolean exists(String name) {
        return Posix.C.faccessat(dirFd, name, 0, LibC.AT_SYMLINK_NOFOLLOW) == 0;
    }

    // ---- capture ---------------------------------------------------------------------------------

    /** Result of a capture: the version, and whether the live file is now shared with it. */
    public record Captured(Version version, boolean linked) {}

    /** What to save: a file reached as {@code rel} from {@code dirFd} (linkat with {@code linkFlags}), open as {@code fd} (-1: not open). */
    private record Source(int dirFd, String rel, int linkFlags, int fd) {
        static Source open(int fd) {
            return new Source(LibC.AT_FDCWD, "/proc/self/fd/" + fd, LibC.AT_SYMLINK_FOLLOW_LINK, fd);
        }
    }

    /** Who asks for a version, and why; {@code cancelled} ends a copy early when the run is stopping. */
    private record Request(String series, String reason, int pid, String cmd, BooleanSupplier cancelled) {}

    /**
     * Saves the current content of the open file {@code fd} as the next version of {@code series}:
     * a hard link through /proc/self/fd (O(1)), or a copy where a link is impossible (the file was
     * unlinked while open, or the versions folder is on another filesystem). The caller holds the
     * file's exclusive lock, so the content cannot change while we link or copy; {@code cancelled}
     * ends a copy early when the run is stopping.
     */
    public Captured captureFd(int fd, String series, String reason, int pid, String cmd, BooleanSupplier cancelled) {
        return saveLink(Source.open(fd), new Request(series, reason, pid, cmd, cancelled));
    }

    /**
     * As {@link #captureFd}, but always an independent copy (reflink where the filesystem can):
     * for a file that others can write without going through versionfs (its content before the
     * run, a file with hard links we did not make), whose inode must never be a version's.
     */
    public Captured copyFd(int fd, String series, String reason, int pid, String cmd, BooleanSupplier cancelled) {
        return saveCopy(Source.open(fd), new Request(series, reason, pid, cmd, cancelled));
    }

    /** Saves a copy of the regular file at {@code path} (not ours: never linked) as the next version. */
    public Captured copyAtPath(Path path, String series, String reason) {
        int fd = Posix.C.openat(LibC.AT_FDCWD, path.toString(), LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0);
        if (fd < 0) return new Captured(recordLost(series, reason, 0, "", "open " + path + ": " + Posix.strerror(Posix.errno())), false);
        try {
            return saveCopy(Source.open(fd), new Request(series, reason, 0, "", () -> false));
        } finally {
            Posix.C.close(fd);
        }
    }

    /** Copies the open file {@code fd} (the caller keeps and closes it) as the next version. */
    public Captured copyFromFd(int fd, String series, String reason) {
        return saveCopy(Source.open(fd), new Request(series, reason, 0, "", () -> false));
    }

    /** Saves the file {@code rel} (relative to {@code dirFd}) as the next version: the "initial" version. */
    public Captured captureAt(int dirFd, String rel, String series, String reason) {
        return saveLink(new Source(dirFd, rel, 0, -1), new Request(series, reason, 0, "", () -> false));
    }

    /** Records a version that could not even be attempted (e.g. the live file vanished). */
    public Version recordLost(String file, String reason, int pid, String cmd, String error) {
        long number = allocate(file);
        if (nodes != null) {
            NodeNumbering.Placed p = nodes.claim(dirFd, file, number, () -> allocate(file)); // see lostAcrossNodes
            if (p.error() != null) {
                headroom.skipped(file, reason, pid, error + "; no number could be given (" + p.error() + ")");
                return new Version(-1, file, null, -1, Instant.now(), pid, cmd, reason, Version.Status.LOST, error);
            }
            number = p.number();
        }
        Version v = new Version(number, file, null, -1, Instant.now(), pid, cmd, reason, Version.Status.LOST, error);
        tally.added(v);
        publication.list(v); // in number order with the others of its series
        return v;
    }

    /** An independent copy under the next number no stray file has taken. */
    private Captured saveCopy(Source src, Request r) {
        if (nodes != null) return copyAcrossNodes(src, r); // numbered by link(): a rename could replace another node's version
        Instant now = Instant.now();
        if (!VersionNaming.folderOf(r.series()).isEmpty()) Posix.C.mkdirat(dirFd, VersionNaming.folderOf(r.series()), 0755);
        long number = freeNumber(r.series());
        String name = VersionNaming.versionName(r.series(), number);
        return finish(number, name, now, r, roomMadeFor(copyInto(src, name, r.cancelled()), src, name, r.cancelled()), false);
    }

    /**
     * A hard link under a hidden name: the inode is still the live file's, so the version gets its
     * name later ({@link Publication}). A copy where a link is impossible.
     */
    private Captured saveLink(Source src, Request r) {
        if (nodes != null) return copyAcrossNodes(src, r);
        Instant now = Instant.now();
        long number = freeNumber(r.series());
        int e = link(src, VersionNaming.versionName(r.series(), number));
        for (int tries = 0; e == Errno.EEXIST.code && tries < 1000; tries++) {
            number = allocate(r.series());
            e = link(src, VersionNaming.versionName(r.series(), number));
        }
        String name = VersionNaming.versionName(r.series(), number);
        if (e == 0) return finish(number, name, now, r, null, true);
        return finish(number, name, now, r, linkFailed(e, src, name, r.cancelled()), false);
    }

    /**
     * The next number of {@code series} whose name no file has. Numbering starts after every
     * version file in the folder (the manifest and a scan at the start), so a file that has a
     * later number's name now was put there during the run by something else (a tool writing
     * job.000005.gbw): it is set aside (Publication.setAside) rather than left to look like an
     * unlisted version, which made verify report versions lost; if it cannot be, the number is
     * skipped.
     */
    private long freeNumber(String series) {
        long number = allocate(series);
        for (int tries = 0; tries < 1000 && exists(VersionNaming.versionName(series, number)); tries++) {
            if (publication.setAside(VersionNaming.versionName(series, number))) break;
            number = allocate(series);
        }
        return number;
    }

    /** 0, or the errno of linking the source under the hidden name of {@code name}. */
    private int link(Source src, String name) {
        return Posix.C.linkat(src.dirFd(), src.rel(), dirFd, Publication.pendingName(name), src.linkFlags()) == 0 ? 0 : Posix.errno();
    }

    /** The link failed with {@code e}: a copy where no link can be made, else the error. Null once saved. */
    private IoError linkFailed(int e, Source src, String name, BooleanSupplier cancelled) {
        IoError error;
        if (e == Errno.ENOENT.code && src.fd() >= 0) {
            // The live name was unlinked while open: an inode with no name cannot be linked.
            error = copyInto(src, name, cancelled);
        } else if (e == Errno.EXDEV.code || e == Errno.EPERM.code || e == Errno.EMLINK.code || e == Errno.EOPNOTSUPP.code) {
            Log.warnOnce("nolink:" + dir, "cannot hard-link into " + dir + " (" + Posix.strerror(e)
                    + "): copying each version instead, which makes close() wait for the copy."
                    + " Put the versions folder on the same filesystem as the target to avoid this.");
            error = copyInto(src, name, cancelled);
        } else {
            error = new IoError(e, "link");
        }
        return roomMadeFor(error, src, name, cancelled);
    }

    /** No room for the copy: older versions of this run give way (oldest first), and the copy is tried again. */
    private IoError roomMadeFor(IoError error, Source src, String name, BooleanSupplier cancelled) {
        while (error != null && error.noSpace() && giveWay.dropOne()) error = copyInto(src, name, cancelled);
        return error;
    }

    /**
     * Copies the source into a temp file, then renames it into place: a version appears complete
     * or not at all (a partial copy is never a "saved" version).
     */
    private IoError copyInto(Source src, String name, BooleanSupplier cancelled) {
        String tmp = HIDDEN + "/tmp/" + name.replace('/', '~') + ".part";
        IoError err = copyTo(src, tmp, cancelled);
        int e = err == null ? publication.claim(tmp, name) : 0; // never over a file that took the name meanwhile
        if (e != 0) {
            err = new IoError(e, "rename");
            Posix.C.unlinkat(dirFd, tmp, 0);
        }
        return err;
    }

    /** Copies the source to the temp file {@code tmp}, read-only (never under its name with a write bit). */
    private IoError copyTo(Source src, String tmp, BooleanSupplier cancelled) {
        IoError err = src.fd() >= 0 ? FileCopier.copyFd(src.fd(), dirFd, tmp, false, cancelled)
                : FileCopier.copyAt(src.dirFd(), src.rel(), dirFd, tmp, false, cancelled);
        FileStat st = err == null ? Stat.at(dirFd, tmp, LibC.AT_SYMLINK_NOFOLLOW) : null;
        if (st != null) Publication.readOnly(dirFd, tmp, Stat.mode(st) & 07777);
        return err;
    }

    // ---- a job on several nodes ------------------------------------------------------------------

    /** The numbering across nodes once {@link #acrossNodes} was called; null on one node. Set before the mount. */
    private volatile NodeNumbering nodes;
    /** Opened by an agent on another node ({@link #openOnNode}): the batch node owns the folder's markers. */
    private boolean onNode;

    /**
     * A job on several nodes writes the live file from each: a version is always a copy (a version
     * sharing the live inode could be changed by a write on another node), copied under a temp
     * name of this process, then linked to the first free number ({@link NodeNumbering}).
     */
    private Captured copyAcrossNodes(Source src, Request r) {
        Instant now = Instant.now();
        long guess = allocate(r.series());
        NodeNumbering.folderFor(dirFd, r.series());
        String tmp = nodes.tempName(r.series());
        IoError error = copyTo(src, tmp, r.cancelled());
        if (error != null) {
            Posix.C.unlinkat(dirFd, tmp, 0); // a partial copy
            return lostAcrossNodes(guess, now, r, error);
        }
        NodeNumbering.Placed p = nodes.link(dirFd, tmp, r.series(), guess, () -> allocate(r.series()));
        if (p.error() != null) return lostAcrossNodes(allocate(r.series()), now, r, p.error());
        return finish(p.number(), p.name(), now, r, null, false);
    }

    /**
     * A version that could not be saved on a job of several nodes: its number is taken by a
     * tombstone, so no other node's version gets it. If not even that can be done, no number
     * is given: the close is a 'skipped' line, counted in the summary.
     */
    private Captured lostAcrossNodes(long guess, Instant now, Request r, IoError error) {
        NodeNumbering.Placed p = nodes.claim(dirFd, r.series(), guess, () -> allocate(r.series()));
        if (p.error() == null) return finish(p.number(), null, now, r, error, false);
        headroom.skipped(r.series(), r.reason(), r.pid(), "could not be saved (" + error + ") nor given a number (" + p.error() + ")");
        return new Captured(new Version(-1, r.series(), null, -1, now, r.pid(), r.cmd(), r.reason(), Version.Status.LOST,
                error.toString()), false);
    }

    /** The store of a job on several nodes (see {@link NodeNumbering}); null on one node. */
    public NodeNumbering nodes() {
        return nodes;
    }

    /** From now on every version is a copy numbered by link() across nodes, every manifest line carries the host. */
    public void acrossNodes(NodeNumbering n) {
        nodes = n;
        Removal tombstone = (fd, name, series) -> {
            if (n.retire(fd, name, series)) return true;
            Log.warnOnce("retire:" + dir, "could not put a tombstone at " + dir.resolve(name) + " (" + Posix.strerror(Posix.errno())
                    + "): removed instead; another node may give its number to a later version");
            return Removal.UNLINK.remove(fd, name, series);
        };
        giveWay.removeWith(tombstone);
        publication.removeWith(tombstone);
        hasher.stampWith(n::stamp);
    }

    /**
     * Opens a versions folder from another node of the job, beside the batch node's run: versions
     * numbered by {@link NodeNumbering}, lines into this node's own manifest, and nothing of the
     * folder's recovery (its pending versions and markers are the batch node's).
     */
    public static VersionStore openOnNode(Path dir, Instant start, NodeNumbering n) throws IOException {
        Path abs = dir.toAbsolutePath().normalize();
        Files.createDirectories(abs.resolve(NodeNumbering.NODES));
        Files.createDirectories(abs.resolve(HIDDEN).resolve("tmp")); // made by the batch node's open, unless it was refused
        int fd = Posix.openDir(abs.toString());
        Path fdPath = Path.of("/proc/self/fd/" + fd);
        Manifest m = new Manifest(fdPath.resolve(NodeNumbering.NODES), abs.resolve(NodeNumbering.NODES), n.manifestName());
        VersionStore store = new VersionStore(abs, fd, m, start);
        store.acrossNodes(n);
        store.onNode = true;
        return store;
    }

    /** Lists {@code inOrder} as {@code series}'s versions in the summary (the merged history of every node). */
    public void relist(String series, List<Version> inOrder) {
        tally.relist(series, inOrder);
    }

    /** The folder, reached through our descriptor. */
    Path access() {
        return access;
    }

    int dirFd() {
        return dirFd;
    }

    /** Lines are in the manifest once this returns: the batch node merges the nodes' manifests into it. */
    Manifest manifest() {
        return manifest;
    }

    /** The capture is done ({@code error} null: saved as {@code name}, hidden if {@code linked}): recorded. */
    private Captured finish(long number, String name, Instant now, Request r, IoError error, boolean linked) {
        Version v = error == null ? saved(number, name, now, r, linked) : lost(number, now, r, error);
        tally.added(v);
        if (v.lost()) {
            publication.list(v);
            return new Captured(v, false);
        }
        giveWay.add(v);
        if (linked) publication.hide(v);
        else publication.list(v);
        retention.saved(v);
        return new Captured(v, linked);
    }

    /** The version just saved as {@code name} (hidden while linked), with its size, blocks and mode. */
    private Version saved(long number, String name, Instant now, Request r, boolean linked) {
        FileStat st = Stat.at(dirFd, linked ? Publication.pendingName(name) : name, LibC.AT_SYMLINK_NOFOLLOW);
        Version v = new Version(number, r.series(), name, st != null ? Stat.size(st) : -1, now, r.pid(), r.cmd(), r.reason(),
                Version.Status.SAVED, null);
        if (st != null) {
            v.disk = Stat.diskBytes(st);
            v.mode = Stat.mode(st) & 07777;
        }
        if (!linked) Publication.readOnly(dirFd, name, v.mode);
        return v;
    }

    private Version lost(long number, Instant now, Request r, IoError error) {
        if (error.noSpace()) {
            // One line, not one per version: a full disk can cost thousands in a long run.
            Log.warnOnce("nospace-lost:" + dir, "version " + number + " of " + r.series() + " and any later one that does"
                    + " not fit could not be saved: " + error + " (free space or quota in " + dir + "; the job's own"
                    + " writes are not affected; the summary counts them)");
        } else {
            Log.warn("version " + number + " of " + r.series() + " could not be saved: " + error);
        }
        return new Version(number, r.series(), null, -1, now, r.pid(), r.cmd(), r.reason(), Version.Status.LOST, error.toString());
    }

    // ---- what the file system and the run ask of the folder -------------------------------------

    /** The live file no longer shares the inode of {@code v}: it gets its name (see {@link Publication#publish}). */
    public void publish(Version v) {
        publication.publish(v);
    }

    /** End of the run: every version still hidden gets its name (see {@link Publication#publishRemaining}). */
    public void publishRemaining() {
        publication.publishRemaining();
    }

    /** Where the file system turns when space runs short. */
    public Room room() {
        return giveWay;
    }

    /** Appends a non-version event (rename detected, run start/end) in order with the versions. */
    public void event(ManifestLine.Builder event) {
        hasher.append(event.build()); // stamped now, written in order with the versions
    }

    /** Bytes to leave free on the versions filesystem (see {@link Headroom}); -1: the default, min(5%, 10 GiB). */
    public void minFree(long bytes) {
        headroom.minFree(bytes);
    }

    /** The keep rules applied after each capture (see {@link LiveRetention}); default: keep everything. */
    Retention.Policy retentionPolicy() {
        return retention.policy();
    }

    public void retention(Retention.Policy p) {
        retention.policy(p);
    }

    /** Runs {@code h} after each version is saved and hashed (see {@link Hooks}). */
    public void hooks(Hooks h) {
        h.manifest(this::event);
        // An agent's hooks log beside the batch node's, never into it: appends from two nodes to one
        // file are not atomic on NFS.
        h.logAt(access.resolve(onNode ? "hooks." + nodes.host() + ".log" : Hooks.LOG));
        h.onDone(v -> retention.prune(v.file));
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

    // ---- what the summary says ------------------------------------------------------------------

    /**
     * One line on what the versions take: their total size, what they occupy on disk (identical
     * versions stored once, reflinked extents shared, holes not stored), the free space left, and
     * the quota if one is in force.
     */
    public String usage() {
        String u = Usage.of(access, dir, hasher.dedupedBytes());
        Quota.Limit q = headroom.quota();
        if (u == null || q == null) return u;
        return u + "; " + q + ": " + Bytes.of(q.used()) + " used of " + Bytes.of(q.limit());
    }

    /** Bytes not stored twice because a version equalled the one before it. */
    public long dedupedBytes() {
        return hasher.dedupedBytes();
    }

    /** Per file name, what the summary shows (bounded; the manifest has everything). */
    public Map<String, VersionLog.Snapshot> versions() {
        return tally.versions();
    }

    public int lostCount() {
        return tally.lostCount();
    }

    public int skippedCount() {
        return headroom.skippedCount();
    }

    public int prunedCount() {
        return retention.prunedCount();
    }

    /** Waits until every queued hash and manifest line is written. */
    public void drain() {
        hasher.drain();
    }

    /**
     * Waits (at most {@code millis}) until the hasher is through its queue: a version given way
     * while it was being hashed keeps its blocks until the hasher closes it. True if through.
     */
    public boolean settle(long millis) {
        return hasher.drain(millis);
    }

    /** The folder's own markers: the batch node's (or the one node's) to remove. */
    private void dropMarkers() {
        Posix.C.unlinkat(dirFd, Publication.FOLDER, LibC.AT_REMOVEDIR); // empty unless a version could not get its name (said)
        try {
            Files.deleteIfExists(access.resolve(HIDDEN).resolve(DIRTY));
        } catch (IOException e) {
            Log.debug("dirty marker: " + e.getMessage());
        }
    }

    @Override
    public void close() {
        publishRemaining();
        drain();
        if (!onNode) dropMarkers();
        try {
            manifest.close();
        } catch (IOException e) {
            Log.warn("could not finish " + manifest.path() + ": " + e.getMessage());
        } finally {
            Posix.C.close(dirFd);
        }
    }
}
