package io.versionfs.fs;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.sys.Posix;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Checks that FUSE can work here before anything is touched, and names the fix when it cannot.
 * The device path and PATH lookups can be overridden by system properties so tests can simulate a
 * machine without FUSE ({@code versionfs.devFuse}, {@code versionfs.path}).
 */
public final class FuseSupport {
    private FuseSupport() {}

    public static void check() {
        Path dev = devFuse();
        if (!Files.exists(dev)) {
            throw new UserError(ExitCodes.NO_FUSE, dev + " does not exist: FUSE is not available on this node."
                    + " Ask the admins to load the fuse kernel module (modprobe fuse), or run on a node that has it.");
        }
        if (!Files.isReadable(dev) || !Files.isWritable(dev)) {
            throw new UserError(ExitCodes.NO_FUSE, "no read/write access to " + dev
                    + ": ask the admins to make it usable by users (chmod 0666 " + dev + ", as on most distributions).");
        }
        if (fusermount().isEmpty()) {
            throw new UserError(ExitCodes.NO_FUSE, "fusermount was not found on PATH: install it"
                    + " (Debian/Ubuntu: apt-get install fuse3; RHEL: dnf install fuse) or ask the admins to.");
        }
        if (libfuseLoadError() != null) {
            throw new UserError(ExitCodes.NO_FUSE, "libfuse2 (libfuse.so.2) could not be loaded: install it"
                    + " (Debian/Ubuntu: apt-get install libfuse2; RHEL: dnf install fuse-libs).");
        }
    }

    /** The FUSE device ({@code versionfs.devFuse} overrides it for tests). */
    public static Path devFuse() {
        return Path.of(System.getProperty("versionfs.devFuse", "/dev/fuse"));
    }

    /** Null if libfuse2 loads (as jnr-fuse loads it), else why not. */
    public static String libfuseLoadError() {
        try {
            Class.forName("jnr.ffi.LibraryLoader");
            jnr.ffi.LibraryLoader.create(ru.serce.jnrfuse.LibFuse.class).failImmediately().load("fuse");
            return null;
        } catch (Throwable t) {
            return String.valueOf(t.getMessage());
        }
    }

    /** fusermount (libfuse2 runs it by this name), or fusermount3 as a last resort for unmounting. */
    public static Optional<Path> fusermount() {
        Optional<Path> p = onPath("fusermount");
        return p.isPresent() ? p : onPath("fusermount3");
    }

    public static Optional<Path> onPath(String name) {
        String path = System.getProperty("versionfs.path", System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
        for (String dir : path.split(File.pathSeparator)) {
            if (dir.isEmpty()) continue;
            Path c = Path.of(dir, name);
            if (Files.isExecutable(c)) return Optional.of(c);
        }
        return Optional.empty();
    }

    public static boolean isRoot() {
        return Posix.C.getuid() == 0;
    }
}
