package io.versionfs.run;

import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Json;
import io.versionfs.text.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Map;

/**
 * "One run at a time" for a target or a versions folder: an exclusive {@code flock} on a small
 * file, held for the run's whole life and dropped by the kernel when the process dies, even by
 * SIGKILL (so a dead run never blocks the next one). The file records who holds it (host, pid,
 * since, command), so a refused run can say which run to wait for, including one on another node
 * sharing the folder (flock works across NFS clients; where a filesystem has no flock the
 * recorded host and pid decide).
 *
 * <p>A refused run has created nothing but, at most, the lock file itself (never removed by it:
 * it belongs to the holder).
 */
public final class RunLock implements AutoCloseable {
    private static final int LOCK_EX = 2, LOCK_NB = 4;
    private final Path path;
    private final int fd;

    private RunLock(Path path, int fd) {
        this.path = path;
        this.fd = fd;
    }

    /**
     * Takes the lock at {@code path} or throws {@link UserError} (exit 209) naming the holder.
     *
     * @param what what the lock protects, for the message ("job.gbw", "the versions folder X")
     */
    public static RunLock acquire(Path path, String what) {
        for (int attempt = 0; attempt < 5; attempt++) {
            int fd = Posix.C.openat(LibC.AT_FDCWD, path.toString(), LibC.O_RDWR | LibC.O_CREAT | LibC.O_CLOEXEC | LibC.O_NOFOLLOW, 0644);
            if (fd < 0) {
                int e = Posix.errno();
                throw new UserError(e == Errno.ENAMETOOLONG.code ? ExitCodes.BAD_TARGET : ExitCodes.VERSIONS_DIR,
                        "cannot create the lock file " + path + ": " + Posix.strerror(e)
                                + (e == Errno.ENAMETOOLONG.code ? " (use a shorter file name)" : " (check the folder is writable)"));
            }
            if (Posix.C.flock(fd, LOCK_EX | LOCK_NB) != 0) {
                int e = Posix.errno();
                Posix.C.close(fd);
                if (e == Errno.EAGAIN.code) throw busy(path, what);
                // No flock on this filesystem (some Lustre mounts): the record decides.
                Log.warnOnce("noflock:" + path.getParent(), "no file locking in " + path.getParent() + " ("
                        + Posix.strerror(e) + "): relying on the recorded host and pid to keep runs apart");
                refuseIfRecordedHolderAlive(path, what);
                fd = Posix.C.openat(LibC.AT_FDCWD, path.toString(), LibC.O_RDWR | LibC.O_CREAT | LibC.O_CLOEXEC, 0644);
                if (fd < 0) throw new UserError(ExitCodes.VERSIONS_DIR, "cannot open " + path + ": " + Posix.strerror(Posix.errno()));
            }
            // The holder before us may have removed the file after we opened it: the lock must be
            // on the file that the name leads to now.
            FileStat st = Stat.of(fd);
            long ino = st != null ? Stat.ino(st) : -1;
            FileStat now = Stat.at(LibC.AT_FDCWD, path.toString(), LibC.AT_SYMLINK_NOFOLLOW);
            if (now == null || Stat.ino(now) != ino) {
                Posix.C.close(fd);
                continue;
            }
            RunLock lock = new RunLock(path, fd);
            lock.record();
            return lock;
        }
        throw busy(path, what);
    }

    /**
     * Makes the versions folder (if missing) and locks it; a folder this run made is removed at
     * the end if it stays empty.
     */
    static void takeVersionsFolder(Path vdir, Cleanup undo) {
        VersionStore.checkUsable(vdir);
        boolean created = !Files.exists(vdir, LinkOption.NOFOLLOW_LINKS);
        try {
            Files.createDirectories(vdir.resolve(VersionStore.HIDDEN));
        } catch (java.io.IOException e) {
            throw VersionStore.cannotUse(vdir, e);
        }
        if (created) undo.push("remove empty " + vdir, () -> VersionStore.removeIfUnused(vdir));
        RunLock l = acquire(vdir.resolve(VersionStore.HIDDEN).resolve("lock"), "the versions folder " + vdir);
        undo.push("unlock " + vdir, l::close);
    }

    /**
     * Directory mode: a folder already served by a versionfs run shows that run's lock file through
     * its mount, where our flock would lock the FUSE file, not the real one: refuse on the mount.
     */
    static void refuseIfServed(Path folder, Path lockFile) {
        if (io.versionfs.fs.FuseMount.isStale(folder)) {
            // A dead mount of a killed run is not another run: clear it (its files are below it, intact).
            Log.warn("clearing a dead versionfs mount on " + folder + " left by a run that was killed");
            io.versionfs.fs.FuseMount.lazyUnmount(folder);
        }
        io.versionfs.fs.MountTable.Entry e = io.versionfs.fs.MountTable.fuseAt(folder);
        if (e != null && e.fsType().contains("versionfs")) throw busy(lockFile, "the folder " + folder + " (--mode dir)");
        refuseInsideServed(folder, "the folder " + folder);
    }

