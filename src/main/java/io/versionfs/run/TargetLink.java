package io.versionfs.run;

import io.versionfs.sys.FileCopier;
import io.versionfs.capture.TargetMatcher;
import io.versionfs.capture.Targets;
import io.versionfs.capture.VersionNaming;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.fs.CaptureFs;
import io.versionfs.fs.FuseMount;
import io.versionfs.report.Json;
import io.versionfs.report.Log;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One target in symlink mode: its versions folder, its mount, and the symlink at the target path
 * that points into the mount. Owns the whole life of that symlink: putting it in place without
 * ever losing the user's file, noticing when the program renames or replaces it, and turning it
 * back into a regular file with the final content at the end, or after a crash, on the next run.
 */
final class TargetLink {

    final Path target;
    final String name;
    final VersionStore store;
    private Path mountPoint;
    private Path linkTarget;
    private int rootFd = -1;
    private CaptureFs fs;
    private FuseMount mount;
    private boolean linkInstalled;
    /** Set once prepareLive ran: restore and cleanup touch only what this run set up. */
    private boolean prepared;
    private boolean stateWritten;
    private volatile String lastStatus = "intact";
    private final List<String> problems = java.util.Collections.synchronizedList(new ArrayList<>());

    /**
     * Where the live file lives. The job's data must sit on the job's own disk, not on the
     * versions' disk: with the versions folder on the target's filesystem (the default) that is
     * the hidden folder inside it (hard-link captures, O(1)); with --versions-dir on another
     * filesystem it is a hidden folder beside the target, so a full versions disk costs versions
     * (copied, recorded lost when there is no room), never the job's own writes.
     */
    final Path liveDir;

    TargetLink(Path target, VersionStore store) {
        this.target = target;
        this.name = target.getFileName().toString();
        this.store = store;
        this.liveDir = sameFilesystem(target.getParent(), store.liveDirAccess()) ? store.liveDir()
                : target.getParent().resolve(LIVE_BESIDE);
    }

    /** Hidden folder beside the target for the live file when the versions folder is on another filesystem. */
    static final String LIVE_BESIDE = ".versionfs-live";

    private static boolean sameFilesystem(Path a, Path b) {
        try {
            return Files.getAttribute(a, "unix:dev").equals(Files.getAttribute(b, "unix:dev"));
        } catch (IOException | RuntimeException e) {
            return true;
        }
    }

    private Path stateFile() {
        // Written while a run owns the target; found by the next run if this one was killed.
        return store.dir().resolve(VersionStore.HIDDEN).resolve("run-" + name + ".json");
    }

    /**
     * The live file sits one folder down in the mount ({@code MOUNT/f/NAME}), and the symlink
     * points there. If versionfs is killed, the mount folder is left empty and {@code f/} does not
     * exist in it, so the job's next open of the target fails (ENOENT, even as root) instead of
     * silently creating a phantom file in a temp folder that Slurm wipes.
     */
    static final String LIVE_SUB = "f";

    private Path liveFile() {
        return liveDir.resolve(LIVE_SUB).resolve(name);
    }

    // ---- before the run ---------------------------------------------------------------------

