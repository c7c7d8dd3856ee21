package io.versionfs.capture;

import io.versionfs.sys.Errno;
import io.versionfs.sys.IoError;
import io.versionfs.sys.Posix;

import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Version numbers shared by several nodes writing one versions folder, without locks: each
 * version is copied under a name only this process uses, then {@code link()}ed to the next free
 * number; a number another node took meanwhile gives EEXIST, and the next one is tried. link(2)
 * is atomic on Lustre, GPFS and NFS (open(2) recommends it where O_EXCL over NFS is not
 * reliable); a rename would silently replace another node's version.
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

    /** Makes the folder of a series in a subfolder (no-op for most). */
    static void folderFor(int dirFd, String series) {
        if (!VersionNaming.folderOf(series).isEmpty()) Posix.C.mkdirat(dirFd, VersionNaming.folderOf(series), 0755);
    }

    /** The line as this node writes it: with its host. */
    ManifestLine stamp(ManifestLine line) {
        return line.host() != null ? line : line.toBuilder().host(host).build();
    }
}
