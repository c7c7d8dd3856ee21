package io.versionfs.sys;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

/**
 * Writes a FUSE write buffer straight into a file descriptor with libfuse's own
 * {@code fuse_buf_copy}. With the {@code splice_read} mount option (libfuse 2.9 reads requests
 * from /dev/fuse with splice) the data arrives as a pipe, and it is spliced into the backing file
 * without ever being copied into this process. Without it (splice_write alone does not do this:
 * it is for replies) it is a plain pwrite from the buffer libfuse read the request into.
 */
public final class FuseBufs {
    /** The two libfuse2 calls we need; jnr-fuse's binding wants Struct objects, we pass raw memory. */
    public interface Lib {
        long fuse_buf_size(Pointer bufv);

        long fuse_buf_copy(Pointer dst, Pointer src, int flags);
    }

    private static final Lib FUSE = LibraryLoader.create(Lib.class).load("fuse");
    private static final int FUSE_BUF_IS_FD = 1 << 1, FUSE_BUF_FD_SEEK = 1 << 2;
    /** struct fuse_bufvec with one fuse_buf: count, idx, off, {size, flags, mem, fd, pos}. */
    private static final int BUFVEC_SIZE = 64;
    private static final ThreadLocal<Pointer> DST =
            ThreadLocal.withInitial(() -> Memory.allocateDirect(Runtime.getSystemRuntime(), BUFVEC_SIZE));

    private FuseBufs() {}

    /**
     * Answers a read_buf call with a reply libfuse splices from {@code fd} at {@code offset} (up to
     * {@code size} bytes; fewer at the end of the file) after the callback returns: the data goes
     * from the page cache to /dev/fuse without entering this process. {@code bufp} is the
     * callback's {@code struct fuse_bufvec **}; the vector is malloc'ed because libfuse frees it.
     * The caller guarantees {@code fd} stays open and this file's until the reply is sent. 0 or -ENOMEM.
     */
    public static int replyFromFd(Pointer bufp, int fd, long size, long offset) {
        long addr = Posix.C.malloc(BUFVEC_SIZE);
        if (addr == 0) return -12; // ENOMEM
        Pointer v = Runtime.getSystemRuntime().getMemoryManager().newPointer(addr, BUFVEC_SIZE);
        v.putLong(0, 1);        // count
        v.putLong(8, 0);        // idx
        v.putLong(16, 0);       // off
        v.putLong(24, size);    // buf[0].size
        v.putInt(32, FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
        v.putInt(36, 0);
        v.putLong(40, 0);       // mem: none (libfuse frees it: must be NULL)
        v.putInt(48, fd);
        v.putInt(52, 0);
        v.putLong(56, offset);  // pos
        bufp.putAddress(0, addr);
        return 0;
    }

    /** Copies all of {@code src} (a struct fuse_bufvec*) to {@code fd} at {@code offset}; bytes or -errno. */
    public static int copyToFd(Pointer src, int fd, long offset) {
        Pointer dst = DST.get();
        long size = FUSE.fuse_buf_size(src);
        dst.putLong(0, 1);        // count
        dst.putLong(8, 0);        // idx
        dst.putLong(16, 0);       // off
        dst.putLong(24, size);    // buf[0].size
        dst.putInt(32, FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
        dst.putLong(40, 0);       // mem
        dst.putInt(48, fd);
        dst.putLong(56, offset);  // pos
        return (int) FUSE.fuse_buf_copy(dst, src, 0);
    }
}
