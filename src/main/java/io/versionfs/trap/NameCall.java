package io.versionfs.trap;

import io.versionfs.sys.LibC;
import io.versionfs.sys.Seccomp;
import io.versionfs.sys.Seccomp.Notification;

/**
 * What a trapped system call asks for, in one shape for all its forms: rename, renameat and
 * renameat2 are one {@link Op#RENAME}; unlink and unlinkat one {@link Op#UNLINK} (unlinkat with
 * AT_REMOVEDIR and rmdir are {@link Op#RMDIR}); link and linkat one {@link Op#LINK}.
 */
public record NameCall(Op op, PathArg src, PathArg dst, int flags) {

    public enum Op { RENAME, UNLINK, RMDIR, LINK, IO_URING }

    /** A path argument: its directory descriptor (AT_FDCWD for the cwd) and its address in the caller. */
    public record PathArg(int dirFd, long addr) {}

    public static final int RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2, RENAME_WHITEOUT = 4;
    private static final int CWD = LibC.AT_FDCWD;

    /** The call, or null for a number this class does not know (then it runs untouched). */
    public static NameCall decode(Notification n) {
        Seccomp.Call c = n.call();
        if (c == null) return null;
        long[] a = n.args();
        return switch (c) {
            case RENAME -> new NameCall(Op.RENAME, new PathArg(CWD, a[0]), new PathArg(CWD, a[1]), 0);
            case RENAMEAT -> new NameCall(Op.RENAME, arg(n, 0, a[1]), arg(n, 2, a[3]), 0);
            case RENAMEAT2 -> new NameCall(Op.RENAME, arg(n, 0, a[1]), arg(n, 2, a[3]), n.intArg(4));
            case UNLINK -> new NameCall(Op.UNLINK, new PathArg(CWD, a[0]), null, 0);
            case UNLINKAT -> new NameCall((n.intArg(2) & LibC.AT_REMOVEDIR) != 0 ? Op.RMDIR : Op.UNLINK, arg(n, 0, a[1]), null, 0);
            case RMDIR -> new NameCall(Op.RMDIR, new PathArg(CWD, a[0]), null, 0);
            case LINK -> new NameCall(Op.LINK, new PathArg(CWD, a[0]), new PathArg(CWD, a[1]), 0);
            case LINKAT -> new NameCall(Op.LINK, arg(n, 0, a[1]), arg(n, 2, a[3]), n.intArg(4));
            case IO_URING_SETUP -> new NameCall(Op.IO_URING, null, null, 0);
        };
    }

    private static PathArg arg(Notification n, int fdIndex, long addr) {
        return new PathArg(n.intArg(fdIndex), n.arch() == Seccomp.AUDIT_ARCH_I386 ? addr & 0xFFFFFFFFL : addr);
    }
}