    /**
     * A path inside a folder that another run serves in directory mode: that run versions what
     * happens there (and keeps its versions folders read-only), so a second run would fight it.
     */
    static void refuseInsideServed(Path path, String what) {
        Path p = path.toAbsolutePath().normalize();
        for (io.versionfs.fs.MountTable.Entry e : io.versionfs.fs.MountTable.entries()) {
            if (!e.fsType().contains("versionfs") || !p.startsWith(e.mountPoint())) continue;
            if (e.mountPoint().getFileName() != null && e.mountPoint().getParent() != null
                    && e.mountPoint().getParent().getFileName() != null
                    && e.mountPoint().getParent().getFileName().toString().startsWith("versionfs-")) {
                continue; // a symlink-mode private mount, not a served folder
            }
            throw busy(e.mountPoint().resolve(DirCapture.LOCK), what + " (inside " + e.mountPoint()
                    + ", served in --mode dir)");
        }
    }

    private void record() {
        String host = java.util.Objects.requireNonNullElse(SlurmContext.host(), "?");
        String cmd = ProcessHandle.current().info().commandLine().orElse("versionfs");
        byte[] text = (Json.obj().put("host", host).put("pid", ProcessHandle.current().pid())
                .put("since", io.versionfs.capture.Version.ISO_MILLIS.format(Instant.now()))
                .put("slurm_job", SlurmContext.current().jobId())
                .put("cmdline", cmd.length() > 300 ? cmd.substring(0, 300) : cmd) + "\n").getBytes(StandardCharsets.UTF_8);
        Posix.C.ftruncate(fd, 0);
        jnr.ffi.Pointer buf = jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), text.length);
        buf.put(0, text, 0, text.length);
        Posix.C.pwrite(fd, buf, text.length, 0);
    }

    private static Map<String, Object> holder(Path path) {
        // The holder writes its record right after taking the lock: give it a moment.
        for (int i = 0; i < 10; i++) {
            try {
                String text = Files.readString(path).strip();
                if (!text.isEmpty()) return Json.parseObject(text);
            } catch (Exception e) {
                // not there yet, or half written
            }
            try {
                Thread.sleep(30);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return Map.of();
    }

    private static UserError busy(Path path, String what) {
        Map<String, Object> h = holder(path);
        String who = h.isEmpty() ? "another versionfs run" : "another versionfs run (host " + h.get("host") + ", pid "
                + h.get("pid") + (h.get("slurm_job") != null ? ", Slurm job " + h.get("slurm_job") : "")
                + ", since " + h.get("since") + ")";
        return new UserError(ExitCodes.BUSY, who + " is using " + what + ": wait for it to finish, or give this run"
                + " its own target and --versions-dir. Nothing was changed.");
    }

    private static void refuseIfRecordedHolderAlive(Path path, String what) {
        Map<String, Object> h = holder(path);
        if (h.isEmpty() || !(h.get("pid") instanceof Long pid)) return;
        String host = java.util.Objects.requireNonNullElse(SlurmContext.host(), "?");
        if (!host.equals(h.get("host"))) throw busy(path, what);
        if (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false) && pid != ProcessHandle.current().pid()) {
            throw busy(path, what);
        }
    }

    /**
     * Releases the lock and removes the file (a waiting run then retries on a fresh one), where
     * it is now: its folder may have been renamed during the run (from outside the job), and the
     * file left behind there said a run held it.
     */
    @Override
    public void close() {
        Path now = whereNow();
        try {
            FileStat st = Stat.of(fd);
            long ino = st != null ? Stat.ino(st) : -1;
            FileStat there = Stat.at(LibC.AT_FDCWD, now.toString(), LibC.AT_SYMLINK_NOFOLLOW);
            if (there != null && Stat.ino(there) == ino) Files.deleteIfExists(now); // never another run's new lock file
        } catch (Exception e) {
            Log.debug("lock " + now + ": " + e.getMessage());
        }
        Posix.C.close(fd);
    }

    /** The lock file's path now (the kernel's name for our descriptor), or the path it was taken at. */
    private Path whereNow() {
        try {
            String p = Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
            return p.startsWith("/") && !p.endsWith(" (deleted)") ? Path.of(p) : path;
        } catch (java.io.IOException | RuntimeException e) {
            return path;
        }
    }
}
