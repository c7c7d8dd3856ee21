package io.versionfs.sys;

import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import ru.serce.jnrfuse.struct.FileStat;

import java.util.function.BooleanSupplier;

/**
 * Copies file content between two descriptors as cheaply as the filesystem allows: a reflink
 * ({@code FICLONE}: O(1), shares blocks copy-on-write on XFS/btrfs), else {@code copy_file_range}
 * (in-kernel, no user-space buffer; server-side on NFS), else a pread/pwrite loop. Only the data
 * segments are copied ({@code SEEK_DATA}/{@code SEEK_HOLE}), so a sparse file stays sparse and a
 * copy of 8 KiB of data in a 1 GiB file needs 8 KiB of free space, not 1 GiB. Works in chunks so
 * a copy made obsolete (the file was truncated to zero, the run is stopping) can be cancelled.
 */
public final class FileCopier {
    public enum Method { REFLINK, COPY_FILE_RANGE, READ_WRITE }

    private static final long CHUNK = 16L << 20;
    private static final LibC C = Posix.C;
    private static final Runtime RT = Runtime.getSystemRuntime();
    /** One 1 MiB buffer per thread for the user-space fallback, reused (never one per copy). */
    private static final ThreadLocal<Pointer> BUF = ThreadLocal.withInitial(() -> Memory.allocateDirect(RT, 1 << 20));
    private static final ThreadLocal<Pointer> OFFS = ThreadLocal.withInitial(() -> Memory.allocateDirect(RT, 16));

    private FileCopier() {}

    /** Thrown when a copy fails; carries the {@link IoError} (ENOSPC/EDQUOT matter: disk full). */
    public static final class CopyException extends Exception {
        public final IoError error;

        CopyException(String what, int errno) {
            this(new IoError(errno, what));
        }

        CopyException(IoError error) {
            super(error.toString());
            this.error = error;
        }
    }

    /** Thrown when {@code cancelled} became true mid-copy. */
    public static final class Cancelled extends Exception {}

    /**
     * Copies the file {@code src} (relative to {@code srcDir}) to a new file {@code dst} (relative
     * to {@code dstDir}) with the source's permission bits, extended attributes and inode flags
     * ({@link InodeAttrs}), optionally fsync'd. Returns null on
     * success, else why it failed, with {@code dst} removed ({@link IoError#CANCELLED} if
     * {@code cancelled} turned true). Refuses anything but a regular file (a FIFO would block the open forever).
     */
    public static IoError copyAt(int srcDir, String src, int dstDir, String dst, boolean sync, BooleanSupplier cancelled) {
        int in = C.openat(srcDir, src, LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0);
        if (in < 0) return IoError.last("open " + src);
        try {
            return copyFd(in, dstDir, dst, sync, cancelled);
        } finally {
            C.close(in);
        }
    }

    /** As {@link #copyAt}, from an open descriptor (e.g. a file that has no name any more). */
    public static IoError copyFd(int in, int dstDir, String dst, boolean sync, BooleanSupplier cancelled) {
        int out = -1;
        IoError err = null;
        try {
            FileStat st = Stat.of(in);
            if (st == null) return IoError.last("stat");
            if (!Stat.isRegular(st)) return new IoError(Errno.EINVAL.code, "copy: not a regular file");
            long size = Stat.size(st);
            int mode = Stat.mode(st) & 07777;
            out = C.openat(dstDir, dst, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_TRUNC | LibC.O_CLOEXEC, mode);
            if (out < 0) return IoError.last("create " + dst);
            InodeAttrs.copy(in, out); // before the data: some flags (btrfs nocow) only take on an empty file
            copy(in, out, size, cancelled);
            if (sync && C.fsync(out) != 0) err = IoError.last("fsync " + dst);
        } catch (CopyException e) {
            err = e.error;
        } catch (Cancelled e) {
            err = IoError.CANCELLED;
        } finally {
            if (out >= 0) C.close(out);
            if (err != null && out >= 0) C.unlinkat(dstDir, dst, 0);
        }
        return err;
    }

    /**
     * Copies all of {@code src} ({@code length} bytes) into {@code dst}, which must be empty, and
     * gives {@code dst} exactly that length. Returns the method that worked. Fails (never copies
     * short) if the source ends before {@code length}.
     */
    public static Method copy(int src, int dst, long length, BooleanSupplier cancelled) throws CopyException, Cancelled {
        if (C.ioctl(dst, LibC.FICLONE, src) == 0) return Method.REFLINK;
        Method used = Method.COPY_FILE_RANGE;
        long pos = 0;
        while (pos < length) {
            long start = C.lseek(src, pos, LibC.SEEK_DATA);
            long end;
            if (start < 0) {
                int e = Posix.errno();
                if (e == Errno.ENXIO.code) break;            // only a hole from here to the end
                start = pos;                            // SEEK_DATA unsupported: all data
                end = length;
            } else {
                end = C.lseek(src, start, LibC.SEEK_HOLE);
                if (end < 0) end = length;
            }
            end = Math.min(end, length);
            if (start >= length) break;
            if (copyRange(src, dst, start, end - start, cancelled, used == Method.READ_WRITE)) used = Method.READ_WRITE;
            pos = end;
        }
        if (C.ftruncate(dst, length) != 0) throw new CopyException("truncate", Posix.errno());
        return used;
    }

    /** Copies [off, off+len) at the same offsets; returns true if it had to use read/write. */
    private static boolean copyRange(int src, int dst, long off, long len, BooleanSupplier cancelled, boolean userSpace)
            throws CopyException, Cancelled {
        long done = 0;
        if (!userSpace) {
            Pointer offs = OFFS.get();
            while (done < len) {
                if (cancelled.getAsBoolean()) throw new Cancelled();
                offs.putLong(0, off + done);
                offs.putLong(8, off + done);
                long n = C.copy_file_range(src, offs, dst, offs.slice(8), Math.min(CHUNK, len - done), 0);
                if (n > 0) {
                    done += n;
                } else if (n == 0) {
                    throw new CopyException("copy", Errno.EIO.code); // source ended early: it changed under us
                } else {
                    int e = Posix.errno();
                    if (e == Errno.EXDEV.code || e == Errno.ENOSYS.code || e == Errno.EINVAL.code || e == Errno.EOPNOTSUPP.code) {
                        userSpace = true;
                        break;
                    }
                    throw new CopyException("copy_file_range", e);
                }
            }
            if (!userSpace) return false;
        }
        Pointer buf = BUF.get();
        long bufSize = buf.size();
        while (done < len) {
            if (cancelled.getAsBoolean()) throw new Cancelled();
            long r = C.pread(src, buf, Math.min(bufSize, len - done), off + done);
            if (r < 0) throw new CopyException("read", Posix.errno());
            if (r == 0) throw new CopyException("read", Errno.EIO.code);
            long w = 0;
            while (w < r) {
                long n = C.pwrite(dst, buf.slice(w), r - w, off + done + w);
                if (n < 0) throw new CopyException("write", Posix.errno());
                w += n;
            }
            done += r;
        }
        return true;
    }
}
