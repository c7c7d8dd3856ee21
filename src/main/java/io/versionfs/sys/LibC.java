package io.versionfs.sys;

import jnr.constants.platform.OpenFlags;
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
    int RENAME_NOREPLACE = 1;
    int AT_SYMLINK_FOLLOW_LINK = 0x400; // AT_SYMLINK_FOLLOW, for linkat

    // Open flags from jnr-constants, which has the table of each architecture (O_DIRECTORY and
    // O_NOFOLLOW differ between x86_64 and aarch64).
    int O_RDONLY = OpenFlags.O_RDONLY.intValue(), O_WRONLY = OpenFlags.O_WRONLY.intValue(),
            O_RDWR = OpenFlags.O_RDWR.intValue(), O_ACCMODE = OpenFlags.O_ACCMODE.intValue();
    int O_CREAT = OpenFlags.O_CREAT.intValue(), O_EXCL = OpenFlags.O_EXCL.intValue(),
            O_TRUNC = OpenFlags.O_TRUNC.intValue(), O_APPEND = OpenFlags.O_APPEND.intValue();
    int O_DIRECTORY = OpenFlags.O_DIRECTORY.intValue(), O_NOFOLLOW = OpenFlags.O_NOFOLLOW.intValue(),
            O_CLOEXEC = OpenFlags.O_CLOEXEC.intValue(), O_NONBLOCK = OpenFlags.O_NONBLOCK.intValue();
    int SEEK_DATA = 3, SEEK_HOLE = 4; // the same on every Linux architecture
    int F_GETFL = 3, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;
    int O_PATH = 010000000; // asm-generic's, which x86_64 and aarch64 share

    long FICLONE = 0x40049409L;
    int PR_SET_CHILD_SUBREAPER = 36;
    int WNOHANG = 1;

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
    /** flags: RENAME_NOREPLACE 1, RENAME_EXCHANGE 2 (glibc 2.28+). */
    @SaveError int renameat2(int olddirfd, String oldpath, int newdirfd, String newpath, int flags);
    @SaveError int linkat(int olddirfd, String oldpath, int newdirfd, String newpath, int flags);
    @SaveError int symlinkat(String target, int newdirfd, String linkpath);
    @SaveError long readlinkat(int dirfd, String path, Pointer buf, long bufsiz);
    @SaveError int fchmodat(int dirfd, String path, int mode, int flags);
    @SaveError int fchownat(int dirfd, String path, int uid, int gid, int flags);
    @SaveError int utimensat(int dirfd, String path, Pointer times, int flags);
    @SaveError int fstatvfs(int fd, Pointer buf);
    /** fstatfs(2): f_type (the filesystem's magic number) is its first field, a long on every Linux ABI we run on. */
    @SaveError int fstatfs(int fd, Pointer buf);
    int geteuid();
    int getegid();
    /** quotactl(2): by block device (every kernel). */
    @SaveError int quotactl(int cmd, String special, int id, Pointer addr);
    /** syscall(2), for quotactl_fd (Linux 5.14+, no libc wrapper in glibc 2.36). */
    @SaveError long syscall(long number, int fd, int cmd, int id, Pointer addr);
    @SaveError int faccessat(int dirfd, String path, int mode, int flags);
    @SaveError int ioctl(int fd, long request, long arg);
    /** ioctl(2) whose argument is a buffer (FS_IOC_GETFLAGS and friends). */
    @SaveError int ioctl(int fd, long request, Pointer arg);
    // Extended attributes: by descriptor, or by path without following a final symlink.
    @SaveError long fgetxattr(int fd, String name, Pointer value, long size);
    @SaveError int fsetxattr(int fd, String name, Pointer value, long size, int flags);
    @SaveError long flistxattr(int fd, Pointer list, long size);
    @SaveError int fremovexattr(int fd, String name);
    @SaveError long lgetxattr(String path, String name, Pointer value, long size);
    @SaveError int lsetxattr(String path, String name, Pointer value, long size, int flags);
    @SaveError long llistxattr(String path, Pointer list, long size);
    @SaveError int lremovexattr(String path, String name);
    @SaveError long copy_file_range(int fdIn, Pointer offIn, int fdOut, Pointer offOut, long len, int flags);
    @SaveError int prctl(int option, long a2, long a3, long a4, long a5);
    @SaveError int kill(int pid, int sig);
    @SaveError int waitpid(int pid, Pointer status, int options);
    @SaveError long read(int fd, Pointer buf, long count);
    @SaveError long write(int fd, Pointer buf, long count);
    @SaveError int fallocate(int fd, int mode, long offset, long len);
    @SaveError long lseek(int fd, long offset, int whence);
    @SaveError int fchmod(int fd, int mode);
    @SaveError int fchown(int fd, int uid, int gid);
    @SaveError int flock(int fd, int operation);
    @SaveError int fcntl(int fd, int cmd, long arg);
    @SaveError int futimens(int fd, Pointer times);
    @SaveError int setpriority(int which, int who, int prio);
    /** posix_fadvise(2): returns the error number itself (0 on success), errno is not set. */
    int posix_fadvise(int fd, long offset, long len, int advice);
    int POSIX_FADV_SEQUENTIAL = 2, POSIX_FADV_DONTNEED = 4;
    /** dup3(2) with O_CLOEXEC: {@code newfd} refers to {@code oldfd}'s file, closed and reused in one step. */
    @SaveError int dup3(int oldfd, int newfd, int flags);
    long syscall(long number);
    /** malloc(3): for structs libfuse frees itself (the read_buf reply). 0 when out of memory. */
    long malloc(long size);
    /** free(3): for what libfuse allocated and leaves to its caller (fuse_setup's mount point name). */
    void free(long ptr);
    int getuid();
    int isatty(int fd);
    int getgid();
    int getpid();
    String strerror(int errnum);
}
