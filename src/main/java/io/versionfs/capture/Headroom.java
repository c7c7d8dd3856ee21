package io.versionfs.capture;

import io.versionfs.text.Log;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Quota;
import ru.serce.jnrfuse.struct.Statvfs;

import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * The free-space guard of one versions folder: a close is not kept as a version when keeping it
 * would leave less free than the headroom (the job's own next write of the file needs as much
 * again), on the disk or under the tightest quota in force.
 */
final class Headroom {
    /** Tests of what happens when the disk fills anyway (another process filled it) turn the guard off. */
    private static final boolean NO_GUARD = Boolean.getBoolean("versionfs.noHeadroomGuard");
    private static final ThreadLocal<Statvfs> STATVFS = ThreadLocal.withInitial(
            () -> Statvfs.of(jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), 256)));

    private final Path dir;
    private final int dirFd;
    /** The user's or group's quota on the versions filesystem, where the kernel shows it. */
    private final Quota quota;
    /** Where the line of a skipped close goes (in order with the versions). */
    private final Consumer<ManifestLine> manifest;
    /** Bytes to leave free; -1: the default, min(5%, 10 GiB). */
    private volatile long minFree = -1;
    private final AtomicInteger skipped = new AtomicInteger();

    Headroom(Path dir, int dirFd, Consumer<ManifestLine> manifest) {
        this.dir = dir;
        this.dirFd = dirFd;
        this.quota = Quota.of(dirFd);
        this.manifest = manifest;
    }

    void minFree(long bytes) {
        this.minFree = bytes;
    }

    /**
     * Whether keeping a version of a {@code size}-byte file would leave less than the headroom
     * free: a version keeps those bytes (at once when copied; at the next rewrite when linked),
     * and the job's own next write of the file needs as much again. Null when there is room,
     * else why not.
     */
    String lowOnSpace(long size) {
        if (NO_GUARD) return null;
        long[] space = space(dirFd);
        if (space == null) return null;
        String low = headroomShort(space[0], space[1], size, minFree);
        if (low != null) return "low space: " + space[0] + " bytes free in " + dir + ", " + low;
        // A quota fills before the disk does, and statvfs does not show it: EDQUOT would hit the
        // job's own next write. The same headroom rule, against the tightest limit in force.
        Quota.Limit q = quota.tightest();
        if (q == null) return null;
        low = headroomShort(q.headroom(), q.limit(), size, minFree);
        return low == null ? null : "low quota: " + q.headroom() + " bytes left under the " + q + " on " + dir + ", " + low;
    }

    /** A close that was not kept as a version because space is low: one manifest line, counted in the summary. */
    void skipped(String series, String reason, int pid, String why) {
        if (skipped.incrementAndGet() == 1) {
            Log.warn("versions of " + series + " are being skipped: " + why + ". The job's own writes come first;"
                    + " the summary counts the skipped closes");
        }
        manifest.accept(ManifestLine.event("skipped").file(series).reason(reason).pid(pid).why(why).build());
    }

    int skippedCount() {
        return skipped.get();
    }

    /** The tightest quota in force on the versions filesystem, for reports; null if none is visible. */
    Quota.Limit quota() {
        return NO_GUARD ? null : quota.tightest();
    }

    /**
     * The headroom rule, for a disk ({@code avail} of {@code total} bytes) or a quota (headroom
     * of the limit): keeping a {@code size}-byte version must leave {@code minFree} bytes, or by
     * default min(5% of the total, 10 GiB). Null when it does; else the numbers, for the record.
     */
    static String headroomShort(long avail, long total, long size, long minFree) {
        long keep = minFree >= 0 ? minFree : Math.min(total / 20, 10L << 30);
        if (avail - Math.max(0, size) >= keep) return null;
        return "a version of " + size + " bytes would leave less than " + keep + " (--min-free)";
    }

    /**
     * Whether an optional copy of {@code size} bytes onto the filesystem of {@code fd} leaves the
     * default headroom (min(5%, 10 GiB)) for the job: a background copy must never take the job's
     * last free space. True when the space cannot be read (the copy's own ENOSPC is then handled).
     */
    static boolean roomForOptionalCopy(int fd, long size) {
        if (NO_GUARD) return true;
        long[] space = space(fd);
        return space == null || headroomShort(space[0], space[1], size, -1) == null;
    }

    /** {available to us, total} bytes of the filesystem holding {@code fd}, or null if statvfs fails. */
    private static long[] space(int fd) {
        Statvfs sv = STATVFS.get();
        if (Posix.C.fstatvfs(fd, jnr.ffi.Struct.getMemory(sv)) != 0) return null;
        long frsize = sv.f_frsize.longValue() > 0 ? sv.f_frsize.longValue() : sv.f_bsize.longValue();
        return new long[] {sv.f_bavail.longValue() * frsize, sv.f_blocks.longValue() * frsize};
    }
}
