package io.versionfs.sys;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

/**
 * libfuse2's session calls, the pieces {@code fuse_main_real} is made of (fuse.h, fuse_lowlevel.h
 * of libfuse 2.9): set up (parse options, mount, install the operations), read one request,
 * process it, tear down. They let the request loop run on threads of our own
 * ({@code fs.FuseLoop}) instead of libfuse's. Raw pointers throughout, as in {@link FuseBufs}.
 */
public final class FuseSession {
    /** The calls, bound by name from libfuse.so.2 (default symbol versions: FUSE_2.6 and FUSE_2.9). */
    public interface Lib {
        Pointer fuse_setup(int argc, String[] argv, Pointer op, long opSize, Pointer mountpoint, Pointer multithreaded, Pointer userData);

        void fuse_remove_signal_handlers(Pointer se);

        void fuse_unmount(Pointer mountpoint, Pointer ch);

        void fuse_destroy(Pointer fuse);

        Pointer fuse_get_session(Pointer fuse);

        Pointer fuse_session_next_chan(Pointer se, Pointer ch);

        long fuse_chan_bufsize(Pointer ch);

        int fuse_session_receive_buf(Pointer se, Pointer buf, Pointer chp);

        void fuse_session_process_buf(Pointer se, Pointer buf, Pointer ch);

        int fuse_session_exited(Pointer se);

        void fuse_session_exit(Pointer se);

        void fuse_session_reset(Pointer se);
    }

    public static final Lib FUSE = LibraryLoader.create(Lib.class).load("fuse");

    /** struct fuse_buf: size_t size; enum flags; void *mem; int fd; off_t pos. */
    public static final int BUF_SIZE = 40;
    public static final int BUF_IS_FD = 1 << 1;
    /** struct fuse_in_header: uint32 len, uint32 opcode, ...; FUSE_FORGET and FUSE_BATCH_FORGET. */
    private static final int OPCODE_OFFSET = 4, FORGET = 2, BATCH_FORGET = 42;

    private FuseSession() {}

    /**
     * fuse_setup, and libfuse's signal handling undone at once. fuse_setup makes its session the
     * process's one "signal session" (a static in libfuse's helper.c) and fuse_teardown complains
     * "fuse: fuse_remove_signal_handlers: unknown session" on stderr for any other: with two
     * targets (two mounts), every run printed it. The JVM's own handlers of HUP, INT and TERM stay
     * (libfuse only replaces handlers left at their default); only SIGPIPE stays ignored. Callers
     * hold one lock around this, so the static is always empty between two set-ups.
     */
    public static Pointer setup(String[] args, Pointer ops, long opsSize, Pointer mountpoint) {
        Pointer fuse = FUSE.fuse_setup(args.length, args, ops, opsSize, mountpoint, allocate(4), null);
        if (fuse != null) FUSE.fuse_remove_signal_handlers(FUSE.fuse_get_session(fuse));
        return fuse;
    }

    /** fuse_teardown without its signal step (undone in {@link #setup}): unmount, destroy, free the mount point's name. */
    public static void teardown(Pointer fuse, Pointer mountpoint) {
        Pointer ch = FUSE.fuse_session_next_chan(FUSE.fuse_get_session(fuse), null);
        Pointer name = mountpoint.getPointer(0);
        FUSE.fuse_unmount(name, ch);
        FUSE.fuse_destroy(fuse);
        if (name != null) Posix.C.free(name.address());
    }

    /** Native memory of {@code size} bytes (zeroed), freed when unreachable. */
    public static Pointer allocate(long size) {
        return Memory.allocateDirect(Runtime.getSystemRuntime(), (int) size, true);
    }

    /** Fills {@code fbuf} as fuse_loop_mt does before each read: memory {@code mem} of {@code size}, no fd. */
    public static void resetBuf(Pointer fbuf, Pointer mem, long size) {
        fbuf.putLong(0, size);
        fbuf.putInt(8, 0);
        fbuf.putInt(12, 0);
        fbuf.putAddress(16, mem.address());
        fbuf.putInt(24, 0);
        fbuf.putInt(28, 0);
        fbuf.putLong(32, 0);
    }

    /**
     * Whether the request in {@code fbuf} is a FORGET: libfuse starts no new worker for those (a
     * burst of them would otherwise create threads by the thousand). Only known when the header
     * was read into memory.
     */
    public static boolean isForget(Pointer fbuf, Pointer mem) {
        if ((fbuf.getInt(8) & BUF_IS_FD) != 0) return false;
        int op = mem.getInt(OPCODE_OFFSET);
        return op == FORGET || op == BATCH_FORGET;
    }
}
