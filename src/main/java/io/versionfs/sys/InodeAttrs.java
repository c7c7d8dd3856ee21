package io.versionfs.sys;

import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * What a file has besides its bytes, mode and owner, and a copy of it must keep: extended
 * attributes (user.*, POSIX ACLs, security labels) and inode flags ({@code chattr}). A
 * copy-on-write swap puts a fresh inode under the live name: without this the program's file
 * would silently lose its attributes at its first change after a version, which a plain file
 * never does.
 *
 * <p>Best effort, as {@code cp --preserve=xattr}: an attribute the filesystem or our privileges
 * refuse (a trusted.* one as an ordinary user, a security label the LSM will not let us set) is
 * left out; the copy itself never fails for it.
 */
public final class InodeAttrs {
    /** FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (the kernel reads and writes an int whatever the size in the number). */
    public static final int FS_IOC_GETFLAGS = 0x80086601, FS_IOC_SETFLAGS = 0x40086602;
    /** FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR: struct fsxattr (28 bytes), fsx_xflags first. */
    public static final int FS_IOC_FSGETXATTR = 0x801c581f, FS_IOC_FSSETXATTR = 0x401c5820;
    public static final int FSXATTR_SIZE = 28;
    /**
     * chattr +i / +a (and their FS_XFLAG twins): an immutable or append-only file cannot be linked
     * (a version) or replaced by rename (the copy-on-write swap), so these are never put on a live
     * file or a copy.
     */
    public static final int FS_IMMUTABLE_FL = 0x10, FS_APPEND_FL = 0x20;
    public static final int FS_XFLAG_IMMUTABLE = 0x8, FS_XFLAG_APPEND = 0x10;

    private static final LibC C = Posix.C;
    private static final Runtime RT = Runtime.getSystemRuntime();
    /** The flags word, per thread (a copy-on-write swap reads it twice: no allocation on that path). */
    private static final ThreadLocal<Pointer> FLAGS = ThreadLocal.withInitial(() -> Memory.allocateDirect(RT, 8));

    private InodeAttrs() {}

    /** ioctl(2) with a request number as FUSE hands it over (an int): passed on unsigned. 0 or -errno. */
    public static int ioctl(int fd, int request, Pointer arg) {
        return C.ioctl(fd, Integer.toUnsignedLong(request), arg) == 0 ? 0 : -Posix.errno();
    }

    /** Copies {@code src}'s extended attributes and inode flags onto {@code dst} (best effort). */
    public static void copy(int src, int dst) {
        copyXattrs(src, dst);
        copyFlags(src, dst);
    }

    /** Names of {@code fd}'s extended attributes (empty if none, or unsupported). */
    static List<String> names(int fd) {
        List<String> out = new ArrayList<>();
        for (int attempt = 0; attempt < 4; attempt++) {
            long size = C.flistxattr(fd, null, 0);
            if (size <= 0) return out;
            Pointer buf = Memory.allocateDirect(RT, (int) size);
            long n = C.flistxattr(fd, buf, size);
            if (n < 0 && Posix.errno() == Errno.ERANGE.code) continue; // grew meanwhile
            if (n <= 0) return out;
            byte[] b = new byte[(int) n];
            buf.get(0, b, 0, b.length);
            int start = 0;
            for (int i = 0; i < b.length; i++) {
                if (b[i] != 0) continue;
                String name = utf8(b, start, i - start);
                if (name != null && !name.isEmpty()) out.add(name);
                start = i + 1;
            }
            return out;
        }
        return out;
    }

    /** Null for a name that is not UTF-8: it could not be given back as the same bytes, so it is left out. */
    private static String utf8(byte[] b, int off, int len) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                    .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(b, off, len)).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            return null;
        }
    }

    private static void copyXattrs(int src, int dst) {
        for (String name : names(src)) {
            long size = C.fgetxattr(src, name, null, 0);
            if (size < 0) continue;
            Pointer v = Memory.allocateDirect(RT, (int) Math.max(1, size));
            long n = C.fgetxattr(src, name, v, size);
            if (n >= 0) C.fsetxattr(dst, name, v, n, 0); // refused (privileges, LSM): left out
        }
    }

    private static void copyFlags(int src, int dst) {
        Pointer f = FLAGS.get();
        if (ioctl(src, FS_IOC_GETFLAGS, f) != 0) return; // no flags on this filesystem
        int want = f.getInt(0) & ~(FS_IMMUTABLE_FL | FS_APPEND_FL);
        if (ioctl(dst, FS_IOC_GETFLAGS, f) != 0 || f.getInt(0) == want) return; // the usual case: nothing to set
        f.putInt(0, want);
        ioctl(dst, FS_IOC_SETFLAGS, f); // a flag this filesystem or our privileges refuse: left as is
    }
}
