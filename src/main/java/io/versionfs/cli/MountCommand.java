package io.versionfs.cli;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.capture.TargetMatcher;
import io.versionfs.capture.Targets;
import io.versionfs.capture.VersionStore;
import io.versionfs.fs.CaptureFs;
import io.versionfs.fs.FuseMount;
import io.versionfs.fs.FuseSupport;
import io.versionfs.report.Log;
import io.versionfs.report.Summary;
import io.versionfs.run.Signals;
import io.versionfs.sys.Posix;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Callable;

/**
 * {@code versionfs mount}: the seed tool's interface. Serves MOUNTPOINT until Ctrl-C, SIGTERM or
 * {@code fusermount -u MOUNTPOINT}; the program writes MOUNTPOINT/NAME and every version lands in
 * the versions folder.
 */
@Command(name = "mount", mixinStandardHelpOptions = true, sortOptions = false,
        description = {
                "Mount a capture filesystem in the foreground (the original interface).",
                "",
                "Give MOUNTPOINT/NAME to the program as its output path (or symlink it); every version",
                "closed after a write is saved in --target-dir as NAME.000001.EXT, NAME.000002.EXT, ...",
                "with manifest.jsonl beside them. The live file is kept in TARGET-DIR/.versionfs/live/.",
                "Stop with Ctrl-C, SIGTERM, or: fusermount -u MOUNTPOINT",
                "",
                "For batch jobs prefer 'versionfs run', which mounts, runs the job and cleans up."
        })
public final class MountCommand implements Callable<Integer> {
    @Option(names = "--target", required = true, paramLabel = "NAME",
            description = "File name to version (a name, not a path; a glob like '*.gbw' is allowed). Repeatable.")
    List<String> targets;

    @Option(names = {"--target-dir", "--target_dir"}, required = true, paramLabel = "DIR",
            description = "Versions folder (created if its parent exists).")
    Path targetDir;

    @Option(names = "--on-version", paramLabel = "CMD", description = "Run CMD after each saved version (as in 'run --on-version').")
    String onVersion;

    @Option(names = "--json", description = "Print the final summary as JSON on stdout.")
    boolean json;

    @Parameters(index = "0", paramLabel = "MOUNTPOINT", description = "Empty folder to mount on.")
    Path mountPoint;

    @Override
    public Integer call() throws Exception {
        for (String t : targets) {
            if (t.contains("/") || t.isEmpty() || t.equals(".") || t.equals("..")) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target must be a file name, not a path: '" + t
                        + "'. Mount a filesystem per folder, or use 'versionfs run --target PATH'");
            }
        }
        FuseSupport.check();
        Path vdir = targetDir.toAbsolutePath().normalize();
        Instant start = Instant.now();
        VersionStore store = VersionStore.openChecked(vdir, start);
        if (onVersion != null) store.hooks(new io.versionfs.capture.Hooks(onVersion, 1, vdir));
        int rootFd = Posix.openDir(store.liveDir().toString());
        CaptureFs fs = new CaptureFs(rootFd, new Targets().add(new TargetMatcher(targets), store, null));
        CountDownLatch stop = new CountDownLatch(1);
        Signals.install(sig -> stop.countDown());
        FuseMount mount;
        try {
            mount = FuseMount.mount(fs, mountPoint);
        } catch (UserError e) {
            store.close();
            Posix.C.close(rootFd);
            throw e;
        }
        Log.info("mounted at " + mount.mountPoint() + "; versions of " + String.join(", ", targets) + " go to " + vdir);
        Log.info("stop with Ctrl-C, kill " + ProcessHandle.current().pid() + ", or: fusermount -u " + mount.mountPoint());
        // Wait for a signal or an unmount from outside.
        while (stop.getCount() > 0 && mount.isAlive()) {
            stop.await(200, java.util.concurrent.TimeUnit.MILLISECONDS);
        }
        mount.finish(5_000);
        Posix.C.close(rootFd);
        store.publishRemaining();
        store.drain();
        if (store.hooks() != null) store.hooks().finish(60_000);
        store.close();
        Summary s = new Summary(start)
                .put("mount", mount.mountPoint().toString())
                .put("live", store.liveDir().toString());
        store.versions().forEach((file, vs) ->
                s.add(new Summary.FileReport(file, vdir.toString(), store.manifestPath().toString(), vs, List.of())));
        if (store.versions().isEmpty()) {
            s.add(new Summary.FileReport(String.join(", ", targets), vdir.toString(), store.manifestPath().toString(),
                    null, List.of()));
        }
        s.printHuman(System.err);
        if (json) System.out.println(s.toJson());
        return store.lostCount() > 0 ? ExitCodes.VERSIONS_LOST : ExitCodes.OK;
    }
}
