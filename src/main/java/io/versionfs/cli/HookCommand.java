package io.versionfs.cli;

import io.versionfs.capture.ManifestLine;
import io.versionfs.errors.ExitCodes;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.File;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code versionfs hook DIR [--from N] -- CMD}: runs CMD for saved versions after the fact, with
 * the same environment as {@code run --on-version} (what a run left undone, or a new idea).
 */
@Command(name = "hook", mixinStandardHelpOptions = true,
        description = {"Run CMD (sh -c) for each saved version, oldest first, with VERSIONFS_PATH, VERSIONFS_VERSION",
                "and VERSIONFS_TARGET set, as run --on-version does. Exit 0 when every command succeeded.",
                "Example: versionfs hook job.gbw.versions --from 12 -- 'gzip -c \"$VERSIONFS_PATH\" > \"$VERSIONFS_PATH.gz\"'"})
final class HookCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "DIR") Path dir;
    @Parameters(index = "1..*", paramLabel = "CMD", description = "The command (after --), run through sh -c") List<String> cmd;
    @Option(names = "--from", paramLabel = "N", defaultValue = "1", description = "First version to run it for (default 1)") long from;

    @Override
    public Integer call() throws Exception {
        VersionsFolder.require(dir);
        String command = String.join(" ", cmd);
        int[] counts = new int[2]; // ran, failed
        VersionsFolder.eachSaved(dir, r -> {
            if (r.version() < from) return;
            int rc = runFor(command, r);
            counts[0]++;
            if (rc != 0) {
                counts[1]++;
                System.err.println("versionfs: warning: the command failed (exit " + rc + ") for version " + r.version());
            }
        });
        int ran = counts[0], failed = counts[1];
        System.err.println("versionfs: ran for " + ran + " version(s), " + failed + " failed");
        return failed == 0 ? ExitCodes.OK : ExitCodes.VERSIONS_LOST;
    }

    /** Runs the command for one version (streamed from the manifest, so a failure to start is unchecked). */
    private int runFor(String command, ManifestLine r) {
        ProcessBuilder pb = new ProcessBuilder("sh", "-c", command).inheritIO().redirectInput(new File("/dev/null"));
        pb.environment().put("VERSIONFS_PATH", dir.toAbsolutePath().resolve(String.valueOf(r.path())).toString());
        pb.environment().put("VERSIONFS_VERSION", Long.toString(r.version()));
        pb.environment().put("VERSIONFS_TARGET", String.valueOf(r.file()));
        try {
            return pb.start().waitFor();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new java.io.UncheckedIOException(new IOException("interrupted"));
        }
    }
}
