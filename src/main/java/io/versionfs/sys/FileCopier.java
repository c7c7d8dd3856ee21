package io.versionfs.sys;

import io.versionfs.sys.Errno;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

import java.util.function.BooleanSupplier;

/**
 * Copies file content between two open descriptors as cheaply as the filesystem allows:
 * a reflink ({@code FICLONE}: O(1), shares blocks copy-on-write on XFS/btrfs), else
 * {@code copy_file_range} (in-kernel, no user-space buffer; server-side on NFS), else a plain
 * pread/pwrite loop. Works in chunks so a copy made obsolete (the file was truncated to zero)
 * can be cancelled between chunks.
 */
public final class FileCopier {
    public enum Method { REFLINK, COPY_FILE_RANGE, READ_WRITE }

    private static final long CHUNK = 16L << 20;
    private static final LibC C = Posix.C;

    private FileCopier() {}

    /** Thrown when a copy fails; carries errno (ENOSPC/EDQUOT matter: disk full). */
    public static final class CopyException extends Exception {
        public final int errno;

        CopyException(String what, int errno) {
            super(what + ": " + Posix.strerror(errno));
            this.errno = errno;
        }
    }

    /** Thrown when {@code cancelled} became true mid-copy. */
    public static final class Cancelled extends Exception {}

    /**
     * Copies the file {@code src} (relative to {@code srcDir}) to a new file {@code dst} (relative
     * to {@code dstDir}) with the source's permission bits, optionally fsync'd. Returns null on
     * success, else why it failed, with {@code dst} removed ("cancelled" if {@code cancelled}
     * turned true). One place for the open/stat/create/copy/close sequence that capture,
     * copy-on-write and run's set-up and restore all need.
     */
    public static String copyAt(int srcDir, String src, int dstDir, String dst, boolean sync, BooleanSupplier cancelled) {
        int in = C.openat(srcDir, src, LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        if (in < 0) return "open " + src + ": " + Posix.strerror(Posix.errno());
        int out = -1;
        String err = null;
        try {
            Pointer st = Posix.allocStat();
            if (C.fstat(in, st) != 0) return "stat " + src + ": " + Posix.strerror(Posix.errno());
            long size = Posix.statSize(st);
            out = C.openat(dstDir, dst, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_TRUNC | LibC.O_CLOEXEC, Posix.statMode(st) & 07777);
            if (out < 0) return "create " + dst + ": " + Posix.strerror(Posix.errno());
            copy(in, out, size, cancelled);
            if (sync && C.fsync(out) != 0) err = "fsync " + dst + ": " + Posix.strerror(Posix.errno());
        } catch (CopyException e) {
            err = e.getMessage();
        } catch (Cancelled e) {
            err = "cancelled";
        } finally {
            C.close(in);
            if (out >= 0) C.close(out);
            if (err != null && out >= 0) C.unlinkat(dstDir, dst, 0);
        }
        return err;
    }

    /**
     * Copies all of {@code src} (from offset 0, {@code length} bytes) into {@code dst}, which must be
     * empty. Returns the method that worked.
     */
    public static Method copy(int src, int dst, long length, BooleanSupplier cancelled)
            throws CopyException, Cancelled {
        if (C.ioctl(dst, LibC.FICLONE, src) == 0) return Method.REFLINK;
        long done = 0;
        boolean kernelCopy = true;
        Runtime rt = Runtime.getSystemRuntime();
        Pointer offIn = Memory.allocateDirect(rt, 8), offOut = Memory.allocateDirect(rt, 8);
        offIn.putLong(0, 0);
        offOut.putLong(0, 0);
        while (done < length && kernelCopy) {
            if (cancelled.getAsBoolean()) throw new Cancelled();
            long n = C.copy_file_range(src, offIn, dst, offOut, Math.min(CHUNK, length - done), 0);
            if (n > 0) {
                done += n;
            } else if (n == 0) {
                break; // source shorter than expected: copy what there is
            } else {
                int e = Posix.errno();
                if (e == Errno.EXDEV || e == Errno.ENOSYS || e == Errno.EINVAL || e == Errno.EOPNOTSUPP) {
                    kernelCopy = false; // fall back to user space from where we are
                } else {
                    throw new CopyException("copy_file_range", e);
                }
            }
        }
        if (kernelCopy) return Method.COPY_FILE_RANGE;
        Pointer buf = Memory.allocateDirect(rt, (int) Math.min(CHUNK, 1 << 20));
        long bufSize = buf.size();
        while (done < length) {
            if (cancelled.getAsBoolean()) throw new Cancelled();
            long r = C.pread(src, buf, Math.min(bufSize, length - done), done);
            if (r < 0) throw new CopyException("read", Posix.errno());
            if (r == 0) break;
            long w = 0;
            while (w < r) {
                long n = C.pwrite(dst, buf.slice(w), r - w, done + w);
                if (n < 0) throw new CopyException("write", Posix.errno());
                w += n;
            }
            done += r;
        }
        return Method.READ_WRITE;
    }
}
