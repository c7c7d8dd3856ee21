package io.versionfs.cli;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.run.MountSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.List;
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
        return new MountSession(new MountSession.Options(targets, targetDir, mountPoint, onVersion, json)).execute();
    }
}
