package io.versionfs.fs;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Log;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * One mounted {@link CaptureFs}: mounting (with the options the capture needs), waiting until the
 * kernel is really talking to us, and unmounting on every exit path.
 *
 * <p>We run libfuse's loop on our own thread instead of jnr-fuse's {@code mount()}, which guesses
 * success after a 2 s timeout and unmounts lazily without waiting: we wait for FUSE's INIT (the
 * mount is usable) or for the loop to fail, and at the end for the loop to finish.
 */
public final class FuseMount implements AutoCloseable {
    /**
     * big_writes/max_write: 128 KiB writes instead of 4 KiB. atomic_o_trunc: O_TRUNC reaches open()
     * so the truncation is attributed to the handle. kernel_cache: nothing but us touches the
     * backing files, so page-cache contents stay valid across opens. default_permissions: the
     * kernel checks modes as on a normal filesystem. hard_remove: an unlink while a file is open is
     * a real unlink (libfuse2 would otherwise rename it to .fuse_hidden*, visible to the program
     * and left behind if we are killed); the handles keep working (flag_nullpath_ok, CaptureFs).
     * splice_read: libfuse 2.9 reads each request from /dev/fuse with splice into a pipe, so a
     * WRITE's data reaches write_buf as a pipe (FUSE_BUF_IS_FD) and fuse_buf_copy splices it into
     * the backing file: never copied into this process (without it the data is read() into memory
     * and pwrite()n: strace shows read + pwrite64 per write instead of two splice calls).
     * splice_write/splice_move only act on replies built from file descriptors (read_buf), which
     * we do not use; they are kept so the mount matches the C floor of the benchmark. Measured
     * side by side (bench/README.md): +20-30 % write throughput with splice_read, reads unchanged.
     * auto_unmount: if this process is killed (SIGKILL, OOM), fusermount unmounts for us instead
     * of leaving a dead mount.
     */
    /** bench/run.sh reads this line to mount its C floor with the same options. */
    static final String DEFAULT_SPLICE = "read,write,move";
    static final String BASE_OPTIONS =
            "fsname=versionfs,subtype=versionfs,big_writes,max_write=131072,atomic_o_trunc,kernel_cache,default_permissions,hard_remove"
            + splice(System.getProperty("versionfs.splice", DEFAULT_SPLICE));

    /**
     * A mount in a job on several nodes, where other nodes' mounts write the same backing file:
     * no kernel_cache (the page cache is dropped at each open, as libfuse does by default) and no
     * cached attributes or names, so an open on this node sees what another node wrote and closed
     * (close-to-open coherence, as NFS gives).
     */
    public static final String ACROSS_NODES_OPTIONS = BASE_OPTIONS.replace(",kernel_cache", "")
            + ",attr_timeout=0,entry_timeout=0,negative_timeout=0";

    /**
     * {@code -Dversionfs.acrossNodesMount=true}: every {@link #mount} on this node is made as on a
     * node of a job on several nodes ({@link #mountAcrossNodes}). Not a user option: bench/run.sh's
     * coherence section uses it to measure what those settings cost on one node (bench/README.md).
     */
    private static final boolean ACROSS_NODES_MOUNT = Boolean.getBoolean("versionfs.acrossNodesMount");

    /** {@code -Dversionfs.splice=read,write,move} (any of them; "none" or "false" for none). */
    private static String splice(String which) {
        StringBuilder sb = new StringBuilder();
        for (String w : which.split(",")) {
            w = w.trim();
            if (w.equals("true")) sb.append(",splice_write,splice_move");
            else if (w.equals("read") || w.equals("write") || w.equals("move")) sb.append(",splice_").append(w);
        }
        return sb.toString();
    }

    private final CaptureFs fs;
    private final Path mountPoint;
    private final Thread loop;
    private volatile int loopResult = Integer.MIN_VALUE;
    private volatile boolean unmounted;

    private final String extraOptions;
    private final String baseOptions;

    private FuseMount(CaptureFs fs, Path mountPoint, String extraOptions) {
        this(fs, mountPoint, BASE_OPTIONS, extraOptions);
    }

    private FuseMount(CaptureFs fs, Path mountPoint, String baseOptions, String extraOptions) {
        this.baseOptions = baseOptions;
        this.fs = fs;
        this.mountPoint = mountPoint;
        this.extraOptions = extraOptions;
        this.loop = new Thread(this::runLoop, "versionfs-fuse-loop");
        this.loop.setDaemon(true);
    }

    private void runLoop() {
        String[] args = {"versionfs", "-f", mountPoint.toString(), "-o", baseOptions + ",auto_unmount" + extraOptions};
        loopResult = fs.runLoop(args, mountPoint);
    }