    /** Recovers what an earlier, killed run left (stale mount, dangling symlink, live content). */
    void recoverEarlierRun() throws IOException {
        Path state = stateFile();
        if (!Files.exists(state)) {
            cleanTemps();
            return;
        }
        Map<String, Object> s;
        try {
            s = Json.parseObject(Files.readString(state));
        } catch (RuntimeException e) {
            s = Map.of();
        }
        long pid = s.get("pid") instanceof Long l ? l : -1;
        if (pid > 0 && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)
                && ProcessHandle.of(pid).flatMap(p -> p.info().commandLine()).map(c -> c.contains("versionfs")).orElse(false)) {
            throw new UserError(ExitCodes.VERSIONS_DIR, "another versionfs run (pid " + pid + ") is using " + store.dir()
                    + ": wait for it to finish, or give this run its own --versions-dir");
        }
        String oldMount = (String) s.get("mount");
        String oldLink = (String) s.get("link");
        if (oldMount != null) {
            Path mp = Path.of(oldMount);
            if (FuseMount.isStale(mp) || io.versionfs.fs.MountTable.fuseAt(mp) != null) FuseMount.lazyUnmount(mp);
            try {
                Files.deleteIfExists(mp);
                Files.deleteIfExists(mp.getParent());
            } catch (IOException e) {
                // not empty or not ours: leave it
            }
        }
        Path live = s.get("live") instanceof String l ? Path.of(l) : liveFile();
        // Every symlink the killed run's job left pointing into its mount: the target, and any
        // name the job renamed it to (job.ges after an ORCA AutoStart rename).
        List<Path> left = oldLink == null ? List.of() : symlinksTo(Path.of(oldLink));
        List<String> places = new ArrayList<>();
        if (Files.exists(live, LinkOption.NOFOLLOW_LINKS)) {
            if (!left.isEmpty()) {
                Path first = left.contains(target) ? target : left.get(0);
                for (Path p : left) {
                    if (p.equals(first)) continue;
                    copyFile(live, p);
                    places.add(p.toString());
                }
                // A live file that still shares its inode with its last version is copied, so the
                // version cannot change when the user edits the recovered file.
                if (((Number) Files.getAttribute(live, "unix:nlink", LinkOption.NOFOLLOW_LINKS)).intValue() > 1) {
                    copyFile(live, first);
                    Files.delete(live);
                } else {
                    Files.move(live, first, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                }
                places.add(0, first.toString());
                Log.warn("recovered the last content of " + name + " from an earlier versionfs run that was killed (pid "
                        + pid + ") into " + String.join(", ", places));
            } else {
                Path keep = store.dir().resolve(recoveredName());
                Files.move(live, keep);
                places.add(keep.toString());
                Log.warn("an earlier versionfs run (pid " + pid + ") was killed; its last content of " + name
                        + " is kept as " + keep + " (" + target + " was replaced meanwhile)");
            }
        } else {
            for (Path p : left) {
                Log.warn(p + " is a dangling symlink left by an earlier versionfs run (pid " + pid
                        + ") whose file was deleted; its versions are in " + store.dir() + ". Removing the symlink.");
                Files.deleteIfExists(p);
            }
        }
        store.event(Json.obj().put("event", "recovered").put("file", name).put("from_pid", pid).put("into", places)
                .put("time", io.versionfs.capture.Version.ISO_MILLIS.format(Instant.now())));
        cleanTemps();
        Files.deleteIfExists(state);
    }

