package io.versionfs.sys;

import jnr.ffi.Runtime;
import jnr.ffi.Struct;
import ru.serce.jnrfuse.struct.FileStat;

/**
 * {@code struct stat} without hard-coded offsets: jnr-fuse's {@link FileStat} already knows the
 * layout of each architecture (x86_64 and aarch64 differ: st_nlink is 8 bytes after st_ino on one,
 * 4 bytes after st_mode on the other). One buffer per thread, reused: the lookups run on every
 * open and inside close(), where a native allocation per call showed up before. The price: a
 * result is valid only until the same thread's next stat, so read the fields you need at once.
 */
public final class Stat {
    private static final Runtime RT = Runtime.getSystemRuntime();
    private static final ThreadLocal<FileStat> BUF = ThreadLocal.withInitial(() -> new FileStat(RT));
    private static final int S_IFMT = 0170000, S_IFREG = 0100000, S_IFDIR = 0040000;

    private Stat() {}

    /** fstatat into this thread's buffer (valid until its next use); null on failure, errno set. */
    public static FileStat at(int dirFd, String path, int flags) {
        FileStat st = BUF.get();
        return Posix.C.fstatat(dirFd, path, Struct.getMemory(st), flags) == 0 ? st : null;
    }

    /** fstat into this thread's buffer; null on failure, errno set. */
    public static FileStat of(int fd) {
        FileStat st = BUF.get();
        return Posix.C.fstat(fd, Struct.getMemory(st)) == 0 ? st : null;
    }

    public static int mode(FileStat st) {
        return st.st_mode.intValue();
    }

    public static long size(FileStat st) {
        return st.st_size.longValue();
    }

    /**
     * The bytes the file takes on disk (st_blocks x 512), what a copy of it costs: a sparse file
     * of 100 GiB with a few KiB written takes a few KiB. Never more than needed to compare with
     * free space, so preallocated but unwritten blocks count as taken (they are).
     */
    public static long diskBytes(FileStat st) {
        return st.st_blocks.longValue() * 512L;
    }

    public static long nlink(FileStat st) {
        return st.st_nlink.longValue();
    }

    public static long dev(FileStat st) {
        return st.st_dev.longValue();
    }

    public static long ino(FileStat st) {
        return st.st_ino.longValue();
    }

    public static boolean isRegular(FileStat st) {
        return (mode(st) & S_IFMT) == S_IFREG;
    }

    public static boolean isDirectory(FileStat st) {
        return (mode(st) & S_IFMT) == S_IFDIR;
    }
}
