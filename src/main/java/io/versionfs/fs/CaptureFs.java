package io.versionfs.fs;

import io.versionfs.capture.Targets;
import io.versionfs.capture.Version;
import io.versionfs.capture.VersionStore;
import io.versionfs.report.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import jnr.ffi.Pointer;
import jnr.ffi.Struct;
import ru.serce.jnrfuse.FuseFillDir;
import ru.serce.jnrfuse.FuseStubFS;
import ru.serce.jnrfuse.struct.FileStat;
import ru.serce.jnrfuse.struct.FuseBufvec;
import ru.serce.jnrfuse.struct.FuseFileInfo;
import ru.serce.jnrfuse.struct.Statvfs;
import ru.serce.jnrfuse.struct.Timespec;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * The capture filesystem: a pass-through of one backing folder (reached through a descriptor, as
 * libfuse's passthrough_hp does) in which the files matched by {@link Targets} are versioned.
 * Callbacks stay thin: each resolves its path or handle and delegates, the capture rule lives in
 * {@link LiveFile}. An explicit handle table maps FUSE's {@code fh} to {@link Handle}s.
 *
 * <p>Every callback returns 0/size or -errno, never throws into native code.
 */
public final class CaptureFs extends FuseStubFS {
    /** Prefix of our temp files in the backing folder; hidden from listings. */
    public static final String TMP_PREFIX = ".versionfs~";

    private static final LibC C = Posix.C;

    private final int rootFd;
    private final Path rootListing;   // /proc/self/fd/N: lists the backing folder even under a mount
    private final Targets targets;
    private final Map<String, LiveFile> live = new ConcurrentHashMap<>();
    private final Map<Long, Handle> handles = new ConcurrentHashMap<>();
    private final AtomicLong nextFh = new AtomicLong(1);
    private final CountDownLatch initialized = new CountDownLatch(1);
    private final List<LiveFile> retired = new ArrayList<>();   // unlinked while open
    private volatile Consumer<String> renameListener = s -> {};

    /**
     * @param rootFd  descriptor of the backing folder (kept open by the caller for the mount's life)
     * @param targets which names are versioned, and where their versions go
     */
    public CaptureFs(int rootFd, Targets targets) {
        this.rootFd = rootFd;
        this.rootListing = Path.of("/proc/self/fd/" + rootFd);
        this.targets = targets;
    }

    /** Notified (on a FUSE thread) when a versioned file is renamed away or unlinked. */
    public void onNamespaceEvent(Consumer<String> listener) {
        this.renameListener = listener;
    }

    CountDownLatch initialized() {
        return initialized;
    }

    /** Runs libfuse's main loop on the calling thread until unmounted. */
    int runLoop(String[] args) {
        return libFuse.fuse_main_real(args.length, args, fuseOperations, Struct.size(fuseOperations), null);
    }

    private static String rel(String path) {
        if (path.equals("/")) return ".";
        return path.startsWith("/") ? path.substring(1) : path;
    }

    private static String baseName(String rel) {
        int s = rel.lastIndexOf('/');
        return s < 0 ? rel : rel.substring(s + 1);
    }

    /** The LiveFile for a versioned name, created on first use; null when not a target. */
    private LiveFile liveFor(String rel) {
        LiveFile lf = live.get(rel);
        if (lf != null) return lf;
        VersionStore store = targets.storeFor(rel);
        if (store == null) return null;
        return live.computeIfAbsent(rel, r -> new LiveFile(rootFd, r, baseName(r), store));
    }

    // ---- lifecycle --------------------------------------------------------------------------

    @Override
    public Pointer init(Pointer conn) {
        initialized.countDown();
        return null;
    }

    /** Number of open handles: at the end of a run we wait for this to reach zero (release is async). */
    public int openHandles() {
        return handles.size();
    }

    /** Saves a version of every file changed but never closed since its last version. */
    public List<Version> captureUnclosed() {
        List<Version> out = new ArrayList<>();
        for (LiveFile lf : allLive()) {
            Version v = lf.captureIfChanged("final-unclosed", 0);
            if (v != null) out.add(v);
        }
        return out;
    }

    /** Finishes pending copy-on-write copies so the live files are independent of their versions. */
    public void detachAll() {
        for (LiveFile lf : allLive()) lf.detach();
    }

    private List<LiveFile> allLive() {
        List<LiveFile> all = new ArrayList<>(live.values());
        synchronized (retired) {
            all.addAll(retired);
        }
        return all;
    }

    // ---- attributes -------------------------------------------------------------------------

    @Override
    public int getattr(String path, FileStat stat) {
        String r = rel(path);
        if (r.startsWith(TMP_PREFIX) || r.contains("/" + TMP_PREFIX)) return -Errno.ENOENT;
        return C.fstatat(rootFd, r, Struct.getMemory(stat), LibC.AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int fgetattr(String path, FileStat stat, FuseFileInfo fi) {
        Handle h = handles.get(fi.fh.get());
        if (h == null) return getattr(path, stat);
        if (h.live != null) return h.live.fstat(Struct.getMemory(stat));
        return C.fstat(h.fd, Struct.getMemory(stat)) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int access(String path, int mask) {
        return C.faccessat(rootFd, rel(path), mask, 0) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int chmod(String path, long mode) {
        return C.fchmodat(rootFd, rel(path), (int) mode & 07777, 0) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int chown(String path, long uid, long gid) {
        return C.fchownat(rootFd, rel(path), (int) uid, (int) gid, LibC.AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int utimens(String path, Timespec[] timespec) {
        return C.utimensat(rootFd, rel(path), Struct.getMemory(timespec[0]), LibC.AT_SYMLINK_NOFOLLOW) == 0
                ? 0 : -Posix.errno();
    }

    @Override
    public int statfs(String path, Statvfs stbuf) {
        return C.fstatvfs(rootFd, Struct.getMemory(stbuf)) == 0 ? 0 : -Posix.errno();
    }

    // ---- directories and names --------------------------------------------------------------

    @Override
    public int readdir(String path, Pointer buf, FuseFillDir filter, long offset, FuseFileInfo fi) {
        String r = rel(path);
        Path dir = r.equals(".") ? rootListing : rootListing.resolve(r);
        filter.apply(buf, ".", null, 0);
        filter.apply(buf, "..", null, 0);
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                String name = p.getFileName().toString();
                if (name.startsWith(TMP_PREFIX)) continue;
                if (filter.apply(buf, name, null, 0) != 0) break;
            }
            return 0;
        } catch (NoSuchFileException e) {
            return -Errno.ENOENT;
        } catch (NotDirectoryException e) {
            return -Errno.ENOTDIR;
        } catch (IOException e) {
            return -Errno.EIO;
        }
    }

    @Override
    public int mkdir(String path, long mode) {
        return C.mkdirat(rootFd, rel(path), (int) mode & 07777) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int rmdir(String path) {
        return C.unlinkat(rootFd, rel(path), LibC.AT_REMOVEDIR) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int symlink(String target, String linkPath) {
        return C.symlinkat(target, rootFd, rel(linkPath)) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int readlink(String path, Pointer buf, long size) {
        long n = C.readlinkat(rootFd, rel(path), buf, size - 1);
        if (n < 0) return -Posix.errno();
        buf.putByte(n, (byte) 0);
        return 0;
    }

    @Override
    public int link(String oldPath, String newPath) {
        return C.linkat(rootFd, rel(oldPath), rootFd, rel(newPath), 0) == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int unlink(String path) {
        String r = rel(path);
        if (C.unlinkat(rootFd, r, 0) != 0) return -Posix.errno();
        LiveFile lf = live.remove(r);
        if (lf != null) {
            lf.unlinked();
            if (lf.openCount() > 0) {
                synchronized (retired) {
                    retired.add(lf);
                }
            }
            lf.store().event(io.versionfs.report.Json.obj().put("event", "unlink").put("file", r)
                    .put("time", Version.ISO_MILLIS.format(java.time.Instant.now()))
                    .put("pid", (int) getContext().pid.get()));
            renameListener.accept("unlink " + r);
        }
        return 0;
    }

    /**
     * A rename onto a versioned name is new content at that name: a version (reason "rename").
     * A rename away from a versioned name is recorded; the file keeps living under its new name.
     */
    @Override
    public int rename(String oldPath, String newPath) {
        String from = rel(oldPath), to = rel(newPath);
        LiveFile moving = live.get(from);
        if (moving != null) moving.detach(); // a pending copy-on-write temp must not outlive the name
        if (C.renameat(rootFd, from, rootFd, to) != 0) return -Posix.errno();
        int pid = (int) getContext().pid.get();
        LiveFile replaced = live.remove(to);
        if (replaced != null) replaced.unlinked();
        live.remove(from);
        VersionStore toStore = targets.storeFor(to);
        if (moving != null) {
            moving.store().event(io.versionfs.report.Json.obj().put("event", "rename").put("from", from)
                    .put("to", to).put("time", Version.ISO_MILLIS.format(java.time.Instant.now())).put("pid", pid));
            if (toStore == null) renameListener.accept("rename " + from + " -> " + to);
        }
        if (moving != null && toStore == null) moving.retire();
        if (toStore != null && !isRegularFile(to)) toStore = null; // a folder renamed onto a pattern: not ours
        if (toStore != null) {
            LiveFile lf;
            if (moving != null && moving.store() == toStore && baseName(from).equals(baseName(to))) {
                moving.renamedTo(to);
                lf = moving;
            } else {
                if (moving != null) {
                    moving.renamedTo(to); // handles open on it keep working, but version under the new name
                    moving.retire();
                }
                lf = new LiveFile(rootFd, to, baseName(to), toStore);
            }
            live.put(to, lf);
            lf.captureNow("rename", pid);
        }
        return 0;
    }

    private boolean isRegularFile(String r) {
        Pointer st = Posix.allocStat();
        return C.fstatat(rootFd, r, st, LibC.AT_SYMLINK_NOFOLLOW) == 0 && (Posix.statMode(st) & 0170000) == 0100000;
    }

    // ---- files -----------------------------------------------------------------------------

    private long register(Handle h) {
        long fh = nextFh.getAndIncrement();
        handles.put(fh, h);
        return fh;
    }

    @Override
    public int create(String path, long mode, FuseFileInfo fi) {
        String r = rel(path);
        int flags = fi.flags.get();
        int fd = C.openat(rootFd, r, (flags & ~LibC.O_APPEND) | LibC.O_CREAT | LibC.O_CLOEXEC, (int) mode & 07777);
        if (fd < 0) return -Posix.errno();
        if (targets.storeFor(r) == null) {
            fi.fh.set(register(new Handle(null, fd)));
            return 0;
        }
        C.close(fd);
        LiveFile lf = liveFor(r);
        int a = lf.acquire();
        if (a < 0) return a;
        Handle h = new Handle(lf, -1);
        lf.created();
        fi.fh.set(register(h));
        return 0;
    }

    @Override
    public int open(String path, FuseFileInfo fi) {
        String r = rel(path);
        int flags = fi.flags.get();
        LiveFile lf = liveFor(r);
        if (lf == null) {
            int fd = C.openat(rootFd, r, (flags & ~(LibC.O_CREAT | LibC.O_EXCL | LibC.O_APPEND)) | LibC.O_CLOEXEC, 0);
            if (fd < 0) return -Posix.errno();
            fi.fh.set(register(new Handle(null, fd)));
            return 0;
        }
        int a = lf.acquire();
        if (a < 0) return a;
        Handle h = new Handle(lf, -1);
        if ((flags & LibC.O_TRUNC) != 0 && (flags & LibC.O_ACCMODE) != LibC.O_RDONLY) {
            int t = lf.truncate(0, null); // not a write by this handle: see LiveFile.markChanged
            if (t < 0) {
                lf.release();
                return t;
            }
        }
        fi.fh.set(register(h));
        return 0;
    }

    @Override
    public int read(String path, Pointer buf, long size, long offset, FuseFileInfo fi) {
        Handle h = handles.get(fi.fh.get());
        if (h == null) return -Errno.EBADF;
        if (h.live != null) return h.live.read(buf, size, offset);
        long n = C.pread(h.fd, buf, size, offset);
        return n < 0 ? -Posix.errno() : (int) n;
    }

    /**
     * The write path: with write_buf implemented libfuse never calls write(). The buffer is memory,
     * or a pipe to splice from when mounted with splice_write.
     */
    @Override
    public int write_buf(String path, FuseBufvec buf, long off, FuseFileInfo fi) {
        Handle h = handles.get(fi.fh.get());
        if (h == null) return -Errno.EBADF;
        Pointer src = Struct.getMemory(buf);
        if (h.live != null) return h.live.writeBuf(src, off, h);
        return io.versionfs.sys.FuseBufs.copyToFd(src, h.fd, off);
    }

    @Override
    public int truncate(String path, long size) {
        String r = rel(path);
        LiveFile lf = liveFor(r);
        if (lf != null) return lf.truncate(size, null);
        int fd = C.openat(rootFd, r, LibC.O_WRONLY | LibC.O_CLOEXEC, 0);
        if (fd < 0) return -Posix.errno();
        try {
            return C.ftruncate(fd, size) == 0 ? 0 : -Posix.errno();
        } finally {
            C.close(fd);
        }
    }

    @Override
    public int ftruncate(String path, long size, FuseFileInfo fi) {
        Handle h = handles.get(fi.fh.get());
        if (h == null) return truncate(path, size);
        if (h.live != null) return h.live.truncate(size, h);
        return C.ftruncate(h.fd, size) == 0 ? 0 : -Posix.errno();
    }

    /**
     * close() waits for this: the version is saved here, so the program cannot run ahead of it.
     * Must always be implemented (answering ENOSYS once makes the kernel stop sending flush).
     */
    @Override
    public int flush(String path, FuseFileInfo fi) {
        Handle h = handles.get(fi.fh.get());
        if (h == null || h.live == null) return 0;
        try {
            h.live.flushFrom(h, (int) getContext().pid.get());
        } catch (Throwable t) {
            // Never fail the program's close() because a version could not be taken.
            Log.warn("capture failed for " + path + ": " + t);
        }
        return 0;
    }

    @Override
    public int fsync(String path, int isdatasync, FuseFileInfo fi) {
        Handle h = handles.get(fi.fh.get());
        if (h == null) return 0;
        if (h.live != null) return h.live.fsync(isdatasync != 0);
        int r = isdatasync != 0 ? C.fdatasync(h.fd) : C.fsync(h.fd);
        return r == 0 ? 0 : -Posix.errno();
    }

    @Override
    public int release(String path, FuseFileInfo fi) {
        Handle h = handles.remove(fi.fh.get());
        if (h == null) return 0;
        if (h.live != null) {
            h.live.release();
            if (h.live.isUnlinked() && h.live.openCount() == 0) {
                synchronized (retired) {
                    retired.remove(h.live);
                }
            }
        } else {
            C.close(h.fd);
        }
        return 0;
    }
}
