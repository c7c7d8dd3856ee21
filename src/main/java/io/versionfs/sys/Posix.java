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

    private static final ThreadLocal<Pointer> SMALL = ThreadLocal.withInitial(() -> Memory.allocateDirect(RT, 4096));

    /**
     * Reads up to 4 KiB of a small file (e.g. /proc/PID/cmdline) with three system calls and no
     * Java I/O stack: this runs inside the program's close().
     */
    public static byte[] readSmallFile(String path) {
        int fd = C.openat(LibC.AT_FDCWD, path, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0) return new byte[0];
        try {
            Pointer buf = SMALL.get();
            long n = C.read(fd, buf, buf.size());
            if (n <= 0) return new byte[0];
            byte[] out = new byte[(int) n];
            buf.get(0, out, 0, out.length);
            return out;
        } finally {
            C.close(fd);
        }
    }

    private static final int PRIO_PROCESS = 0, SYS_GETTID = "aarch64".equals(System.getProperty("os.arch")) ? 178 : 186;

    /**
     * Makes the calling thread nice 10. Hashing and copy-on-write copies run on such threads, so
     * on a busy node the FUSE threads answering the program's close() and write() come first.
     */
    public static void lowerThreadPriority() {
        long tid = C.syscall(SYS_GETTID);
        if (tid > 0) C.setpriority(PRIO_PROCESS, (int) tid, 10);
    }

    /** Daemon threads at lower priority ({@link #lowerThreadPriority}), for background work. */
    public static java.util.concurrent.ThreadFactory backgroundThreads(String name) {
        return r -> {
            Thread t = new Thread(() -> {
                lowerThreadPriority();
                r.run();
            }, name);
            t.setDaemon(true);
            return t;
        };
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
