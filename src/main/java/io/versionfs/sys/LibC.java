package io.versionfs.sys;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Pointer;
import jnr.ffi.annotations.SaveError;

/**
 * The few libc calls versionfs needs, bound with jnr-ffi (already on the classpath through
 * jnr-fuse). Everything path-based is the {@code *at} form relative to a directory descriptor,
 * as in libfuse's passthrough_hp: the filesystem keeps one descriptor on its backing folder and
 * never resolves a path through the mount itself (which would deadlock, or in directory mode
 * land on the mount that hides the backing folder).
 *
 * <p>Buffers are raw {@link Pointer}s so FUSE's own buffers go straight to the kernel: no Java
 * heap copy on the read/write path.
 */
public interface LibC {
    int AT_FDCWD = -100;
    int AT_SYMLINK_NOFOLLOW = 0x100;
    int AT_REMOVEDIR = 0x200;
    int AT_SYMLINK_FOLLOW_LINK = 0x400; // AT_SYMLINK_FOLLOW, for linkat

    int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3;
    int O_CREAT = 0100, O_EXCL = 0200, O_TRUNC = 01000, O_APPEND = 02000;
    int O_DIRECTORY = 0200000, O_NOFOLLOW = 0400000, O_CLOEXEC = 02000000, O_PATH = 010000000;

    long FICLONE = 0x40049409L;
    int PR_SET_CHILD_SUBREAPER = 36;
    int WNOHANG = 1;

    /** struct stat on x86_64/aarch64 Linux is at most 144 bytes; over-allocate. */
    int STAT_SIZE = 256;
    /** st_mode: after dev, ino, nlink (8 each) on x86_64; aarch64's generic layout has a 4-byte nlink after it. */
    int STAT_MODE_OFFSET = "aarch64".equals(System.getProperty("os.arch")) ? 16 : 24;
    int STAT_SIZE_OFFSET = 48; // the same on both
    boolean STAT_NLINK_64 = !"aarch64".equals(System.getProperty("os.arch")); // 8 bytes at 16 on x86_64, 4 at 20 on aarch64

    LibC INSTANCE = LibraryLoader.create(LibC.class).load("c");

    @SaveError int openat(int dirfd, String path, int flags, int mode);
    @SaveError int close(int fd);
    @SaveError long pread(int fd, Pointer buf, long count, long offset);
    @SaveError long pwrite(int fd, Pointer buf, long count, long offset);
    @SaveError int ftruncate(int fd, long length);
    @SaveError int fsync(int fd);
    @SaveError int fdatasync(int fd);
    @SaveError int fstatat(int dirfd, String path, Pointer statbuf, int flags);
    @SaveError int fstat(int fd, Pointer statbuf);
    @SaveError int mkdirat(int dirfd, String path, int mode);
    @SaveError int unlinkat(int dirfd, String path, int flags);
    @SaveError int renameat(int olddirfd, String oldpath, int newdirfd, String newpath);
    @SaveError int linkat(int olddirfd, String oldpath, int newdirfd, String newpath, int flags);
    @SaveError int symlinkat(String target, int newdirfd, String linkpath);
    @SaveError long readlinkat(int dirfd, String path, Pointer buf, long bufsiz);
    @SaveError int fchmodat(int dirfd, String path, int mode, int flags);
    @SaveError int fchownat(int dirfd, String path, int uid, int gid, int flags);
    @SaveError int utimensat(int dirfd, String path, Pointer times, int flags);
    @SaveError int fstatvfs(int fd, Pointer buf);
    @SaveError int faccessat(int dirfd, String path, int mode, int flags);
    @SaveError int ioctl(int fd, long request, long arg);
    @SaveError long copy_file_range(int fdIn, Pointer offIn, int fdOut, Pointer offOut, long len, int flags);
    @SaveError int prctl(int option, long a2, long a3, long a4, long a5);
    @SaveError int kill(int pid, int sig);
    @SaveError int waitpid(int pid, Pointer status, int options);
    @SaveError long read(int fd, Pointer buf, long count);
    @SaveError int setpriority(int which, int who, int prio);
    long syscall(long number);
    int getuid();
    int getgid();
    int getpid();
    String strerror(int errnum);
}
