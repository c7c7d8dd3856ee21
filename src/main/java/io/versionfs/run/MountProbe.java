package io.versionfs.run;

import io.versionfs.capture.Targets;
import io.versionfs.errors.UserError;
import io.versionfs.fs.CaptureFs;
import io.versionfs.fs.FuseMount;
import io.versionfs.fs.MountTable;
import io.versionfs.sys.Posix;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Doctor's test mount: a real mount of an empty folder with the code and options of {@code run},
 * a file written and read through it, then undone. The mount runs on its own thread so a hung
 * mount or write cannot hang doctor: {@link #run} ends at its deadline, and {@link #close} undoes
 * whatever was made (lazy unmount if need be) and removes the folders.
 */
final class MountProbe implements AutoCloseable {
    private static final byte[] DATA = "versionfs doctor\n".getBytes(StandardCharsets.US_ASCII);

    private final Path priv, backing, mp;
    private final ExecutorService thread = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "versionfs-doctor-mount");
        t.setDaemon(true);
        return t;
    });
    /** Set on the probe thread, read by close() after it: volatile. */
    private volatile FuseMount mounted;
    private volatile int rootFd = -1;

    /** @param priv a private folder (see {@link Preflight#privateDir}), removed by close() */
    MountProbe(Path priv) {
        this.priv = priv;
        this.backing = priv.resolve("backing");
        this.mp = priv.resolve("m0");
    }

    Path mountPoint() {
        return mp;
    }

    /** Null if mount, write, read and unmount all worked within the deadline, else what did not. */
    String run(long deadlineSeconds) throws IOException {
        Files.createDirectory(backing);
        Files.createDirectory(mp);
        String problem = await(thread.submit(this::writeAndRead), deadlineSeconds);
        String unmountProblem = unmount();
        return problem != null ? problem : unmountProblem;
    }

    private String writeAndRead() throws IOException, UserError {
        rootFd = Posix.openDir(backing.toString());
        mounted = FuseMount.mount(new CaptureFs(rootFd, new Targets()), mp);
        if (MountTable.fuseAt(mp) == null) return "mounted, but " + mp + " is not in /proc/self/mountinfo";
        Files.write(mp.resolve("probe"), DATA);
        if (!Arrays.equals(Files.readAllBytes(mp.resolve("probe")), DATA)) return "read back other bytes than written";
        if (!Files.exists(backing.resolve("probe"))) return "a file written through the mount did not reach the folder behind it";
        Files.delete(mp.resolve("probe"));
        return null;
    }

    private static String await(Future<String> probe, long deadlineSeconds) {
        try {
            return probe.get(deadlineSeconds, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            probe.cancel(true);
            return "no answer within " + deadlineSeconds + " s";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            probe.cancel(true);
            return "interrupted";
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            return c instanceof UserError ? c.getMessage() : String.valueOf(c);
        }
    }

    /** Unmounts the way run does; null if the mount is gone, else what is left. */
    private String unmount() {
        FuseMount m = mounted;
        if (m == null) return null;
        m.close();
        return MountTable.fuseAt(mp) != null ? "the test mount could not be unmounted (fusermount -u " + mp + ")" : null;
    }

    @Override
    public void close() {
        FuseMount m = mounted;
        if (m != null) m.close();
        else if (MountTable.fuseAt(mp) != null || FuseMount.isStale(mp)) FuseMount.lazyUnmount(mp);
        thread.shutdownNow();
        if (rootFd >= 0) Posix.C.close(rootFd);
        for (Path p : List.of(backing.resolve("probe"), backing, mp, priv)) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException e) {
                System.err.println("versionfs: warning: doctor could not remove " + p + ": " + e.getMessage());
            }
        }
    }
}
