package io.versionfs.run;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;

/**
 * Checks that can refuse a run before anything is touched: targets (a regular file or nothing,
 * a name that fits, a folder that exists), the command, the options. Each failure is one line
 * with the cause and the fix, and its own exit code.
 */
final class Preflight {
    private Preflight() {}

    static List<Path> targets(List<Path> given, Path cwd) {
        List<Path> out = new ArrayList<>();
        for (Path g : given) {
            if (g.toString().isBlank()) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target is empty: give the path of the file the program"
                        + " overwrites (e.g. --target job.gbw)");
            }
        }
        for (Path g : expandGlobs(given, cwd)) {
            Path t = cwd.resolve(g).normalize();
            nameFits(t, g.toString());
            if (out.contains(t)) throw new UserError(ExitCodes.BAD_TARGET, "--target " + g + " is given twice");
            Path dir = t.getParent();
            if (dir == null || !Files.isDirectory(dir)) {
                throw new UserError(ExitCodes.BAD_TARGET, "the folder of --target " + g + " (" + dir
                        + ") does not exist: create it first, or fix the path");
            }
            if (!Files.isWritable(dir)) {
                throw new UserError(ExitCodes.BAD_TARGET, "the folder of --target " + g + " (" + dir
                        + ") is not writable: versionfs puts a symlink there; run from a folder you can write");
            }
            if (Files.isDirectory(t, LinkOption.NOFOLLOW_LINKS)) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target " + g + " is a directory: give the file the"
                        + " program overwrites (e.g. job.gbw)");
            }
            notSpecial(t, g.toString());
            out.add(t);
        }
        return out;
    }

    /**
     * In symlink mode a glob can only mean the files that exist now (a symlink must be put in
     * place before the job starts); files created later need --mode dir.
     */
    static List<Path> expandGlobs(List<Path> given, Path cwd) {
        List<Path> out = new ArrayList<>();
        for (Path g : given) {
            String name = g.getFileName() == null ? "" : g.getFileName().toString();
            // Literal names first: an existing file named job[1].gbw is that file, not a pattern.
            if (!io.versionfs.capture.TargetMatcher.isGlob(name) || Files.exists(cwd.resolve(g), LinkOption.NOFOLLOW_LINKS)) {
                out.add(g);
                continue;
            }
            Path dir = cwd.resolve(g).normalize().getParent();
            java.nio.file.PathMatcher m = dir.getFileSystem().getPathMatcher("glob:" + name);
            List<Path> found = new ArrayList<>();
            try (java.nio.file.DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
                for (Path p : ds) {
                    if (m.matches(p.getFileName()) && Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) found.add(p);
                }
            } catch (IOException e) {
                throw new UserError(ExitCodes.BAD_TARGET, "cannot list " + dir + " for --target " + g + ": " + e.getMessage());
            }
            if (found.isEmpty()) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target '" + g + "' matches no existing file: in the default"
                        + " symlink mode a pattern only covers files that exist when the job starts; use --mode dir"
                        + " to version files the job creates");
            }
            found.sort(null);
            out.addAll(found);
        }
        return out;
    }

    /** Room versionfs needs in a file name for its own suffixes (".NAME.versionfs-lock" is the longest). */
    static final int MAX_NAME_BYTES = 255 - ".versionfs-lock".length() - 1;

    static void nameFits(Path t, String given) {
        if (t.getFileName() == null) return;
        int n = t.getFileName().toString().getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
        if (n > MAX_NAME_BYTES) {
            throw new UserError(ExitCodes.BAD_TARGET, "--target " + (given.length() > 40 ? given.substring(0, 40) + "..." : given)
                    + ": file name too long (" + n + " bytes; versionfs adds suffixes such as .versions and needs it"
                    + " to be at most " + MAX_NAME_BYTES + "): use a shorter name");
        }
    }

    /** A target inside a versions folder (one with manifest.jsonl and .versionfs/) would version versionfs's own files. */
    static void notInsideAVersionsFolder(Path t) {
        for (Path d = t.getParent(); d != null; d = d.getParent()) {
            if (Files.isRegularFile(d.resolve("manifest.jsonl")) && Files.isDirectory(d.resolve(".versionfs"))) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target " + t + " is inside " + d + ", a versions folder of"
                        + " versionfs: give the file the program writes, not one of versionfs's own");
            }
        }
    }

    /**
     * The shell's working folder ($PWD) may be a dead FUSE mount of a killed directory-mode run
     * (its job still held the folder, so the automatic unmount failed): then this process cannot
     * even see its own working folder. Clear the dead mount and ask for a fresh start there.
     */
    static void workingFolderAlive(Path cwd) {
        String pwd = System.getenv("PWD");
        for (Path p : pwd == null ? List.of(cwd) : List.of(Path.of(pwd), cwd)) {
            if (io.versionfs.fs.FuseMount.isStale(p)) {
                io.versionfs.fs.FuseMount.lazyUnmount(p);
                throw new UserError(ExitCodes.MOUNT_FAILED, "the working folder " + p + " was a dead FUSE mount left by a"
                        + " versionfs run that was killed; it is cleared now: cd " + p + " again (a fresh shell) and rerun");
            }
        }
    }

    static void grace(long millis) {
        if (millis < 0) {
            throw new UserError(ExitCodes.USAGE, "--grace must be 0 or more seconds, not " + millis / 1000
                    + " (the time the job gets between TERM and KILL)");
        }
    }

    /** Only regular files are versioned: a FIFO, socket or device as target is refused up front. */
    static void notSpecial(Path t, String given) {
        if (!Files.exists(t, LinkOption.NOFOLLOW_LINKS) || Files.isSymbolicLink(t)) return;
        if (!Files.isRegularFile(t, LinkOption.NOFOLLOW_LINKS)) {
            String kind;
            try {
                Object mode = Files.getAttribute(t, "unix:mode", LinkOption.NOFOLLOW_LINKS);
                int fmt = ((Integer) mode) & 0170000;
                kind = switch (fmt) {
                    case 0010000 -> "a FIFO (named pipe)";
                    case 0140000 -> "a socket";
                    case 0020000 -> "a character device";
                    case 0060000 -> "a block device";
                    default -> "not a regular file";
                };
            } catch (IOException | RuntimeException e) {
                kind = "not a regular file";
            }
            throw new UserError(ExitCodes.BAD_TARGET, "--target " + given + " is " + kind + ": versionfs versions"
                    + " regular files only (give the file the program overwrites)");
        }
    }

    static void notASymlink(Path t) {
        if (Files.isSymbolicLink(t)) {
            String to;
            try {
                to = Files.readSymbolicLink(t).toString();
            } catch (IOException e) {
                to = "?";
            }
            if (to.matches(".*/\\.?versionfs-[^/]+/m[0-9]+/(f[0-9]*/)?" + java.util.regex.Pattern.quote(t.getFileName().toString()))
                    && !Files.exists(t)) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target " + t + " is a dangling symlink left by a versionfs run"
                        + " that was killed (it led into that run's mount, now gone): run again with the --versions-dir that"
                        + " run used, which recovers its last content, or remove the symlink (rm " + t + ")");
            }
            throw new UserError(ExitCodes.BAD_TARGET, "--target " + t + " is a symlink (to " + to
                    + "): give the real file's path instead");
        }
    }

    static void command(List<String> command) {
        if (command == null || command.isEmpty()) {
            throw new UserError(ExitCodes.USAGE, "no command to run: put it after --, e.g. versionfs run --target job.gbw -- orca job.inp");
        }
        String c = command.get(0);
        if (c.contains("/")) {
            Path p = Path.of(c);
            if (!Files.exists(p)) throw new UserError(ExitCodes.CHILD_NOT_FOUND, "command not found: " + c + " does not exist");
            if (Files.isDirectory(p) || !Files.isExecutable(p)) {
                throw new UserError(ExitCodes.CHILD_NOT_FOUND, "command " + c + " is not an executable file (chmod +x " + c + "?)");
            }
            return;
        }
        String path = System.getenv().getOrDefault("PATH", "");
        for (String d : path.split(":")) {
            if (d.isEmpty()) d = ".";
            Path p = Path.of(d, c);
            if (Files.isRegularFile(p) && Files.isExecutable(p)) return;
        }
        throw new UserError(ExitCodes.CHILD_NOT_FOUND, "command not found: '" + c + "' is not on PATH: give its full path"
                + " or load its module before versionfs");
    }

    /**
     * A fresh hidden folder only we can enter, in {@code folder} (a target's folder): where a
     * container that binds the working folder sees the mount. The leading dot keeps it out of
     * the job's globs ({@code *.gbw}, {@code ls}); it is removed at the end.
     */
    static Path privateDirBeside(Path folder) throws IOException {
        return Files.createTempDirectory(folder.toAbsolutePath(), "." + PRIVATE_PREFIX,
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
    }

    /** The private folder's name starts so (a dot before it beside a target). */
    static final String PRIVATE_PREFIX = "versionfs-";

    /** A fresh folder only we can enter, for the mount points. */
    static Path privateDir(Path mountDir) throws IOException {
        Path base = mountDir;
        if (base == null) {
            for (Path scratch : SlurmContext.current().scratchDirs()) {
                if (Files.isDirectory(scratch) && Files.isWritable(scratch)) {
                    base = scratch;
                    break;
                }
            }
            if (base == null) base = Path.of("/tmp");
        }
        if (!Files.isDirectory(base) || !Files.isWritable(base)) {
            throw new UserError(ExitCodes.MOUNT_FAILED, "--mount-dir " + base + " is not a writable folder: give one"
                    + " on a local disk (e.g. /tmp)");
        }
        return Files.createTempDirectory(base.toAbsolutePath(), PRIVATE_PREFIX,
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
    }
}
