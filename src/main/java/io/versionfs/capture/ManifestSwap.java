package io.versionfs.capture;

import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * Replaces manifest.jsonl as a whole, never in place: its first {@code keep} bytes and then the
 * given lines are written to a temporary file in the folder's hidden part, synced, renamed over
 * manifest.jsonl, and the folder synced. A crash at any moment leaves either the old manifest or
 * the new one, whole; the caller removes what the new one took in only after {@link #replace}
 * returns (it is durable then).
 */
final class ManifestSwap {
    static final String TEMP = VersionStore.HIDDEN + "/tmp/" + Manifest.FILE_NAME + ".merge";

    /** Where a replacement stands: for tests that stop it in between (a crash there). */
    enum Step { WRITTEN, RENAMED, DURABLE, NODE_FILE_REMOVED }

    /** Called after each step; a test throws there to leave the folder as a crash would. */
    interface Seam {
        Seam NONE = (step, what) -> {};

        void after(Step step, String what) throws IOException;
    }

    private ManifestSwap() {}

    static void replace(int dirFd, Path access, long keep, List<NodeManifests.Line> lines, Seam seam) throws IOException {
        FileStat st = Stat.at(dirFd, Manifest.FILE_NAME, LibC.AT_SYMLINK_NOFOLLOW);
        int mode = st != null ? Stat.mode(st) & 07777 : 0644;
        Posix.C.mkdirat(dirFd, VersionStore.HIDDEN, 0700);
        Posix.C.mkdirat(dirFd, VersionStore.HIDDEN + "/tmp", 0700);
        int fd = Posix.C.openat(dirFd, TEMP, LibC.O_WRONLY | LibC.O_CREAT | LibC.O_TRUNC | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, mode);
        if (fd < 0) throw new Posix.NativeException("create " + access.resolve(TEMP), Posix.errno());
        boolean done = false;
        try {
            Posix.C.fchmod(fd, mode); // the old manifest's mode, whatever the umask
            copyPrefix(access.resolve(Manifest.FILE_NAME), keep, fd);
            for (NodeManifests.Line l : lines) {
                byte[] b = new byte[l.raw().length + 1];
                System.arraycopy(l.raw(), 0, b, 0, l.raw().length);
                b[b.length - 1] = '\n';
                writeAll(fd, b, b.length);
            }
            if (Posix.C.fsync(fd) != 0) throw new Posix.NativeException("fsync " + access.resolve(TEMP), Posix.errno());
            done = true;
        } finally {
            Posix.C.close(fd);
            if (!done) Posix.C.unlinkat(dirFd, TEMP, 0);
        }
        seam.after(Step.WRITTEN, TEMP);
        if (Posix.C.renameat(dirFd, TEMP, dirFd, Manifest.FILE_NAME) != 0) {
            int e = Posix.errno();
            Posix.C.unlinkat(dirFd, TEMP, 0);
            throw new Posix.NativeException("rename over " + access.resolve(Manifest.FILE_NAME), e);
        }
        seam.after(Step.RENAMED, Manifest.FILE_NAME);
        // The rename is durable once the folder is: only then may the nodes' files go.
        if (Posix.C.fsync(dirFd) != 0) throw new Posix.NativeException("fsync " + access, Posix.errno());
        seam.after(Step.DURABLE, Manifest.FILE_NAME);
    }

    private static void copyPrefix(Path manifest, long keep, int fd) throws IOException {
        if (keep <= 0) return;
        try (FileChannel in = FileChannel.open(manifest, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(1 << 16);
            for (long pos = 0; pos < keep; ) {
                b.clear().limit((int) Math.min(b.capacity(), keep - pos));
                int n = in.read(b, pos);
                if (n <= 0) throw new IOException(manifest + " is shorter than " + keep + " bytes: not merged");
                writeAll(fd, b.array(), n);
                pos += n;
            }
        }
    }

    private static void writeAll(int fd, byte[] b, int len) throws IOException {
        jnr.ffi.Pointer buf = jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), Math.max(1, len));
        buf.put(0, b, 0, len);
        for (long off = 0; off < len; ) {
            long n = Posix.C.write(fd, buf.slice(off), len - off);
            if (n < 0) throw new Posix.NativeException("write " + TEMP, Posix.errno());
            off += n;
        }
    }
}
