package io.versionfs.sys;

/**
 * The Linux errno values versionfs names, as data: every failure that crosses a layer carries one
 * of these (or the raw number from the kernel), never an English message to match. FUSE and
 * seccomp want an error as the negated number ({@link #negated()}).
 */
public enum Errno {
    EPERM(1), ENOENT(2), EIO(5), ENXIO(6), EBADF(9), EAGAIN(11), ENOMEM(12), EACCES(13), EBUSY(16), EEXIST(17),
    EXDEV(18), ENOTDIR(20), EISDIR(21), EINVAL(22), ENOTTY(25), ENOSPC(28), EROFS(30), EMLINK(31), ERANGE(34),
    ENAMETOOLONG(36), ENOSYS(38), ENOTEMPTY(39), ELOOP(40), ENODATA(61), EOPNOTSUPP(95), ENOTCONN(107), ESTALE(116), EDQUOT(122),
    /** Also what versionfs gives a copy it stopped itself (the run is ending, the copy became pointless). */
    ECANCELED(125);

    /** The kernel's number. */
    public final int code;

    Errno(int code) {
        this.code = code;
    }

    /** As a FUSE operation or a seccomp answer returns it. */
    public int negated() {
        return -code;
    }

    /** Whether {@code errno} (a kernel number) is this one. */
    public boolean is(int errno) {
        return errno == code;
    }

    /** True for the errors that mean "no room": worth a specific message and fix (free space, or ask for quota). */
    public static boolean isNoSpace(int errno) {
        return errno == ENOSPC.code || errno == EDQUOT.code;
    }

    /** The same for an IOException of the JDK (see {@link #of(java.io.IOException)}). */
    public static boolean isNoSpace(java.io.IOException e) {
        return isNoSpace(of(e));
    }

    /**
     * The errno behind an IOException of the JDK, which carries only the message ("No space left
     * on device", "File name too long"): the one place versionfs reads errno out of English, by
     * the C library's own strerror text; 0 if none of ours matches. Our own failures
     * ({@link IoError.Thrown}) keep their errno.
     */
    public static int of(java.io.IOException e) {
        if (e instanceof IoError.Thrown t) return t.error.errno();
        if (e instanceof java.nio.file.NoSuchFileException) return ENOENT.code;
        if (e instanceof java.nio.file.FileAlreadyExistsException) return EEXIST.code;
        if (e instanceof java.nio.file.AccessDeniedException) return EACCES.code;
        if (e instanceof java.nio.file.NotDirectoryException) return ENOTDIR.code;
        if (e instanceof java.nio.file.DirectoryNotEmptyException) return ENOTEMPTY.code;
        String m = String.valueOf(e.getMessage());
        for (Errno x : values()) if (m.contains(Posix.strerror(x.code))) return x.code;
        return 0;
    }
}
