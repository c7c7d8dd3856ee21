package io.versionfs.run;

import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.VersionNaming;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.fs.CaptureFs;
import io.versionfs.fs.FuseMount;
import io.versionfs.text.Json;
import io.versionfs.text.Log;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What an earlier run on this target left when it was killed (SIGKILL, the OOM killer, a node
 * crash), put right before this run touches anything: its dead mount cleared, every symlink its
 * job left pointing into that mount turned into a regular file with the content it led to, and
 * the job's files that no symlink led to kept in the versions folder under names that say why
 * ({@code recovered}, {@code in-flight}). Found through the recovery record the killed run wrote
 * ({@code TargetLink.writeState}); a record whose run is still alive refuses this run instead.
 */
final class EarlierRun {
    private final Path target;
    private final String name;
    private final VersionStore store;
    /** This run's live folder and live file: where a record too old to name them looked. */
    private final Path liveDir, live;

    EarlierRun(Path target, VersionStore store, Path liveDir, Path live) {
        this.target = target;
        this.name = target.getFileName().toString();
        this.store = store;
        this.liveDir = liveDir;
        this.live = live;
    }

    /**
     * Recovers what the run recorded in {@code state} left, if that run was killed (stale mount,
     * dangling symlinks, live content), removes temp files of ours, and deletes the record.
     */
    void recover(Path state) throws IOException {
        if (Files.exists(state)) recover(KilledRun.read(state, liveDir, live));
        cleanTemps();
        Files.deleteIfExists(state);
    }

    /** What a run wrote in its recovery record ({@code TargetLink.writeState}), as far as it can be read. */
    private record KilledRun(long pid, Path mount, Path liveDir, Path live) {
        static KilledRun read(Path state, Path liveDir, Path live) throws IOException {
            Map<String, Object> s;
            try {
                s = Json.parseObject(Files.readString(state));
            } catch (RuntimeException e) {
                s = Map.of();
            }
            Path recordedLive = s.get("live") instanceof String l ? Path.of(l) : null;
            return new KilledRun(s.get("pid") instanceof Long p ? p : -1,
                    s.get("mount") instanceof String m ? Path.of(m) : null,
                    s.get("live_dir") instanceof String d ? Path.of(d)
                            : recordedLive != null ? recordedLive.getParent().getParent() : liveDir,
                    recordedLive != null ? recordedLive : live);
        }

