package io.versionfs.fs;

import io.versionfs.capture.CaptureRule;
import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.VersionNaming;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Log;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import jnr.ffi.Pointer;
import jnr.ffi.Struct;
import ru.serce.jnrfuse.struct.FuseFileInfo;
import ru.serce.jnrfuse.struct.FuseOperations;

import java.io.File;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * What versionfs needs from FUSE beyond jnr-fuse's API: the checks that FUSE can work here (made
 * before anything is touched, naming the fix when it cannot), the bits of libfuse's structs that
 * jnr-fuse does not expose, and the warm-up of the first request's code path.
 *
 * <p>The device path and PATH lookups can be overridden by system properties so tests can
 * simulate a machine without FUSE ({@code versionfs.devFuse}, {@code versionfs.path}).
 */
public final class FuseSupport {
    private FuseSupport() {}

    // ---- struct bits jnr-fuse does not expose -----------------------------------------------

    /**
     * Sets flag_nullpath_ok (bit 0 of the flags word after the operations): with hard_remove, a
     * file unlinked while open keeps working through its handle, and libfuse passes a null path
     * instead of failing. jnr-fuse declares the flag word's bytes as padding, whose offset() is
     * not public API.
     */
    static void allowNullPaths(FuseOperations ops) {
        try {
            Object pad = FuseOperations.class.getField("flag_nullpath_ok").get(ops);
            Struct.getMemory(ops).putByte(offsetOf(pad), (byte) 1);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("jnr-fuse's FuseOperations layout changed", e);
        }
    }

    /**
     * Asks the kernel for direct_io on this open (struct fuse_file_info: the direct_io bit is bit 0
     * of the word after flags, fh_old and writepage; checked against jnr-fuse's offset of fh).
     * No-op on a layout we do not know.
     */
    static void directIo(FuseFileInfo fi) {
        if (DIRECT_IO_BYTE < 0) return;
        Pointer mem = Struct.getMemory(fi);
        mem.putByte(DIRECT_IO_BYTE, (byte) (mem.getByte(DIRECT_IO_BYTE) | 1));
    }

    private static final long DIRECT_IO_BYTE = directIoByte();

    private static long directIoByte() {
        try {
            FuseFileInfo probe = FuseFileInfo.of(jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), 64));
            // int flags; unsigned long fh_old; int writepage; unsigned bits; uint64_t fh (LP64)
            return offsetOf(probe.fh) == 24 ? 20 : -1;
        } catch (Exception | Error e) {
            return -1;
        }
    }

    /** The offset of a jnr struct member (its offset() is not public API). */
    private static long offsetOf(Object member) throws ReflectiveOperationException {
        for (Class<?> k = member.getClass(); k != null; k = k.getSuperclass()) {
            for (Method m : k.getDeclaredMethods()) {
                if (m.getName().equals("offset") && m.getParameterCount() == 0) {
                    m.setAccessible(true);
                    return ((Number) m.invoke(member)).longValue();
                }
            }
        }
        throw new NoSuchMethodException("offset");
    }

    // ---- warm-up -----------------------------------------------------------------------------

    /**
     * Loads and links what the first write and the first capture use, on a low-priority thread
     * right after the mount is up: otherwise the program's first close() after a write pays it
     * (class loading, jnr's binding of fuse_buf_copy, the copier threads, lambdas, the time
     * formatter): 17-23 ms measured for the first close of a fresh mount against about 1 ms for
     * the next ones, which made the worst close of a benchmark run. Pure functions only: no file
     * is touched, nothing is recorded ({@code rootFd} is only stat'ed).
     */
    static void warmUp(int rootFd) {
        try {
            ClassLoader cl = FuseSupport.class.getClassLoader();
            for (String c : new String[] {"io.versionfs.sys.FuseBufs", "io.versionfs.fs.LiveFile", "io.versionfs.fs.Cow",
                    "io.versionfs.fs.Cow$Linked", "io.versionfs.fs.Separation", "io.versionfs.fs.Handle",
                    "io.versionfs.fs.CopyJob", "io.versionfs.sys.FileCopier", "io.versionfs.capture.VersionLog",
                    "io.versionfs.capture.Version$Status", "io.versionfs.capture.VersionStore$Captured",
                    "io.versionfs.capture.GiveWay$Droppable", "io.versionfs.capture.Hasher$Hashed",
                    "java.util.concurrent.ForkJoinPool"}) {
                Class.forName(c, true, cl);
            }
            FileId.of(Stat.of(rootFd));
            CaptureRule.atClose(1, 1, 0, true);
            VersionNaming.versionName("warm-up.dat", 1);
            Caller.commandLine((int) ProcessHandle.current().pid());
            ManifestLine.event("warm-up").file("warm-up.dat").pid(1).build().toJson(); // Gson adapters, time formatter
        } catch (Throwable t) {
            Log.debug("warm-up: " + t); // only ever costs the first close its few milliseconds
        }
    }

    // ---- can FUSE work here ------------------------------------------------------------------

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