    /** Mounts and returns once the filesystem answers; throws UserError(MOUNT_FAILED) otherwise. */
    public static FuseMount mount(CaptureFs fs, Path mountPoint) {
        return mount(fs, mountPoint, "");
    }

    /** As {@link #mount(CaptureFs, Path)}, with more mount options ({@code ",name=value"}). */
    public static FuseMount mount(CaptureFs fs, Path mountPoint, String extraOptions) {
        if (ACROSS_NODES_MOUNT) return mountAcrossNodes(fs, mountPoint, extraOptions);
        Path mp = mountPoint.toAbsolutePath().normalize();
        prepareMountPoint(mp);
        return start(new FuseMount(fs, mp, extraOptions));
    }

    /** As {@link #mount(CaptureFs, Path, String)}, coherent with the mounts of the same files on other nodes. */
    public static FuseMount mountAcrossNodes(CaptureFs fs, Path mountPoint, String extraOptions) {
        fs.coherentAcrossNodes();
        Path mp = mountPoint.toAbsolutePath().normalize();
        prepareMountPoint(mp);
        return start(new FuseMount(fs, mp, ACROSS_NODES_OPTIONS, extraOptions));
    }

    /**
     * Mounts over a folder that has files (directory mode: the job's own folder, served by
     * {@code fs} from a descriptor opened on it before the mount hid it).
     *
     * <p>entry_timeout=0: the kernel looks the name up at every open, never opening from a name it
     * remembers, so that an open that may create reaches {@link CaptureFs#getattr} (which turns it
     * into one create) and never a name another process of the job deleted meanwhile (libfuse2
     * answers an open of a deleted name ENOENT, also for O_CREAT). The price: one lookup more per
     * path walk into the folder.
     */
    public static FuseMount mountOver(CaptureFs fs, Path folder) {
        Path mp = folder.toAbsolutePath().normalize();
        if (isStale(mp)) lazyUnmount(mp);
        if (MountTable.fuseAt(mp) != null) {
            throw new UserError(ExitCodes.MOUNT_FAILED, mp + " already has a FUSE filesystem mounted on it"
                    + " (another versionfs run?): see findmnt " + mp);
        }
        return start(new FuseMount(fs, mp, ",nonempty,entry_timeout=0"));
    }

    private static FuseMount start(FuseMount m) {
        if (FuseLoop.JAVA_THREADS) return startAndAwait(m); // FuseLoop holds Spawns.LOCK around its fork
        // libfuse's own loop (-Dversionfs.fuseLoop=libfuse) forks fusermount somewhere inside
        // fuse_main_real, on the loop's thread, which cannot hold the lock for that moment alone:
        // hold process starts from here until the mount answers (or fails, or 30 s pass).
        synchronized (io.versionfs.sys.Spawns.LOCK) {
            return startAndAwait(m);
        }
    }

    private static FuseMount startAndAwait(FuseMount m) {
        Path mp = m.mountPoint;
        CaptureFs fs = m.fs;
        m.loop.start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (!fs.initialized().await(50, TimeUnit.MILLISECONDS)) {
                if (!m.loop.isAlive()) {
                    throw new UserError(ExitCodes.MOUNT_FAILED, "mounting at " + mp + " failed (libfuse said why, above)."
                            + " Check that FUSE works on this node: fusermount -V; ls -l /dev/fuse");
                }
                if (System.nanoTime() > deadline) {
                    m.close();
                    throw new UserError(ExitCodes.MOUNT_FAILED, "mounting at " + mp + " did not complete within 30 s");
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            m.close();
            throw new UserError(ExitCodes.MOUNT_FAILED, "interrupted while mounting " + mp);
        }
        Thread warm = new Thread(() -> FuseSupport.warmUp(fs.rootFd()), "versionfs-warm-up");
        warm.setDaemon(true);
        warm.setPriority(Thread.MIN_PRIORITY);
        warm.start();
        return m;
    }

    /**
     * The mount point must be an empty folder with nothing mounted on it. A dead FUSE mount left by
     * a killed process ("Transport endpoint is not connected") is cleared.
     */
    public static void prepareMountPoint(Path mp) {
        if (isStale(mp)) {
            Log.warn("clearing a stale FUSE mount at " + mp + " left by a process that was killed");
            lazyUnmount(mp);
            if (isStale(mp)) {
                throw new UserError(ExitCodes.MOUNT_FAILED, mp + " is a dead FUSE mount that could not be cleared:"
                        + " run 'fusermount -u -z " + mp + "' (as root: umount -l " + mp + ") and try again");
            }
        }
        if (!Files.exists(mp)) {
            throw new UserError(ExitCodes.MOUNT_FAILED, "mount point " + mp + " does not exist: create it (mkdir -p " + mp + ")");
        }
        if (!Files.isDirectory(mp)) {
            throw new UserError(ExitCodes.MOUNT_FAILED, "mount point " + mp + " is not a folder: give an empty folder");
        }
        if (MountTable.isMountPoint(mp)) {
            throw new UserError(ExitCodes.MOUNT_FAILED, "mount point " + mp + " is busy: something is already mounted there"
                    + " (see: findmnt " + mp + "); unmount it or choose another folder");
        }
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(mp)) {
            if (ds.iterator().hasNext()) {
                throw new UserError(ExitCodes.MOUNT_FAILED, "mount point " + mp + " is not empty: give an empty folder"
                        + " (mounting would hide its files)");
            }
        } catch (IOException e) {
            throw new UserError(ExitCodes.MOUNT_FAILED, "cannot read mount point " + mp + ": " + e.getMessage());
        }
        if (!Files.isWritable(mp) && !FuseSupport.isRoot()) {
            throw new UserError(ExitCodes.MOUNT_FAILED, "mount point " + mp + " is not writable by you: FUSE only mounts"
                    + " on folders you own and can write");
        }
    }