        /** The recorded run is still alive (the record is not a killed run's: it is in use). */
        boolean running() {
            // Our own pid is an earlier run in a pid namespace (a container: the JVM is pid 1 each time).
            return pid > 0 && pid != ProcessHandle.current().pid() && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)
                    && ProcessHandle.of(pid).flatMap(p -> p.info().commandLine()).map(c -> c.contains("versionfs")).orElse(false);
        }
    }

    private void recover(KilledRun killed) throws IOException {
        if (killed.running()) {
            throw new UserError(ExitCodes.VERSIONS_DIR, "another versionfs run (pid " + killed.pid() + ") is using " + store.dir()
                    + ": wait for it to finish, or give this run its own --versions-dir");
        }
        if (killed.mount() != null) clearMount(killed.mount());
        List<String> places = new ArrayList<>();
        // Every symlink the killed run's job left pointing into its mount (the target, and any
        // name the job renamed it to: job.ges after an ORCA AutoStart rename) becomes a regular
        // file with the content of the file it led to.
        if (killed.mount() != null) {
            for (Map.Entry<Path, List<Path>> e : LinkedFiles.symlinksInto(killed.mount(), killed.liveDir(), target.getParent(), target).entrySet()) {
                putBackAfterKill(e.getKey(), e.getValue(), killed.pid(), places);
            }
        }
        keepUnreached(killed, places);
        keepInFlight(killed.liveDir(), places);
        store.event(ManifestLine.event("recovered").file(name).fromPid(killed.pid()).into(places));
    }

    /** A killed run's mount is gone or dead by now (auto_unmount): clear what is left of it. */
    private static void clearMount(Path mp) {
        if (FuseMount.isStale(mp) || io.versionfs.fs.MountTable.fuseAt(mp) != null) FuseMount.lazyUnmount(mp);
        try {
            Files.deleteIfExists(mp);
            Files.deleteIfExists(mp.getParent());
        } catch (IOException e) {
            // not empty or not ours: leave it
        }
    }

    /** The file a killed run's symlinks led to becomes a regular file at their places (or they go, if it is gone). */
    private void putBackAfterKill(Path backing, List<Path> links, long pid, List<String> places) throws IOException {
        if (!Files.exists(backing, LinkOption.NOFOLLOW_LINKS)) {
            for (Path p : links) {
                Log.warn(p + " is a dangling symlink left by an earlier versionfs run (pid " + pid
                        + ") whose file was deleted; its versions are in " + store.dir() + ". Removing the symlink.");
                Files.deleteIfExists(p);
            }
            return;
        }
        // A killed run's live file may still share its inode with its last version: then copy,
        // so the version cannot change when the user edits the recovered file.
        Object dev = Files.getAttribute(backing, "unix:dev", LinkOption.NOFOLLOW_LINKS);
        Object ino = Files.getAttribute(backing, "unix:ino", LinkOption.NOFOLLOW_LINKS);
        boolean sharesVersion = store.isLatestVersion(name, ((Number) dev).longValue(), ((Number) ino).longValue());
        LinkedFiles.putInPlace(backing, links, sharesVersion);
        for (Path p : links) places.add(p.toString());
    }

    /** A killed run's live file that no symlink leads to any more (the program replaced the target) is kept. */
    private void keepUnreached(KilledRun killed, List<String> places) throws IOException {
        if (Files.exists(killed.live(), LinkOption.NOFOLLOW_LINKS)) {
            Path keep = store.dir().resolve(VersionNaming.keptName(name, "recovered"));
            Files.move(killed.live(), keep);
            places.add(keep.toString());
            Log.warn("an earlier versionfs run (pid " + killed.pid() + ") was killed; its last content of " + name
                    + " is kept as " + keep + " (" + target + " was replaced meanwhile)");
        } else if (!places.isEmpty()) {
            Log.warn("recovered the last content of " + name + " from an earlier versionfs run that was killed (pid "
                    + killed.pid() + ") into " + String.join(", ", places));
        }
    }

    /**
     * Whatever a killed run left in its live folders that no symlink led to (a file between two
     * steps of a rename onto or away from the target, a generation not yet linked): the job's
     * data, so it is kept in the versions folder and named. Our own temp copies are not.
     */
    private void keepInFlight(Path oldLiveDir, List<String> places) throws IOException {
        if (!Files.isDirectory(oldLiveDir)) return;
        try (DirectoryStream<Path> subs = Files.newDirectoryStream(oldLiveDir, TargetLink.LIVE_SUB + "*")) {
            for (Path sub : subs) {
                if (!Files.isDirectory(sub, LinkOption.NOFOLLOW_LINKS)) continue;
                try (DirectoryStream<Path> ds = Files.newDirectoryStream(sub, p -> !p.getFileName().toString().startsWith(CaptureFs.TMP_PREFIX))) {
                    for (Path p : ds) {
                        if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) continue;
                        Path keep = store.dir().resolve(VersionNaming.keptName(name, "in-flight-" + places.size()));
                        Files.move(p, keep);
                        places.add(keep.toString());
                        Log.warn("an earlier versionfs run was killed while it renamed a file of the job onto or away from "
                                + name + ": that file is kept as " + keep);
                    }
                }
                if (!sub.getFileName().toString().equals(TargetLink.LIVE_SUB)) LinkedFiles.deleteIfEmpty(sub);
            }
        }
    }

    private void cleanTemps() throws IOException {
        for (Path dir : List.of(store.liveDir(), liveDir, liveDir.resolve(TargetLink.LIVE_SUB))) {
            if (!Files.isDirectory(dir)) continue;
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, CaptureFs.TMP_PREFIX + "*")) {
                for (Path p : ds) Files.deleteIfExists(p);
            }
        }
    }
}
