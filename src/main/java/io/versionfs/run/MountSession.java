package io.versionfs.run;

import io.versionfs.errors.ExitCodes;
import io.versionfs.fs.FuseSupport;
import io.versionfs.text.Log;
import io.versionfs.report.Summary;
import io.versionfs.sys.JvmEnv;
import io.versionfs.sys.ProcessCpu;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code versionfs mount} in the foreground: serves a mount point until Ctrl-C, SIGTERM or
 * {@code fusermount -u}, then ends the capture as a run does ({@link CaptureEnd}) and reports.
 */
public final class MountSession {
    /** What to version (names or globs in the mount), where the versions go, and the mount point. */
    public record Options(List<String> names, Path versionsDir, Path mountPoint, String onVersion, boolean json) {}

    /** Time the pending --on-version commands get once the mount is gone. */
    private static final long HOOKS_MILLIS = 60_000;

    private final Options opt;
    private final Cleanup undo = new Cleanup();
    private final CountDownLatch stop = new CountDownLatch(1);

    public MountSession(Options opt) {
        this.opt = opt;
    }

    public int execute() throws IOException, InterruptedException {
        FuseSupport.check();
        Instant start = Instant.now();
        MountPointCapture capture = new MountPointCapture(opt.names(), opt.versionsDir(), opt.mountPoint(),
                StoreRules.keepAll(opt.onVersion()), start);
        setUp(capture);
        try {
            // Wait for a signal or an unmount from outside.
            while (stop.getCount() > 0 && capture.mounted()) stop.await(200, TimeUnit.MILLISECONDS);
        } finally {
            CaptureEnd.run(capture, () -> Long.MAX_VALUE / 2_000_000, () -> HOOKS_MILLIS, undo);
        }
        Summary s = new Summary(start);
        capture.report(s);
        s.cpu(ProcessCpu.now());
        s.printHuman(System.err);
        if (opt.json()) System.out.println(s.toJson());
        JvmEnv.markTrainingRun();
        return capture.lostCount() > 0 ? ExitCodes.VERSIONS_LOST : ExitCodes.OK;
    }

    /** Opens the versions folder and mounts; a refused mount undoes what it took and says why (one line). */
    private void setUp(MountPointCapture capture) throws IOException {
        try {
            capture.prepare(undo);
            Signals.install(sig -> stop.countDown());
            capture.mount(undo, () -> {});
        } catch (IOException | RuntimeException e) {
            undo.runAll();
            throw e;
        }
        Log.info("mounted at " + capture.mountPoint() + "; versions of " + String.join(", ", opt.names()) + " go to "
                + opt.versionsDir().toAbsolutePath().normalize());
        Log.info("stop with Ctrl-C, kill " + ProcessHandle.current().pid() + ", or: fusermount -u " + capture.mountPoint());
    }
}
