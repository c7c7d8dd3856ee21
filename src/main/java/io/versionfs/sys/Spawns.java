package io.versionfs.sys;

/**
 * One lock for starting processes while libfuse may fork. libfuse2 mounts by fork()ing
 * fusermount from native code without closing the parent's descriptors, and with auto_unmount
 * that fusermount lives as long as the mount. A Java process start that runs at the same moment
 * has its pipes open (the JDK waits on one of them until the new process has exec'ed): the
 * fusermount child inherits the pipe's write end, and the start never returns. Seen as a run with
 * --on-version that hung (1 in 12 runs): the hook of the initial version was being started while
 * the mount was made. Whoever forks natively (the mount) and whoever starts a process while the
 * mount may be made (hooks, srun, fusermount -u, any other) holds this lock for that moment:
 * every process versionfs starts goes through {@link #start}.
 */
public final class Spawns {
    public static final Object LOCK = new Object();

    private Spawns() {}

    /** {@code pb.start()}, never while the mount forks (see above). */
    public static Process start(ProcessBuilder pb) throws java.io.IOException {
        synchronized (LOCK) {
            return pb.start();
        }
    }
}
