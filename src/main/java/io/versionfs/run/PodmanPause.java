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

    /**
     * The user's pause process, -1 when none is alive. Its pid file is under podman's runtime
     * folder, which depends on $XDG_RUNTIME_DIR and $TMPDIR and is pinned in podman's database at
     * its first use; so the process itself is looked for: ours, named "podman pause".
     */
    static long pausePid() {
        int me = Posix.C.geteuid();
        try (var procs = Files.newDirectoryStream(Path.of("/proc"), p -> p.getFileName().toString().matches("[0-9]+"))) {
            for (Path p : procs) {
                try {
                    if (!"podman pause".equals(Files.readString(p.resolve("comm"), StandardCharsets.UTF_8).trim())) continue;
                    if (((Number) Files.getAttribute(p, "unix:uid")).intValue() != me) continue;
                    return Long.parseLong(p.getFileName().toString());
                } catch (IOException | RuntimeException e) {
                    // gone meanwhile
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }

    /** As mountinfo writes a path: space, tab, newline and backslash in octal. */
    private static String escaped(String p) {
        return p.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012");
    }
}
