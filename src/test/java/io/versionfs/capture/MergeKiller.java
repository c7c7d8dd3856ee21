package io.versionfs.capture;

import io.versionfs.sys.Posix;

import java.nio.file.Path;

/**
 * Runs a merge of the node manifests in {@code args[0]} (for {@link ManifestMergeTest}) and dies
 * at once (Runtime.halt: no finally block, no cleanup, as SIGKILL) after its step number
 * {@code args[1]}; exits 3 if the merge ended first.
 */
public final class MergeKiller {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        int stopAt = Integer.parseInt(args[1]);
        int[] steps = {0};
        int fd = Posix.openDir(dir.toString());
        ManifestMerge.mergeFiles(fd, dir, NodeManifests.mark(dir), (step, what) -> {
            if (steps[0]++ == stopAt) Runtime.getRuntime().halt(9);
        });
        System.exit(3);
    }
}
