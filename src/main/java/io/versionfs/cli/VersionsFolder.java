package io.versionfs.cli;

import io.versionfs.capture.LatestRows;
import io.versionfs.capture.Manifest;
import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.VersionNaming;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

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

    /** Hands {@code each} the saved versions, one row each (latest status), in manifest order: streamed, constant memory. */
    static void eachSaved(Path d, Consumer<ManifestLine> each) throws IOException {
        LatestRows.each(d, skip -> System.err.println("versionfs: warning: " + d.resolve(Manifest.FILE_NAME) + " " + skip
                + ": skipped"), r -> {
            if (r.saved()) each.accept(r);
        });
    }

    /** The row of version {@code which}: a number, or "latest". */
    static ManifestLine pick(Path d, String which) throws IOException {
        long n = which.equals("latest") ? -1 : number(which);
        ManifestLine[] found = new ManifestLine[1];
        eachSaved(d, r -> {
            if (n < 0 || (r.version() == n && found[0] == null)) found[0] = r;
        });
        if (found[0] != null) return found[0];
        if (n < 0) throw new UserError(ExitCodes.USAGE, d + " has no saved version");
        throw new UserError(ExitCodes.USAGE, "version " + n + " is not a saved version in " + d + " (see: versionfs list " + d + ")");
    }

    /** The last version saved at or before {@code t} (rows without a time are passed over). */
    static ManifestLine atOrBefore(Path d, java.time.Instant t, String asGiven) throws IOException {
        ManifestLine[] found = new ManifestLine[1];
        eachSaved(d, r -> {
            if (r.instant() != null && !r.instant().isAfter(t)) found[0] = r;
        });
        if (found[0] == null) throw new UserError(ExitCodes.USAGE, "no version of " + d + " was saved at or before " + asGiven);
        return found[0];
    }

    private static long number(String which) {
        try {
            return Long.parseLong(which);
        } catch (NumberFormatException e) {
            throw new UserError(ExitCodes.USAGE, "a version is a number or 'latest', not '" + which + "'");
        }
    }
}
