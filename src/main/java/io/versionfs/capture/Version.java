package io.versionfs.capture;

import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/**
 * One captured (or lost) version. Everything is known at capture time except the SHA-256, which is
 * computed afterwards off the program's critical path (hashing 512 MiB inside close() would take
 * seconds); the manifest line is written once the hash is known.
 */
public final class Version {
    public static final DateTimeFormatter ISO_MILLIS =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSSXXX").withZone(ZoneOffset.UTC);

    public enum Status { SAVED, LOST }

    public final long number;
    public final String file;          // target file name, e.g. job.gbw
    public final String versionFile;   // e.g. job.000003.gbw, or null when lost
    public final long size;
    /** Bytes on disk when saved (st_blocks x 512; on XFS/btrfs less the blocks it shares with the version before it, see Hasher.countSharedOnce), -1 unknown: what --max-size counts. */
    volatile long disk = -1;
    public final Instant time;
    public final int pid;
    public final String command;
    public final String reason;        // close, rename, final-unclosed, initial
    public final Status status;
    public final String error;         // why it was lost
    private volatile String sha256;
    /**
     * Hidden, listed, stranded or gone (see {@link Publication}). Written under Publication's
     * lock, and also under this version's monitor once it has a file: holding the monitor, one
     * may read it alone.
     */
    volatile Publication.State publication = Publication.State.LISTED;
    /** Its hook was queued (guarded by this version's monitor): from then on the hook counts itself. */
    boolean hookQueued;
    /** Permission bits when saved (-1 unknown): published without the write bits. */
    volatile int mode = -1;

    public Version(long number, String file, String versionFile, long size, Instant time, int pid,
                   String command, String reason, Status status, String error) {
        this.number = number;
        this.file = file;
        this.versionFile = versionFile;
        this.size = size;
        this.time = time;
        this.pid = pid;
        this.command = command;
        this.reason = reason;
        this.status = status;
        this.error = error;
    }

    public String sha256() {
        return sha256;
    }

    void sha256(String hex) {
        this.sha256 = hex;
    }

    /** Removed (given up, pruned) after it was saved: no line says it is saved, no hook runs on it. */
    boolean gone() {
        return publication == Publication.State.GONE;
    }

    public boolean lost() {
        return status == Status.LOST;
    }

    /** Its manifest line, to be built (a caller may add to it). */
    public ManifestLine.Builder toLine() {
        return ManifestLine.version(number, file).path(versionFile).size(size).sha256(sha256).time(time).pid(pid)
                .cmdline(command).reason(reason).status(status.name().toLowerCase()).error(error);
    }
}
