package io.versionfs.cli;

import io.versionfs.capture.ManifestLine;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.sys.FileCopier;
import io.versionfs.sys.IoError;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;

/**
 * {@code versionfs restore DIR N [--to PATH]}: puts version N (or {@code latest}) back, checked
 * against its sha256 first, atomically (a complete temp file renamed into place), refusing to
 * overwrite a different existing file unless {@code --force}.
 */
@Command(name = "restore", mixinStandardHelpOptions = true,
        description = {"Write a version back: checked against its manifest sha256, then a temp file renamed into place.",
                "Example: versionfs restore job.gbw.versions 37 --to job.gbw --force   (restart from step 37)"})
final class RestoreCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "DIR", description = "Versions folder, e.g. job.gbw.versions")
    Path dir;

    @Parameters(index = "1", paramLabel = "N", arity = "0..1", description = "Version number as in the manifest, or 'latest'")
    String which;

    @Option(names = "--at", paramLabel = "TIME", description = "Instead of N: the last version saved at or before TIME"
            + " (ISO, e.g. 2026-11-25T09:20:00Z)")
    String at;

    @Option(names = "--to", paramLabel = "PATH", description = "Where to write it (default: the original file beside DIR)")
    Path to;

    @Option(names = "--force", description = "Overwrite PATH if it exists with other content")
    boolean force;

    @Override
    public Integer call() throws IOException {
        VersionsFolder.require(dir);
        ManifestLine row;
        if (at != null) {
            java.time.Instant t;
            try {
                t = java.time.Instant.parse(at);
            } catch (RuntimeException e) {
                throw new UserError(ExitCodes.USAGE, "--at takes an ISO time such as 2026-11-25T09:20:00Z, not '" + at + "'");
            }
            row = VersionsFolder.atOrBefore(dir, t, at);
        } else if (which == null) {
            throw new UserError(ExitCodes.USAGE, "give a version number, 'latest', or --at TIME");
        } else {
            row = VersionsFolder.pick(dir, which);
        }
        Path src = dir.resolve(String.valueOf(row.path()));
        String want = String.valueOf(row.sha256());
        if (!Files.isRegularFile(src)) throw new UserError(ExitCodes.VERSIONS_LOST, src + " is missing (see: versionfs verify " + dir + ")");
        if (!want.equals(VerifyCommand.sha256(src))) {
            throw new UserError(ExitCodes.VERSIONS_LOST, src + " does not match its manifest sha256: damaged, not restored");
        }
        Path dest = to != null ? to : defaultTarget(row);
        if (Files.isDirectory(dest)) dest = dest.resolve(String.valueOf(row.file()));
        if (Files.exists(dest, LinkOption.NOFOLLOW_LINKS) && !force && !want.equals(VerifyCommand.sha256(dest))) {
            throw new UserError(ExitCodes.BAD_TARGET, dest + " exists with other content: give --force to overwrite it,"
                    + " or --to another path");
        }
        Path tmp = dest.resolveSibling("." + dest.getFileName() + ".versionfs-restore");
        IoError err = FileCopier.copyAt(LibC.AT_FDCWD, src.toString(), LibC.AT_FDCWD, tmp.toString(), true, () -> false);
        if (err != null) {
            throw new UserError(err.noSpace() ? ExitCodes.NO_SPACE : ExitCodes.BAD_TARGET, "cannot write " + tmp + ": " + err
                    + (err.noSpace() ? " (free space or quota there, or give --to on another filesystem)" : ""));
        }
        // Versions are read-only; the restored file is the user's to write again.
        var st = Stat.at(LibC.AT_FDCWD, tmp.toString(), LibC.AT_SYMLINK_NOFOLLOW);
        if (st != null) Posix.C.fchmodat(LibC.AT_FDCWD, tmp.toString(), (Stat.mode(st) & 07777) | 0200, 0);
        Files.move(tmp, dest, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.println("restored version " + row.version() + " of " + row.file() + " to " + dest
                + " (sha256 " + want.substring(0, 12) + "... checked)");
        return ExitCodes.OK;
    }

    /** DIR is NAME.versions beside NAME by default. */
    private Path defaultTarget(ManifestLine row) {
        Path abs = dir.toAbsolutePath().normalize();
        return abs.resolveSibling(String.valueOf(row.file()));
    }
}
