package io.versionfs.capture;

import io.versionfs.sys.Errno;
import io.versionfs.sys.IoError;
import io.versionfs.sys.Posix;

import io.versionfs.sys.LibC;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Version numbers shared by several nodes writing one versions folder, without locks: each
 * version is copied under a name only this process uses, then {@code link()}ed to the next free
 * number; a number another node took meanwhile gives EEXIST, and the next one is tried. link(2)
 * is atomic on Lustre, GPFS and NFS (open(2) recommends it where O_EXCL over NFS is not
 * reliable); a rename would silently replace another node's version.
 *
 * <p>A number once taken stays taken for every node: a version that could not be saved gets a
 * number all the same, held by a tombstone (a hard link of the empty {@link #TOMBSTONE} at the
 * version's name), and a version removed during the job (given way to the job's writes, pruned
 * by the keep rules) is replaced by a tombstone instead of unlinked. Else another node's next
 * link() would take the freed number, and two manifest lines (a lost one, a saved one) would name
 * one version. Tombstones take no blocks; verify and the next run know them ({@link #isTombstone}).
 *
 * <p>Also names this node's manifest ({@code .versionfs/nodes/manifest.HOST.jsonl}, merged into
 * manifest.jsonl by the batch node at the end: {@link ManifestMerge}) and stamps each line with
 * the host that wrote it.
 */
public final class NodeNumbering {
    /** Folder in the versions folder's hidden part for what the nodes share: manifests, ready files. */
    public static final String NODES = VersionStore.HIDDEN + "/nodes";
    /** Tries before giving up on a number (each EEXIST is another node's version: a busy folder). */
    static final int MAX_TRIES = 100_000;

    private final String host;
    private final AtomicLong temps = new AtomicLong();

    public NodeNumbering(String host) {
        this.host = host == null || host.isBlank() ? "unknown" : host.replace('/', '_');
    }

    public String host() {
        return host;
    }

    /** This node's manifest file name (in {@link #NODES}). */
    public String manifestName() {
        return manifestName(host);
    }

    public static String manifestName(String host) {
        return "manifest." + host + ".jsonl";
    }

    /** A temp name (relative to the versions folder) no other process on any node uses. */
    String tempName(String series) {
        return VersionStore.HIDDEN + "/tmp/" + series.replace('/', '~') + "." + host + "." + ProcessHandle.current().pid()
                + "." + temps.incrementAndGet() + ".part";
    }

    /** Where a version ended: its number and name, or why it could not be given one. */
    public record Placed(long number, String name, IoError error) {}

    /**
     * Gives the complete file {@code tmp} the first free number from {@code first} on ({@code next}
     * after each EEXIST): link, retry, then drop the temp name. The temp file is removed on failure too.
     */
    Placed link(int dirFd, String tmp, String series, long first, LongSupplier next) {
        long number = first;
        String name = VersionNaming.versionName(series, number);
        int rc = Posix.C.linkat(dirFd, tmp, dirFd, name, 0);
        for (int tries = 0; rc != 0 && Errno.EEXIST.is(Posix.errno()) && tries < MAX_TRIES; tries++) {
            number = next.getAsLong(); // another node's version has that number
            name = VersionNaming.versionName(series, number);
            rc = Posix.C.linkat(dirFd, tmp, dirFd, name, 0);
        }
        IoError err = rc == 0 ? null : IoError.last("link " + name);
        Posix.C.unlinkat(dirFd, tmp, 0);
        return new Placed(number, name, err);
    }

    /** The empty, read-only file whose hard links hold numbers (see the class comment); more if one has too many links. */
    public static final String TOMBSTONE = VersionStore.HIDDEN + "/taken";

    /** The tombstone to link now (made if missing); null if none can be made. */
    private String tombstone(int dirFd) {
        for (int i = 0; i < 1000; i++) {
            String t = i == 0 ? TOMBSTONE : TOMBSTONE + "." + i;
            var st = io.versionfs.sys.Stat.at(dirFd, t, LibC.AT_SYMLINK_NOFOLLOW);
            if (st != null && io.versionfs.sys.Stat.nlink(st) < 60_000) return t; // ext4 stops at 65000 links
            if (st != null) continue;
            int fd = Posix.C.openat(dirFd, t, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, 0444);
            if (fd < 0 && !Errno.EEXIST.is(Posix.errno())) return null;
            if (fd >= 0) Posix.C.close(fd);
            return t;
        }
        return null;
    }

    /**
     * A version that could not be saved takes its number all the same: a tombstone is linked to
     * the first free number from {@code first} on. A link needs no block, so this works on a full
     * disk too; its error (no number taken) otherwise.
     */
    Placed claim(int dirFd, String series, long first, LongSupplier next) {
        String t = tombstone(dirFd);
        if (t == null) return new Placed(first, null, IoError.last("create " + TOMBSTONE));
        String tmp = tempName(series);
        if (Posix.C.linkat(dirFd, t, dirFd, tmp, 0) != 0) return new Placed(first, null, IoError.last("link " + TOMBSTONE));
        return link(dirFd, tmp, series, first, next);
    }

    /**
     * Removes version {@code name}'s content for good while its number stays taken: a tombstone
     * is renamed over it (atomic; its blocks are freed). True if done; false if not, and the
     * file is as it was.
     */
    boolean retire(int dirFd, String name, String series) {
        String t = tombstone(dirFd);
        if (t == null) return false;
        String tmp = tempName(series);
        if (Posix.C.linkat(dirFd, t, dirFd, tmp, 0) != 0) return false;
        if (Posix.C.renameat(dirFd, tmp, dirFd, name) == 0) return true;
        Posix.C.unlinkat(dirFd, tmp, 0);
        return false;
    }

    /** Whether {@code f} in the versions folder {@code vdir} is a tombstone (not a version: no content of its own). */
    public static boolean isTombstone(Path vdir, Path f) {
        try {
            if (Files.size(f) != 0) return false;
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(vdir.resolve(VersionStore.HIDDEN), "taken*")) {
                for (Path t : ds) if (Files.isSameFile(t, f)) return true;
            }
        } catch (IOException e) {
            return false;
        }
        return false;
    }

    /**
     * Removes every tombstone of {@code vdir} (the files in it and in its series' subfolders that
     * are links of the taken* files, then those files). Only once no node can number any more (the
     * job's end, every agent ended cleanly; else the next run or prune, holding the folder's lock):
     * until then a removed tombstone would free its number for another node. Afterwards the folder reads as on one node: a lost or dropped version is a
     * manifest line without a file. Returns how many were removed.
     */
    public static int clearTombstones(Path vdir) throws IOException {
        List<Path> taken = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(vdir.resolve(VersionStore.HIDDEN), "taken*")) {
            for (Path t : ds) taken.add(t);
        } catch (java.nio.file.NoSuchFileException e) {
            return 0;
        }
        if (taken.isEmpty()) return 0; // no job on several nodes left any: nothing to look for
        Set<Object> keys = new HashSet<>();
        for (Path t : taken) keys.add(Files.readAttributes(t, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey());
        int n = clearIn(vdir, keys, true);
        for (Path t : taken) Files.deleteIfExists(t);
        return n;
    }

    /** The tombstones in {@code dir}, and in its subfolders (series in a subfolder) if {@code down}. */
    private static int clearIn(Path dir, Set<Object> keys, boolean down) throws IOException {
        int n = 0;
        // A directory stream, not Files.walk: vdir may be /proc/self/fd/N, a link walk() would not enter.
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                if (a.isDirectory() && down && !p.getFileName().toString().equals(VersionStore.HIDDEN)) n += clearIn(p, keys, false);
                else if (a.isRegularFile() && a.size() == 0 && keys.contains(a.fileKey()) && Files.deleteIfExists(p)) n++;
            }
        }
        return n;
    }

    /** Makes the folder of a series in a subfolder (no-op for most). */
    static void folderFor(int dirFd, String series) {
        if (!VersionNaming.folderOf(series).isEmpty()) Posix.C.mkdirat(dirFd, VersionNaming.folderOf(series), 0755);
    }

    /** The line as this node writes it: with its host. */
    ManifestLine stamp(ManifestLine line) {
        return line.host() != null ? line : line.toBuilder().host(host).build();
    }
}
