package io.versionfs.run;

import io.versionfs.sys.Posix;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Rootless Podman keeps one "pause" process per user and node, holding the user and mount
 * namespaces every later {@code podman} of that user joins. One started before this run (the
 * user ran podman earlier on the node) has a copy of the mounts as they were then; unless
 * {@code /} is a shared mount, versionfs's mount never reaches it, and the job's containers see
 * the folder underneath. Asked of the pause process itself once the mounts are up, before the
 * job starts: does its mount table have them?
 */
final class PodmanPause {
    private PodmanPause() {}

    /** The warning to print before the job starts, or null (no pause process, or it sees every mount). */
    static String blindTo(List<Path> mountPoints) {
        long pid = pausePid();
        if (pid <= 0 || mountPoints.isEmpty()) return null;
        String table;
        try {
            table = Files.readString(Path.of("/proc/" + pid + "/mountinfo"), StandardCharsets.UTF_8);
        } catch (IOException | RuntimeException e) {
            return null; // gone, or not ours to read
        }
        List<Path> unseen = new ArrayList<>();
        for (Path mp : mountPoints) if (!table.contains(" " + escaped(mp.toString()) + " ")) unseen.add(mp);
        if (unseen.isEmpty()) return null;
        return "rootless podman's pause process (pid " + pid + ") was started before this run, and its mount namespace,"
                + " which this job's containers join, does not have versionfs's mount (" + unseen.get(0) + "; '/' is not a"
                + " shared mount on this node): in the container the target leads nowhere, and in --mode dir its writes go"
                + " past versionfs. Fix: put 'podman system migrate' (ends the pause process, and any container of yours"
                + " still running on this node) before 'versionfs run' in the batch script";
    }

    /** $XDG_RUNTIME_DIR/libpod/tmp/pause.pid, else /tmp/podman-run-UID/libpod/tmp/pause.pid; -1 when there is none alive. */
    static long pausePid() {
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        Path file = xdg != null && !xdg.isEmpty() ? Path.of(xdg, "libpod/tmp/pause.pid")
                : Path.of("/tmp/podman-run-" + Posix.C.geteuid(), "libpod/tmp/pause.pid");
        try {
            long pid = Long.parseLong(Files.readString(file, StandardCharsets.UTF_8).trim());
            return ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false) ? pid : -1;
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** As mountinfo writes a path: space, tab, newline and backslash in octal. */
    private static String escaped(String p) {
        return p.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012");
    }
}