    /** Symlinks in the target's folder that point at {@code link} (the target itself included). */
    private List<Path> symlinksTo(Path link) {
        List<Path> found = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(target.getParent())) {
            for (Path p : ds) {
                try {
                    if (Files.isSymbolicLink(p) && Files.readSymbolicLink(p).equals(link)) found.add(p);
                } catch (IOException e) {
                    // vanished meanwhile
                }
            }
        } catch (IOException e) {
            // unreadable folder: nothing found
        }
        found.sort((a, b) -> a.equals(target) ? -1 : b.equals(target) ? 1 : a.compareTo(b));
        return found;
    }

    private String recoveredName() {
        String stamp = Long.toString(System.currentTimeMillis() / 1000);
        String v = VersionNaming.versionName(name, 0);
        return v.replace(".000000", ".recovered-" + stamp);
    }

    private void cleanTemps() throws IOException {
        for (Path dir : List.of(store.liveDir(), liveDir, liveDir.resolve(LIVE_SUB))) {
            if (!Files.isDirectory(dir)) continue;
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, CaptureFs.TMP_PREFIX + "*")) {
                for (Path p : ds) Files.deleteIfExists(p);
            }
        }
    }

    /**
     * Makes the live file: the existing target's content (saved first as version 1, "initial",
     * by hard link: the user's original file is never modified or lost) or nothing.
     */
    void prepareLive() {
        prepared = true;
        Path live = liveFile();
        try {
            if (!liveDir.equals(store.liveDir())) {
                Files.createDirectories(liveDir, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                        java.nio.file.attribute.PosixFilePermissions.fromString("rwx------")));
            }
            Files.createDirectories(live.getParent());
            Files.deleteIfExists(live);
            if (!Files.exists(target, LinkOption.NOFOLLOW_LINKS)) return;
            try {
                // O(1) for any size: the live file starts as one more name of the user's file, and
                // once mounted that inode is saved as version 1 ("initial", CaptureFs.captureInitial)
                // and copied before the first modification (never, if the program rewrites it
                // from scratch, as ORCA does).
                Files.createLink(live, target);
            } catch (IOException | UnsupportedOperationException e) {
                copyFile(target, live); // versions folder on another filesystem
            }
        } catch (IOException e) {
            if (isNoSpace(e)) {
                throw new UserError(ExitCodes.NO_SPACE, "no space left to copy " + target + " into " + liveDir
                        + ": free space or quota there (or choose --versions-dir on another filesystem)");
            }
            throw new UserError(ExitCodes.VERSIONS_DIR, "cannot copy " + target + " into " + liveDir + ": " + e.getMessage());
        }
    }

    static boolean isNoSpace(IOException e) {
        String m = String.valueOf(e.getMessage());
        return m.contains("No space") || m.contains("quota");
    }

    /** Copies {@code from} to {@code to} via a temp name (reflink/copy_file_range when possible), keeping mode and mtime. */
    static void copyFile(Path from, Path to) throws IOException {
        Path tmp = to.resolveSibling(CaptureFs.TMP_PREFIX + to.getFileName() + ".copy");
        String err = FileCopier.copyAt(LibC.AT_FDCWD, from.toString(), LibC.AT_FDCWD, tmp.toString(), true, () -> false);
        if (err != null) throw new IOException(err);
        Files.setLastModifiedTime(tmp, Files.getLastModifiedTime(from));
        Files.move(tmp, to, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    // ---- mount and link ---------------------------------------------------------------------

    void mount(Path mountPoint) throws IOException {
        this.mountPoint = mountPoint;
        this.linkTarget = mountPoint.resolve(LIVE_SUB).resolve(name);
        rootFd = Posix.openDir(liveDir.toString());
        fs = new CaptureFs(rootFd, new Targets().addFile(LIVE_SUB + "/" + name, store, name));
        if (Files.exists(liveFile(), LinkOption.NOFOLLOW_LINKS)) fs.captureInitial(LIVE_SUB + "/" + name);
        fs.onNamespaceEvent(ev -> Log.warn(ev.replace(LIVE_SUB + "/" + name, target.toString()) + " inside the capture mount"));
        mount = FuseMount.mount(fs, mountPoint);
        stateWritten = true;
        Files.writeString(stateFile(), Json.obj().put("pid", ProcessHandle.current().pid()).put("target", target.toString())
                .put("link", linkTarget.toString()).put("mount", mountPoint.toString()).put("live", liveFile().toString())
                .put("started", io.versionfs.capture.Version.ISO_MILLIS.format(Instant.now())).toString(), StandardCharsets.UTF_8);
    }

    /** Atomically replaces the target (or its absence) by the symlink into the mount. */
    void installLink() throws IOException {
        Path tmp = target.resolveSibling("." + name + ".versionfs-link");
        Files.deleteIfExists(tmp);
        Files.createSymbolicLink(tmp, linkTarget);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        linkInstalled = true;
    }

    // ---- during the run ---------------------------------------------------------------------

    /** Where symlinks into our mount now are (normally just the target). */
    private List<Path> linksIntoMount() {
        List<Path> found = new ArrayList<>();
        if (isOurLink(target)) found.add(target);
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(target.getParent())) {
            for (Path p : ds) if (!p.equals(target) && isOurLink(p)) found.add(p);
        } catch (IOException e) {
            // folder unreadable: report what we know
        }
        return found;
    }

    private boolean isOurLink(Path p) {
        try {
            return Files.isSymbolicLink(p) && Files.readSymbolicLink(p).equals(linkTarget);
        } catch (IOException e) {
            return false;
        }
    }

    /** Checks the symlink; warns once per change of state. Cheap: called twice a second. */
    void check() {
        if (!linkInstalled) return;
        String status, what;
        if (isOurLink(target)) {
            status = "intact";
            what = null;
        } else {
            List<Path> moved = linksIntoMount();
            boolean replaced = Files.exists(target, LinkOption.NOFOLLOW_LINKS);
            if (!moved.isEmpty()) {
                status = "renamed";
                what = "renamed " + name + " to " + moved.get(0).getFileName()
                        + (replaced ? " and then wrote a new " + name + " directly" : "");
            } else if (replaced) {
                status = "replaced";
                what = "replaced " + name + " with a new file (temp file + rename?)";
            } else {
                status = "deleted";
                what = "deleted " + name;
            }
            status = status + (replaced ? "+new" : "");
        }
        if (!status.equals(lastStatus)) {
            lastStatus = status;
            if (what == null) return;
            String msg = "the program " + what + ": what it writes to " + target + " from now on is not versioned."
                    + " Fix: run with --mode dir" + (name.endsWith(".gbw") ? ", or add !NoAutoStart to the ORCA input" : "")
                    + " (README: 'Renames').";
            problems.add(msg);
            Log.warn(msg);
            store.event(Json.obj().put("event", "symlink-" + status.replace("+new", "")).put("file", name).put("detail", what)
                    .put("time", io.versionfs.capture.Version.ISO_MILLIS.format(Instant.now())));
        }
    }

    List<String> problems() {
        return List.copyOf(problems);
    }

    // ---- after the run ----------------------------------------------------------------------



    /** The job is being killed: nothing may stay blocked waiting for a copy in our filesystem. */
    void stopWaits() {
        if (fs != null) fs.stop();
    }

    /** Saves unclosed changes, finishes copies and unmounts. Safe to call if mount() never happened. */
    void finishCapture(long handleWaitMillis, long detachBudgetMillis) {
        if (mount == null) return;
        mount.finish(handleWaitMillis, detachBudgetMillis);
    }

    /**
     * Puts the final content back as regular files: at the target if the symlink is still there,
     * and at every place the program renamed the symlink to. If the program replaced or deleted
     * the target, the last content is kept in the versions folder instead.
     */
    void restore() throws IOException {
        if (!prepared) return;
        Path live = liveFile();
        if (linkInstalled) check();
        List<Path> links = linkInstalled ? linksIntoMount() : List.of();
        if (!Files.exists(live)) {
            for (Path p : links) Files.deleteIfExists(p); // the program deleted the file: so be it
        } else if (links.isEmpty()) {
            if (linkInstalled) {
                Path keep = store.dir().resolve(VersionNaming.versionName(name, 0).replace(".000000", ".final"));
                Files.move(live, keep, StandardCopyOption.REPLACE_EXISTING);
                problems.add("the last content the program wrote through versionfs is kept as " + keep);
            } else {
                // never linked (failed before): the target was never touched; drop our copy
                Files.deleteIfExists(live);
            }
        } else {
            for (int i = 1; i < links.size(); i++) copyFile(live, links.get(i));
            try {
                Files.move(live, links.get(0), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (java.nio.file.AtomicMoveNotSupportedException e) {
                copyFile(live, links.get(0));
                Files.delete(live);
            }
        }
        linkInstalled = false;
    }

    /** Releases the descriptor and removes the state file and mount point. */
    void cleanup(boolean restored) {
        if (rootFd >= 0) Posix.C.close(rootFd);
        rootFd = -1;
        try {
            // A failed restore keeps the record: the next run recovers from it.
            if (stateWritten && restored) Files.deleteIfExists(stateFile());
            if (!liveDir.equals(store.liveDir()) && Files.isDirectory(liveDir)) {
                try (DirectoryStream<Path> ds = Files.newDirectoryStream(liveDir.resolve(LIVE_SUB))) {
                    if (!ds.iterator().hasNext()) Files.delete(liveDir.resolve(LIVE_SUB));
                } catch (IOException e) {
                    // not there, or not empty
                }
                try (DirectoryStream<Path> ds = Files.newDirectoryStream(liveDir)) {
                    if (!ds.iterator().hasNext()) Files.delete(liveDir);
                }
            }
            if (mountPoint != null && io.versionfs.fs.MountTable.fuseAt(mountPoint) == null) Files.deleteIfExists(mountPoint);
        } catch (IOException e) {
            Log.debug("cleanup: " + e.getMessage());
        }
    }
}
