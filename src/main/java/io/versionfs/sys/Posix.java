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
     * How much a background thread yields to the job. Its nice value, set on the thread itself
     * (Linux nice is per thread); an unprivileged process can only ever lower it, never raise it
     * back, so each pool is made at the priority it keeps.
     */
    public enum Background {
        /**
         * nice 10: copy-on-write copies and the separator. The program's own write can wait for a
         * copy ({@code CopyJob.await}), so the copy must not starve behind the job's processes.
         */
        LOW(10),
        /**
         * nice 19 (weight 15 against 1024 for a nice-0 process: about 1.5 % of a core the job keeps
         * busy): the SHA-256 of saved versions, which nothing the job does waits for. On a node whose
         * every core is busy it runs in the job's idle moments, and after the job at full speed.
         */
        LOWEST(19);

        final int nice;

        Background(int nice) {
            this.nice = nice;
        }
    }

    /** Sets the calling thread's nice value (the process's other threads keep theirs). */
    public static void lowerThreadPriority(Background how) {
        long tid = C.syscall(SYS_GETTID);
        if (tid > 0) C.setpriority(PRIO_PROCESS, (int) tid, how.nice);
    }

    /** Daemon threads at lower priority ({@link Background#LOW}), for background work. */
    public static java.util.concurrent.ThreadFactory backgroundThreads(String name) {
        return backgroundThreads(name, Background.LOW);
    }

    /** Daemon threads at priority {@code how}, for background work. */
    public static java.util.concurrent.ThreadFactory backgroundThreads(String name, Background how) {
        return r -> {
            Thread t = new Thread(() -> {
                lowerThreadPriority(how);
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
