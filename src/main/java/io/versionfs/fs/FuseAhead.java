package io.versionfs.fs;

import io.versionfs.capture.Targets;
import io.versionfs.sys.Posix;
import io.versionfs.text.Log;

/**
 * Gets what every mount needs ready on a second thread while the main thread parses the command
 * line and checks (a start's first ~0.4 s of CPU, on one core of two): jnr-ffi's runtime and its
 * native stub, the libc binding, jnr-fuse's callback classes and libfuse's session calls that
 * {@link FuseLoop} serves with. jnr-ffi generates one class per callback type (33 for
 * {@link CaptureFs}) and keeps it for the JVM's life, so the filesystem the run makes later only
 * binds its own instance. The filesystem made here is never mounted and
 * touches nothing (no descriptor, no file). This shortens the wall time of a start, not its CPU.
 *
 * <p>Everything here would run at the start anyway, on the main thread; a failure here (no
 * libfuse) is left for the checks to find and say.
 */
public final class FuseAhead {
    private FuseAhead() {}

    /** Starts the preparation; returns at once. */
    public static void start() {
        Thread t = new Thread(FuseAhead::prepare, "versionfs-ahead");
        t.setDaemon(true);
        t.start();
    }

    private static void prepare() {
        try {
            Posix.C.getpid();
            new CaptureFs(-1, new Targets());
            io.versionfs.sys.FuseSession.allocate(8); // binds libfuse's session calls (FuseLoop)
        } catch (Throwable t) {
            Log.debug("preparing the mount ahead: " + t);
        }
    }
}
