package io.versionfs.run;

import io.versionfs.capture.Version;
import io.versionfs.capture.VersionLog;
import io.versionfs.sys.Sha256;
import io.versionfs.text.Bytes;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * Writes that reached a target without passing through versionfs's mount. A process in a mount
 * namespace made before the mount (rootless Podman's pause process, started by an earlier
 * {@code podman} of the same user on a node whose {@code /} is not a shared mount; any
 * {@code nsenter}/{@code unshare} made before the run) sees the folder underneath the mount and
 * writes the file there: nothing of it is a version, and the job itself ends well. At the end
 * the file on disk must be the last version versionfs saw; when it is not, that is said loudly
 * and counts as a loss for {@code --strict}.
 *
 * <p>Cheap when nothing happened: the file is read (hashed) only when its size differs or it was
 * modified after the last version was taken.
 */
final class WrittenBehind {
    private WrittenBehind() {}

    /**
     * The summary's line for {@code onDisk} (the target's file after the run), or null when it is
     * the last version. Not asked where the last close rightly has no version: closes skipped for
     * low space (--min-free), or a job on several nodes (the others' versions are not in this log).
     */
    static String check(Path onDisk, VersionLog.Snapshot versions) {
        Version last = lastSaved(versions);
        if (last == null || last.sha256() == null) return null;
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(onDisk, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            return null; // renamed away or deleted by the job: what the trap or the follow handled
        }
        if (!a.isRegularFile()) return null;
        boolean changedSince = a.lastModifiedTime().toInstant().isAfter(last.time);
        if (a.size() == last.size && !changedSince) return null;
        String sha;
        try {
            sha = a.size() == last.size ? Sha256.of(onDisk) : null;
        } catch (IOException | RuntimeException e) {
            return null;
        }
        if (sha != null && sha.equals(last.sha256())) return null;
        return "WRITTEN BEHIND THE MOUNT: " + onDisk + " on disk (" + Bytes.of(a.size()) + ", modified "
                + Version.ISO_MILLIS.format(a.lastModifiedTime().toInstant()) + ") is not the last version versionfs saw (#"
                + last.number + ", " + Bytes.of(last.size) + "): a process outside versionfs's mount wrote it directly"
                + " (a container in a mount namespace made before this run, e.g. rootless podman's pause process), and those"
                + " writes are NOT versions. Fix: start no podman before the run on this node (podman system migrate ends its"
                + " pause process), or run the container's writer inside the job";
    }

    /** The last version, if it was saved: after a lost one the file is rightly not the last saved (the loss is said already). */
    private static Version lastSaved(VersionLog.Snapshot s) {
        if (s == null || s.shown().isEmpty()) return null;
        Version last = s.shown().get(s.shown().size() - 1);
        return last.lost() ? null : last;
    }
}
