package io.versionfs.cli;

import io.versionfs.capture.Manifest;
import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.VersionNaming;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** What the commands that read a versions folder share: checking it is one, and naming a version in it. */
final class VersionsFolder {
    private VersionsFolder() {}

    /**
     * Refuses (exit 203, one line) what is not a versions folder with a readable manifest. A folder
     * a run has just made ({@code .versionfs} inside, no manifest line yet) has no versions yet, which
     * is an answer, not an error. A target file given instead of its folder is named in the fix.
     */
    static void require(Path d) {
        Path m = d.resolve(Manifest.FILE_NAME);
        if (Files.isRegularFile(m) && !Files.isReadable(m)) {
            throw new UserError(ExitCodes.VERSIONS_DIR, m + " is not readable by you: ask its owner, or check its mode");
        }
        if (Files.isRegularFile(m) || Files.isDirectory(d.resolve(".versionfs"))) return;
        Path folder = d.resolveSibling(VersionNaming.versionsFolderOf(String.valueOf(d.getFileName())));
        if (!Files.isDirectory(d) && Files.isDirectory(folder)) {
            throw new UserError(ExitCodes.VERSIONS_DIR, d + " is a versioned file, not its versions folder: give " + folder);
        }
        throw new UserError(ExitCodes.VERSIONS_DIR, d + " has no " + Manifest.FILE_NAME
                + ": give a versions folder (e.g. job.gbw.versions)");
    }

    /** The saved versions, one row each (latest status), in manifest order. */
    static List<ManifestLine> saved(Path d) throws IOException {
        return Manifest.read(d).stream().filter(ManifestLine::saved).toList();
    }

    /** The row of version {@code which}: a number, or "latest". */
    static ManifestLine pick(Path d, List<ManifestLine> saved, String which) {
        if (which.equals("latest")) {
            if (saved.isEmpty()) throw new UserError(ExitCodes.USAGE, d + " has no saved version");
            return saved.get(saved.size() - 1);
        }
        long n;
        try {
            n = Long.parseLong(which);
        } catch (NumberFormatException e) {
            throw new UserError(ExitCodes.USAGE, "a version is a number or 'latest', not '" + which + "'");
        }
        return saved.stream().filter(r -> r.version() == n).findFirst().orElseThrow(() ->
                new UserError(ExitCodes.USAGE, "version " + n + " is not a saved version in " + d + " (see: versionfs list " + d + ")"));
    }
}
