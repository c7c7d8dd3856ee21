package io.versionfs.sys;

/** Linux errno values used by the filesystem (stable across Linux architectures that matter here). */
public final class Errno {
    public static final int EPERM = 1, ENOENT = 2, EIO = 5, ENXIO = 6, EBADF = 9, EAGAIN = 11, ENOMEM = 12, EACCES = 13,
            EBUSY = 16, EEXIST = 17, EXDEV = 18, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENOTTY = 25, ENOSPC = 28,
            EROFS = 30, EMLINK = 31, ERANGE = 34, ENOSYS = 38, ENAMETOOLONG = 36, ENOTEMPTY = 39, ENODATA = 61, EDQUOT = 122,
            EOPNOTSUPP = 95, ENOTCONN = 107;

    private Errno() {}

    /** True for the errors that mean "no room": worth a specific message and fix. */
    public static boolean isNoSpace(int errno) {
        return errno == ENOSPC || errno == EDQUOT;
    }

    /** The same for an IOException of the JDK, which carries only the message ("No space left on device", "Disk quota exceeded"). */
    public static boolean isNoSpace(java.io.IOException e) {
        String m = String.valueOf(e.getMessage());
        return m.contains("No space") || m.contains("quota");
    }
}
