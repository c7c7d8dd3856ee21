package io.versionfs.sys;

import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.function.BooleanSupplier;

/**
 * The sha256 of a file, as the manifest records it and {@code verify}/{@code restore} check it:
 * one implementation for both. Reads 128 KiB at a time into a per-thread buffer (constant memory),
 * never follows a symlink, never blocks on a FIFO put where a version was.
 *
 * <p>Why 128 KiB: each chunk is copied twice (pread from the page cache into native memory, then
 * into the byte[] the digest reads) and then hashed; a chunk that fits in the core's L2 cache is
 * still there for the second copy and the hash. Hashing a cached 512 MiB file in a loop took 0.64-0.69 s
 * of CPU in 1 MiB chunks and 0.47 s in 64-128 KiB chunks (the SHA-256 alone: 0.37-0.40 s); 16 KiB
 * was slower again (more system calls). bench/README.md, "Hashing".
 */
public final class Sha256 {
    private static final int CHUNK = 128 << 10;
    private static final ThreadLocal<Pointer> MEM = ThreadLocal.withInitial(() -> Memory.allocateDirect(Runtime.getSystemRuntime(), CHUNK));
    private static final ThreadLocal<byte[]> BYTES = ThreadLocal.withInitial(() -> new byte[CHUNK]);

    private Sha256() {}

    /** Lowercase hex, or null if {@code cancelled} turned true first. Throws with the errno if the file cannot be read. */
    public static String of(Path p, BooleanSupplier cancelled) throws IoError.Thrown {
        return of(p, cancelled, false);
    }

    /**
     * As {@link #of(Path, BooleanSupplier)}; {@code dropCache}: the file's clean pages leave the page
     * cache once read (posix_fadvise DONTNEED). For a version just saved: it is read once, here,
     * and rarely again, while a job that rewrites a big file back to back would otherwise see the
     * page cache fill with every version it made (each rewrite then needs fresh pages instead of
     * the ones just freed: measured as twice the kernel CPU for the same writes on a VM, see
     * bench/README.md). Dirty pages stay (DONTNEED only starts their writeback).
     */
    public static String of(Path p, BooleanSupplier cancelled, boolean dropCache) throws IoError.Thrown {
        int fd = Posix.C.openat(LibC.AT_FDCWD, p.toString(), LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0);
        if (fd < 0) throw IoError.last("open " + p).thrown();
        Posix.C.posix_fadvise(fd, 0, 0, LibC.POSIX_FADV_SEQUENTIAL); // a hint: larger readahead
        try {
            MessageDigest md = digest();
            Pointer mem = MEM.get();
            byte[] bytes = BYTES.get();
            for (long off = 0, n; ; off += n) {
                if (cancelled.getAsBoolean()) return null;
                n = Posix.C.pread(fd, mem, CHUNK, off);
                if (n < 0) throw IoError.last("read " + p).thrown();
                if (n == 0) return HexFormat.of().formatHex(md.digest());
                mem.get(0, bytes, 0, (int) n);
                md.update(bytes, 0, (int) n);
            }
        } finally {
            if (dropCache) Posix.C.posix_fadvise(fd, 0, 0, LibC.POSIX_FADV_DONTNEED);
            Posix.C.close(fd);
        }
    }

    /** As {@link #of(Path, BooleanSupplier)}, never cancelled. */
    public static String of(Path p) throws IoError.Thrown {
        return of(p, () -> false);
    }

    private static MessageDigest digest() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("no SHA-256 in this JVM", e);
        }
    }
}
