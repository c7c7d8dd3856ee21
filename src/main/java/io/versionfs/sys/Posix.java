package io.versionfs.sys;

import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

/** Small conveniences over {@link LibC}: errno, stat fields, and throwing variants for setup code. */
public final class Posix {
    public static final LibC C = LibC.INSTANCE;
    private static final Runtime RT = Runtime.getSystemRuntime();

    private Posix() {}

    public static int errno() {
        return RT.getLastError();
    }

    public static String strerror(int errno) {
        return C.strerror(errno);
    }

    public static Pointer allocStat() {
        return Memory.allocateDirect(RT, LibC.STAT_SIZE);
    }

    public static int statMode(Pointer st) {
        return st.getInt(LibC.STAT_MODE_OFFSET);
    }

    public static long statNlink(Pointer st) {
        return LibC.STAT_NLINK_64 ? st.getLong(16) : st.getInt(20);
    }

    public static long statSize(Pointer st) {
        return st.getLong(LibC.STAT_SIZE_OFFSET);
    }

    /** Opens a directory descriptor to anchor {@code *at} calls; throws with the OS reason. */
    public static int openDir(String path) throws NativeException {
        int fd = C.openat(LibC.AT_FDCWD, path, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        if (fd < 0) throw new NativeException("open " + path, errno());
        return fd;
    }

    /** Result of a libc call that failed, carrying errno. */
    public static final class NativeException extends java.io.IOException {
        public final int errno;

        public NativeException(String what, int errno) {
            super(what + ": " + strerror(errno));
            this.errno = errno;
        }
    }
}
