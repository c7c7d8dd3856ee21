package io.versionfs.sys;

import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The disk quota that limits this user (or group) on one filesystem, where the kernel shows it:
 * ext4 and XFS user and group quotas, through {@code quotactl_fd} (Linux 5.14+) or, on older
 * kernels, {@code quotactl} on the block device found in /proc/self/mountinfo. Project quotas
 * need nothing here (statvfs already reports them for a project folder). Lustre, GPFS and NFS
 * keep their quotas out of reach of these calls: there the full-disk fallback (EDQUOT on a
 * write gives versions up) is what protects the job.
 *
 * <p>Why the guard needs this: a user over quota gets EDQUOT from the job's own next write while
 * statvfs still shows terabytes free; versions must give way before that, not after.
 */
public final class Quota {
    private static final int Q_GETQUOTA = 0x800007, USRQUOTA = 0, GRPQUOTA = 1;
    private static final int QIF_BLIMITS = 1, QIF_SPACE = 2;
    private static final long SYS_QUOTACTL_FD = 443; // x86_64 and aarch64 (the unified table)
    private static final int ENOSYS = 38;

    /** A limit in force: {@code limit} bytes (the soft limit when set: crossing it starts the grace clock). */
    public record Limit(String kind, int id, long limit, long used) {
        public long headroom() {
            return Math.max(0, limit - used);
        }

        @Override
        public String toString() {
            return kind + " quota (" + kind + " " + id + ")";
        }
    }

    private final int dirFd;
    private final String device; // for the quotactl fallback; null if not known
    private final int dirGid;    // files made in a setgid folder are charged to its group
    private volatile boolean fdCallMissing;
    /** No quota is on for this filesystem (or the kernel has none): asked once, never again. */
    private volatile boolean nothingVisible;
    /** The last answer and when (System.nanoTime): this is asked inside the program's close(). */
    private volatile Limit cached;
    private volatile long cachedAt;
    private static final long FRESH_NANOS = 1_000_000_000L;
    private static final ThreadLocal<Pointer> BUF = ThreadLocal.withInitial(() -> Memory.allocateDirect(Runtime.getSystemRuntime(), 72));

    private Quota(int dirFd, String device, int dirGid) {
        this.dirFd = dirFd;
        this.device = device;
        this.dirGid = dirGid;
    }

    /** The quota view of the filesystem holding {@code dirFd} (a directory we keep open). */
    public static Quota of(int dirFd) {
        ru.serce.jnrfuse.struct.FileStat st = Stat.of(dirFd);
        return new Quota(dirFd, deviceOf(dirFd), st != null ? st.st_gid.intValue() : -1);
    }

    /**
     * The tightest limit for the calling user's euid and egid, and for the group that owns the
     * folder, or null when no quota applies or none is visible. At most one look a second: a
     * quota moves with the writes, and the --min-free headroom covers a second of them.
     */
    public Limit tightest() {
        if (nothingVisible) return null;
        long now = System.nanoTime();
        if (cachedAt != 0 && now - cachedAt < FRESH_NANOS) return cached;
        int gid = Posix.C.getegid();
        int[] errs = new int[3];
        Limit best = tighter(get(USRQUOTA, Posix.C.geteuid(), errs, 0), get(GRPQUOTA, gid, errs, 1));
        if (dirGid >= 0 && dirGid != gid) best = tighter(best, get(GRPQUOTA, dirGid, errs, 2));
        else errs[2] = errs[1];
        if (best == null && allOff(errs)) nothingVisible = true;
        cached = best;
        cachedAt = now == 0 ? 1 : now;
        return best;
    }

    private static final int ENOENT = 2, ESRCH = 3, ENODEV = 19, EINVAL = 22, ENOTTY = 25, EOPNOTSUPP = 95;

    /** Every query answered "no quota here" (not enabled, not supported): not a passing failure. */
    private static boolean allOff(int[] errs) {
        for (int e : errs) {
            if (e != ESRCH && e != ENOSYS && e != ENOTTY && e != EOPNOTSUPP && e != EINVAL && e != ENODEV && e != ENOENT) return false;
        }
        return true;
    }

    private static Limit tighter(Limit a, Limit b) {
        if (a == null) return b;
        if (b == null) return a;
        return b.headroom() < a.headroom() ? b : a;
    }

    /** One query; on failure null, with its errno in {@code errs[slot]}. */
    private Limit get(int type, int id, int[] errs, int slot) {
        Pointer buf = BUF.get();
        buf.setMemory(0, 72, (byte) 0);
        int cmd = (Q_GETQUOTA << 8) | type; // QCMD(Q_GETQUOTA, type)
        long r = -1;
        int err = ENOSYS;
        if (!fdCallMissing) {
            r = Posix.C.syscall(SYS_QUOTACTL_FD, dirFd, cmd, id, buf);
            err = r != 0 ? Posix.errno() : 0;
            if (err == ENOSYS) fdCallMissing = true;
        }
        if (r != 0 && fdCallMissing && device != null) {
            r = Posix.C.quotactl(cmd, device, id, buf);
            err = r != 0 ? Posix.errno() : 0;
        }
        if (r != 0) {
            errs[slot] = err;
            return null;
        }
        // struct if_dqblk: bhardlimit, bsoftlimit (1 KiB blocks), curspace (bytes), ihard, isoft, curinodes, btime, itime, valid
        return parse(type == USRQUOTA ? "user" : "group", id, buf.getLong(0), buf.getLong(8), buf.getLong(16), buf.getInt(64));
    }

    /**
     * The limit an if_dqblk describes, or null if it sets none. The soft limit counts when set:
     * crossing it starts the grace clock, after which writes fail as at the hard limit.
     */
    public static Limit parse(String kind, int id, long hardBlocks, long softBlocks, long usedBytes, int valid) {
        if ((valid & QIF_BLIMITS) == 0) return null;
        long hard = hardBlocks * 1024, soft = softBlocks * 1024;
        long limit = soft > 0 && (hard == 0 || soft < hard) ? soft : hard;
        if (limit <= 0) return null; // 0: no limit
        return new Limit(kind, id, limit, (valid & QIF_SPACE) != 0 ? usedBytes : 0);
    }

    /** The block device of the filesystem holding {@code fd}, from /proc/self/mountinfo (null if not a device). */
    private static String deviceOf(int fd) {
        ru.serce.jnrfuse.struct.FileStat st = Stat.of(fd);
        if (st == null) return null;
        long dev = st.st_dev.longValue();
        String want = (((dev >>> 8) & 0xfff) | ((dev >>> 32) & 0xfffff000L)) + ":" + ((dev & 0xff) | ((dev >>> 12) & 0xffffff00L));
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String[] f = line.split(" ");
                if (f.length < 3 || !f[2].equals(want)) continue;
                int dash = line.indexOf(" - ");
                if (dash < 0) continue;
                String[] tail = line.substring(dash + 3).split(" ");
                if (tail.length >= 2 && tail[1].startsWith("/dev/")) return tail[1];
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        return null;
    }
}