    /** True if {@code p} is a FUSE mount whose daemon is gone. */
    public static boolean isStale(Path p) {
        try {
            Files.readAttributes(p, "basic:isDirectory");
            return false;
        } catch (FileSystemException e) {
            String r = e.getReason();
            return r != null && r.contains("not connected");
        } catch (IOException e) {
            return false;
        }
    }

    /** Detaches whatever is mounted at {@code mp}, even if busy or dead. */
    public static void lazyUnmount(Path mp) {
        if (!runQuiet(fusermountCmd("-u", "-z", mp)) && FuseSupport.isRoot()) {
            runQuiet(List.of("umount", "-l", mp.toString()));
        }
    }

    private static List<String> fusermountCmd(String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(FuseSupport.fusermount().map(Path::toString).orElse("fusermount"));
        for (String a : args) cmd.add(a);
        return cmd;
    }

    private static List<String> fusermountCmd(String a, String b, Path mp) {
        return fusermountCmd(a, b, mp.toString());
    }

    private static boolean runQuiet(List<String> cmd) {
        try {
            Process p = io.versionfs.sys.Spawns.start(new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD));
            return p.waitFor(20, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    public Path mountPoint() {
        return mountPoint;
    }

    /** True while libfuse's loop runs (false once someone ran fusermount -u on us). */
    public boolean isAlive() {
        return loop.isAlive();
    }

    /**
     * Waits (bounded) until every open handle has been released: release is asynchronous, so
     * right after the last process exits some may still be in flight.
     */
    public boolean awaitHandlesClosed(long millis) {
        long deadline = System.currentTimeMillis() + millis;
        while (fs.openHandles() > 0 && System.currentTimeMillis() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return fs.openHandles() == 0;
    }

    /**
     * The end of capture, in the order that loses nothing: wait (bounded) for pending releases,
     * save changes never closed, make live files independent of their versions, unmount.
     */
    public void finish(long handleWaitMillis) {
        finish(handleWaitMillis, Long.MAX_VALUE / 2_000_000);
    }

    /**
     * As {@link #finish(long)}, giving the copies that separate live files from their last
     * versions at most {@code detachBudgetMillis} (a run being stopped lives on Slurm's KillWait).
     */
    public void finish(long handleWaitMillis, long detachBudgetMillis) {
        if (!awaitHandlesClosed(handleWaitMillis)) {
            Log.warn(fs.openHandles() + " handle(s) still open in " + mountPoint + " after the job ended; unmounting anyway");
            fs.stop(); // whoever still waits in a FUSE call gets its answer now
        }
        fs.captureUnclosed();
        fs.detachAll(detachBudgetMillis);
        close();
    }

    /** Unmounts (lazily if busy) and waits for the loop to end. Idempotent. */
    @Override
    public void close() {
        if (unmounted) return;
        unmounted = true;
        if (loop.isAlive()) {
            if (!runQuiet(fusermountCmd("-u", mountPoint.toString()))) {
                lazyUnmount(mountPoint);
            }
        }
        try {
            loop.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (loop.isAlive() || MountTable.fuseAt(mountPoint) != null) {
            lazyUnmount(mountPoint);
        }
        // A dead mount of a killed run may have been under ours (its auto-unmount still pending):
        // do not leave it showing "Transport endpoint is not connected" on the user's folder.
        for (int i = 0; i < 3 && isStale(mountPoint); i++) lazyUnmount(mountPoint);
    }
}
