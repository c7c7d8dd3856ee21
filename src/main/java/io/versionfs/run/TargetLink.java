package io.versionfs.run;

import io.versionfs.sys.Errno;
import io.versionfs.sys.IoError;
import io.versionfs.sys.FileCopier;
import io.versionfs.capture.Targets;
import io.versionfs.capture.VersionNaming;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.fs.CaptureFs;
import io.versionfs.fs.FuseMount;
import io.versionfs.capture.ManifestLine;
import io.versionfs.text.Json;
import io.versionfs.text.Log;
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
 * back into a regular file with the final content at the end (after a crash, on the next run:
 * {@link EarlierRun}).
 */
final class TargetLink {

    final Path target;
    final String name;
    final VersionStore store;
    private Path mountPoint;
    private volatile Path linkTarget;
    /** Follow a rename-away or delete of the target by putting the symlink back (default on). */
    private final boolean follow;
    /** Each follow moves the live file to a new name in the mount: f/NAME, f1/NAME, f2/NAME, ... */
    private int generation;
    private Targets targets;
    private final List<String> followed = java.util.Collections.synchronizedList(new ArrayList<>());
    private volatile long versionsAtFirstFollow = -1;
    /** Symlinks the program renamed away, still to be turned into regular files (once nobody has them open). */
    private final List<Path> toMaterialize = new ArrayList<>();
    private volatile int unseenChanges;
    private volatile boolean ending;
    private java.nio.file.WatchService watch;
    private Thread watchThread;
    private int rootFd = -1;
    private CaptureFs fs;
    private FuseMount mount;
    private boolean linkInstalled;
    /** Set once prepareLive ran: restore and cleanup touch only what this run set up. */
    private boolean prepared;
    private boolean stateWritten;
    /** What the follow mode last saw at the name (said once per change); the trap reads the name afresh each call. */
    private volatile LinkState lastSeen = LinkState.SERVED;
    private final List<String> problems = java.util.Collections.synchronizedList(new ArrayList<>());
    /** A job on several nodes: mounted coherent with the agents' mounts of the same live file (see FuseMount). */
    boolean acrossNodes;

    /**
     * Where the live file lives. The job's data must sit on the job's own disk, not on the
     * versions' disk: with the versions folder on the target's filesystem (the default) that is
     * the hidden folder inside it (hard-link captures, O(1)); with --versions-dir on another
     * filesystem it is a hidden folder beside the target, so a full versions disk costs versions
     * (copied, recorded lost when there is no room), never the job's own writes.
     */
    final Path liveDir;

    TargetLink(Path target, VersionStore store, boolean follow) {
        this.follow = follow;
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
        return liveDir.resolve(liveRel());
    }

    /** The live file's name in the mount for the current generation. */
    private String liveRel() {
        return (generation == 0 ? LIVE_SUB : LIVE_SUB + generation) + "/" + name;
    }

    // ---- before the run ---------------------------------------------------------------------

    /** Recovers what an earlier, killed run left (stale mount, dangling symlink, live content). */
    void recoverEarlierRun() throws IOException {
        new EarlierRun(target, store, liveDir, liveFile()).recover(stateFile());
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
                LinkedFiles.copyFile(target, live); // versions folder on another filesystem
            }
        } catch (IOException e) {
            if (Errno.isNoSpace(e)) {
                throw new UserError(ExitCodes.NO_SPACE, "no space left to copy " + target + " into " + liveDir
                        + ": free space or quota there (or choose --versions-dir on another filesystem)");
            }
            throw new UserError(ExitCodes.VERSIONS_DIR, "cannot copy " + target + " into " + liveDir + ": " + e.getMessage());
        }
    }

    // ---- mount and link ---------------------------------------------------------------------

    Path mountPoint() {
        return mountPoint;
    }

    /** What an agent on another node serves for this target: the same mount point path and live file. */
    AgentPlan.Serve serve() {
        var hooks = store.hooks();
        return new AgentPlan.Serve(store.dir(), liveDir, liveRel(), name, mountPoint, target,
                hooks == null ? null : hooks.command(), hooks == null ? 1 : hooks.jobs());
    }

    void mount(Path mountPoint) throws IOException {
        this.mountPoint = mountPoint;
        this.linkTarget = mountPoint.resolve(liveRel());
        rootFd = Posix.openDir(liveDir.toString());
        targets = new Targets().addFile(liveRel(), store, name);
        fs = new CaptureFs(rootFd, targets);
        if (Files.exists(liveFile(), LinkOption.NOFOLLOW_LINKS)) fs.captureInitial(liveRel());
        fs.onNamespaceEvent(ev -> Log.warn(ev.replaceAll(LIVE_SUB + "[0-9]*/" + java.util.regex.Pattern.quote(name),
                java.util.regex.Matcher.quoteReplacement(target.toString())) + " inside the capture mount"));
        // entry_timeout=0: the trap removes and replaces the live name in-process (never through
        // the mount), so the kernel must not answer a lookup of it from its cache.
        mount = acrossNodes ? FuseMount.mountAcrossNodes(fs, mountPoint, "") : FuseMount.mount(fs, mountPoint, ",entry_timeout=0");
        openFolder();
        writeState();
    }

    /** The recovery record: where the mount, the live file and its symlink are (updated at each follow). */
    private void writeState() throws IOException {
        stateWritten = true;
        Path tmp = stateFile().resolveSibling(stateFile().getFileName() + ".tmp");
        Files.writeString(tmp, Json.obj().put("pid", ProcessHandle.current().pid()).put("target", target.toString())
                .put("link", linkTarget.toString()).put("mount", mountPoint.toString()).put("live", liveFile().toString())
                .put("live_dir", liveDir.toString())
                .put("started", io.versionfs.capture.Version.ISO_MILLIS.format(Instant.now())).toString(), StandardCharsets.UTF_8);
        Files.move(tmp, stateFile(), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
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

    private boolean isOurLink(Path p) {
        try {
            return Files.isSymbolicLink(p) && Files.readSymbolicLink(p).equals(linkTarget);
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * Watches the target's folder with inotify (the JDK's WatchService), so a rename or delete of
     * the symlink is followed within milliseconds; the 0.5 s poll of {@link #check} stays as a
     * backstop.
     */
    void startWatching() {
        try {
            watch = target.getParent().getFileSystem().newWatchService();
            target.getParent().register(watch, java.nio.file.StandardWatchEventKinds.ENTRY_CREATE,
                    java.nio.file.StandardWatchEventKinds.ENTRY_DELETE, java.nio.file.StandardWatchEventKinds.ENTRY_MODIFY);
        } catch (IOException e) {
            Log.debug("no inotify watch on " + target.getParent() + ": " + e.getMessage() + " (polling only)");
            return;
        }
        watchThread = new Thread(() -> {
            try {
                while (!Thread.currentThread().isInterrupted()) {
                    java.nio.file.WatchKey key = watch.take();
                    boolean ours = false;
                    for (java.nio.file.WatchEvent<?> ev : key.pollEvents()) {
                        Object ctx = ev.context();
                        if (ctx != null && ctx.toString().equals(name)) {
                            ours = true;
                            if (ev.kind() == java.nio.file.StandardWatchEventKinds.ENTRY_MODIFY && !isOurLink(target)) unseenChanges++;
                        } else if (ev.kind() == java.nio.file.StandardWatchEventKinds.ENTRY_CREATE) {
                            ours = true; // a rename shows up as the new name's creation
                        }
                    }
                    key.reset();
                    if (ours) check();
                }
            } catch (InterruptedException | java.nio.file.ClosedWatchServiceException e) {
                // stopped
            }
        }, "versionfs-inotify");
        watchThread.setDaemon(true);
        watchThread.start();
    }

    /** Stops the watch and waits for a check in progress to finish. */
    void stopWatching() {
        ending = true;
        try {
            if (watch != null) watch.close();
            if (watchThread != null) watchThread.join(5_000);
        } catch (IOException | InterruptedException e) {
            // best effort
        }
    }

    /**
     * Checks the symlink. By default a rename-away or delete of the target is followed: the
     * symlink is put back (the program's next create goes through versionfs again, same series)
     * and a renamed symlink becomes a regular file with the content it led to. What cannot be
     * followed (the target replaced by a real file) is said once per change of state.
     */
    synchronized void check() {
        if (!linkInstalled) return;
        dropRetired(false); // a name retired by the job's last name call goes 2 s later, not at its next one
        try {
            materializePending();
        } catch (IOException e) {
            Log.debug("materialize: " + e.getMessage());
        }
        // The job moved the target's folder: nothing to put back at the old path (restore puts
        // the final file where the folder is now).
        if (!pathNow(folderFd, target.getParent()).equals(target.getParent())) return;
        if (isOurLink(target)) {
            lastSeen = LinkState.SERVED;
            return;
        }
        boolean exists = Files.exists(target, LinkOption.NOFOLLOW_LINKS);
        // Only symlinks to the file the target stands for now: one renamed away earlier and not yet
        // made a regular file (materializePending waits for a quiet second) is not this rename.
        List<Path> moved = new ArrayList<>(LinkedFiles.symlinksInto(mountPoint, liveDir, target.getParent(), target).getOrDefault(liveFile(), List.of()));
        moved.remove(target);
        if (follow && !exists && !ending && mount != null && mount.isAlive()) {
            try {
                followAway(moved);
                return;
            } catch (IOException | RuntimeException e) {
                Log.warn("could not follow the " + (moved.isEmpty() ? "deletion" : "rename") + " of " + target + ": " + e.getMessage());
            }
        }
        boolean raceLost = follow && exists && !moved.isEmpty() && !lastSeen.renamed();
        if (raceLost) {
            try {
                followLost(moved);
            } catch (IOException | RuntimeException e) {
                Log.debug("follow-too-late: " + e.getMessage());
            }
        }
        LinkState seen = LinkState.observe(false, false, exists, !moved.isEmpty());
        String what = switch (seen) {
            case RENAMED, RENAMED_NEW -> "renamed " + name + " to " + moved.get(0).getFileName() + (exists ? " and created a new " + name
                    + (follow ? " before versionfs could put its link back" : " directly") : "");
            case REPLACED -> "replaced " + name + " with a new file (temp file + rename?)";
            default -> "deleted " + name;
        };
        if (exists) noticeRealFile();
        if (seen != lastSeen) {
            lastSeen = seen;
            String msg = "the program " + what + ": what it writes to " + target + " from now on is "
                    + (follow && exists ? "saved only when noticed (writes may be missed)." : "not versioned.")
                    + " Fix: run with --mode dir" + (name.endsWith(".gbw") ? ", or add !NoAutoStart to the ORCA input" : "")
                    + (follow ? "" : ", or drop --no-follow") + " (README: 'Renames').";
            problems.add(msg);
            if (follow && exists) onlyNoticed = true;
            else notVersioned = true;
            Log.warn(msg);
            store.event(ManifestLine.event(seen.eventName()).file(name).detail(what));
        }
    }

    /**
     * The program renamed the target away (or deleted it). The old live file leaves the series
     * (its content is now the renamed file's), a new live name is made in the mount, and the
     * symlink is put back at the target pointing to it: all O(1), so the program's next create
     * of the target (usually much later) goes through versionfs. symlink(2) fails harmlessly if
     * the program was faster and created a real file there: then that is said, and the file is
     * versioned by copy when noticed.
     */
    private void followAway(List<Path> moved) throws IOException {
        String what = moved.isEmpty() ? "deleted " + name : "renamed " + name + " to " + moved.get(0).getFileName();
        // The old live name leaves the series for good: what it holds is now the renamed file's,
        // and a later open of it (job.ges rewritten through its symlink) must not make versions
        // of the target.
        targets.removeFile(liveRel());
        fs.leaveSeries(liveRel(), what);
        if (versionsAtFirstFollow < 0) versionsAtFirstFollow = versionsSoFar();
        generation++;
        Files.createDirectories(liveFile().getParent());
        targets.addFile(liveRel(), store, name);
        linkTarget = mountPoint.resolve(liveRel());
        boolean back;
        try {
            Files.createSymbolicLink(target, linkTarget);
            back = true;
        } catch (java.nio.file.FileAlreadyExistsException e) {
            back = false;
        }
        writeState();
        store.event(ManifestLine.event(back ? "followed" : "follow-too-late").file(name).detail(what));
        if (back) {
            followed.add(what);
            lastSeen = LinkState.EMPTY;
            Log.info("the program " + what + ": followed, " + target + " is versioned on (same series)");
        } else {
            String msg = "the program " + what + " and created a new " + name + " before versionfs could put its link back:"
                    + " what it writes there is saved only when noticed (writes may be missed). Fix: --mode dir"
                    + (name.endsWith(".gbw") ? ", or !NoAutoStart in the ORCA input" : "") + " (README: 'Renames').";
            problems.add(msg);
            Log.warn(msg);
            lastSeen = LinkState.REPLACED;
            noticeRealFile();
        }
        synchronized (toMaterialize) {
            toMaterialize.addAll(moved);
        }
        try {
            materializePending();
        } catch (IOException e) {
            // e.g. no room for the copy yet: the symlink works meanwhile, retried at the next check and at the end
            Log.debug("materialize later: " + e.getMessage());
        }
    }

    /**
     * The program renamed the target away and created a new one before the symlink could go back
     * (a race lost): the renamed file still leaves the series and becomes a regular file; the
     * real file at the target name is versioned by copy when noticed.
     */
    private void followLost(List<Path> moved) throws IOException {
        String what = "renamed " + name + " to " + moved.get(0).getFileName();
        targets.removeFile(liveRel());
        fs.leaveSeries(liveRel(), what);
        generation++; // the old live file is the renamed one's now; nothing lives at the new name yet
        linkTarget = mountPoint.resolve(liveRel());
        writeState();
        store.event(ManifestLine.event("follow-too-late").file(name).detail(what));
        synchronized (toMaterialize) {
            toMaterialize.addAll(moved);
        }
        try {
            materializePending();
        } catch (IOException e) {
            Log.debug("materialize later: " + e.getMessage());
        }
    }

    private long versionsSoFar() {
        var v = store.versions().get(name);
        return v == null ? 0 : v.total();
    }

    /**
     * Renamed symlinks become regular files holding what they led to, once no program has that
     * file open through the mount (a reader that opened it keeps reading the same data; a writer
     * keeps writing where it reads). What is left at the end is done by restore.
     */
    private void materializePending() throws IOException {
        synchronized (toMaterialize) {
            for (var it = toMaterialize.iterator(); it.hasNext(); ) {
                Path p = it.next();
                Path to;
                try {
                    if (!Files.isSymbolicLink(p)) {
                        it.remove();
                        continue;
                    }
                    to = Files.readSymbolicLink(p);
                } catch (IOException e) {
                    it.remove();
                    continue;
                }
                if (!to.startsWith(mountPoint)) {
                    it.remove();
                    continue;
                }
                String rel = mountPoint.relativize(to).toString();
                if (fs.openHandlesOn(rel) > 0 || (!ending && !quietFor(p, 1_000))) continue;
                Path backing = liveDir.resolve(rel);
                if (Files.exists(backing, LinkOption.NOFOLLOW_LINKS)) replaceLinkByCopy(p, to, backing);
                it.remove();
            }
        }
    }

    /**
     * Puts a copy of {@code backing} at {@code p} only if {@code p} is still the symlink to
     * {@code to}: the job runs on meanwhile and may have put its own file there (rename onto it),
     * which must never be overwritten. The copy is swapped in (RENAME_EXCHANGE) and what came out
     * is checked: our symlink is deleted; anything else is swapped back, and kept if even that
     * raced.
     */
    private void replaceLinkByCopy(Path p, Path to, Path backing) throws IOException {
        Path tmp = p.resolveSibling(CaptureFs.TMP_PREFIX + p.getFileName() + ".copy");
        IoError err = FileCopier.copyAt(LibC.AT_FDCWD, backing.toString(), LibC.AT_FDCWD, tmp.toString(), true, () -> false);
        if (err != null) throw err.thrown();
        Files.setLastModifiedTime(tmp, Files.getLastModifiedTime(backing));
        Object copyKey = Files.readAttributes(tmp, java.nio.file.attribute.BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        if (Posix.C.renameat2(LibC.AT_FDCWD, tmp.toString(), LibC.AT_FDCWD, p.toString(), 2 /* RENAME_EXCHANGE */) != 0) {
            Files.deleteIfExists(tmp); // no exchange here (or p vanished): leave the symlink, restore does it at the end
            return;
        }
        if (isLinkTo(tmp, to)) {
            Files.delete(tmp);
            return;
        }
        // The job had replaced the symlink: give its file back.
        Posix.C.renameat2(LibC.AT_FDCWD, tmp.toString(), LibC.AT_FDCWD, p.toString(), 2);
        Object now = Files.readAttributes(tmp, java.nio.file.attribute.BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        if (copyKey.equals(now)) {
            Files.delete(tmp);
        } else {
            Path keep = store.dir().resolve(VersionNaming.keptName(name, "raced"));
            Files.move(tmp, keep);
            Log.warn(p + " changed twice while versionfs replaced its symlink: one of its contents is kept as " + keep);
        }
    }

    /**
     * Whether the name has not been renamed or changed for {@code millis} (its ctime): a job that
     * renames in a tight loop is left alone (its symlink reads right) until it pauses or ends, so
     * the swap below cannot show its reader a moment of an older file.
     */
    private static boolean quietFor(Path p, long millis) {
        try {
            java.nio.file.attribute.FileTime c = (java.nio.file.attribute.FileTime) Files.getAttribute(p, "unix:ctime", LinkOption.NOFOLLOW_LINKS);
            return System.currentTimeMillis() - c.toMillis() >= millis;
        } catch (IOException | RuntimeException e) {
            return true;
        }
    }

    private static boolean isLinkTo(Path p, Path to) {
        try {
            return Files.isSymbolicLink(p) && Files.readSymbolicLink(p).equals(to);
        } catch (IOException e) {
            return false;
        }
    }

    /** The target is a real file the program wrote past us: save what it holds now, once per change. */
    private String lastNoticed;

    private void noticeRealFile() {
        if (!follow) return; // --no-follow: as before following existed, warn only
        // The file, not the name: an atomic save (from another node, or with the trap off) may put
        // a new file at the name while we copy; the one we hold stays whole, and is a version.
        int fd = Posix.C.openat(LibC.AT_FDCWD, target.toString(), LibC.O_RDONLY | LibC.O_CLOEXEC | LibC.O_NOFOLLOW
                | LibC.O_NONBLOCK, 0);
        if (fd < 0) return; // a symlink (ELOOP), gone, or not readable: nothing to notice
        try {
            Path held = Path.of("/proc/self/fd/" + fd);
            if (!Files.isRegularFile(held)) return;
            String stamp = stamp(held);
            if (stamp.equals(lastNoticed)) return;
            // The program writes this file without us: copy it only once it has been still for a
            // second (or at the end, when the job is gone), and drop the copy if it changed meanwhile.
            long age = System.currentTimeMillis() - Files.getLastModifiedTime(held).toMillis();
            if (!ending && age < 1000) return;
            VersionStore.Captured c = store.copyFromFd(fd, name, "noticed");
            if (!stamp.equals(stamp(held))) {
                if (!c.version().lost()) store.room().giveUp(c.version(), "changed while being copied (written outside versionfs)");
                return;
            }
            lastNoticed = stamp;
        } catch (IOException e) {
            Log.debug("notice " + target + ": " + e.getMessage());
        } finally {
            Posix.C.close(fd);
        }
    }

    /** Size, mtime and identity of the file {@code held} leads to (/proc/self/fd/N: followed). */
    private static String stamp(Path held) throws IOException {
        var a = Files.readAttributes(held, java.nio.file.attribute.PosixFileAttributes.class);
        return a.size() + "@" + a.lastModifiedTime().to(java.util.concurrent.TimeUnit.NANOSECONDS) + "@" + a.fileKey();
    }

    // ---- the job's name calls, held by the trap (NameTrap) ------------------------------------
    //
    // Each runs on the trap's one supervisor thread while the calling job thread waits, so calls
    // on target names are done one at a time, in the order the job made them (and under this
    // object's lock, so the follow check never sees a half-done change).
    //
    // Never through our own mount: a daemon thread waiting on its own filesystem can never be
    // killed (if versionfs is SIGKILLed meanwhile, the thread stays in D state holding
    // /dev/fuse: the mount, and everything touching the target, hangs). So each call acts on
    // the backing folder and tells CaptureFs in-process; and since the kernel may still cache
    // the old live name (a dentry, attributes, pages), every change of what the target is moves
    // it to a fresh generation name (f/NAME, f1/NAME, ...): the symlink is swapped to a name the
    // kernel has never seen. Every step keeps the job's data at a name: the job's own, the live
    // file's, or, after a crash between two steps, one that the next run's recovery keeps.

    /** Names in the live folder for files passing through (recovery keeps whatever is left in the live folders). */
    static final String AWAY = ".versionfs-away-";
    /** A second mount name of the live file, for a hard link the job made of the target (a symlink leads to it). */
    static final String ALIAS = ".versionfs-link-";
    /** Each hard link the job made of the target: its mount name, and the symlink made for it (put in place at the end wherever it is). */
    private final Map<Path, Path> aliases = new java.util.concurrent.ConcurrentHashMap<>();
    private final java.util.concurrent.atomic.AtomicInteger passing = new java.util.concurrent.atomic.AtomicInteger();
    /** A rename away waits at most this long for the copy that separates the live file from its last version. */
    private static final long DETACH_IN_CALL_MILLIS = 600_000;
    private int folderFd = -1;
    private io.versionfs.trap.Inode folderId, liveDev;

    /** The target's folder, by identity (the trap matches names by folder inode, not by path). */
    io.versionfs.trap.Inode folderId() {
        return folderId;
    }

    private void openFolder() throws IOException {
        folderFd = Posix.C.openat(LibC.AT_FDCWD, target.getParent().toString(), O_PATH | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        if (folderFd < 0) throw new IOException("cannot open " + target.getParent() + ": " + Posix.strerror(Posix.errno()));
        folderId = inodeOf(folderFd);
        liveDev = inodeOf(rootFd);
    }

    private static final int O_PATH = 0x200000;

    private static io.versionfs.trap.Inode inodeOf(int fd) {
        var st = io.versionfs.sys.Stat.of(fd);
        return st == null ? null : new io.versionfs.trap.Inode(io.versionfs.sys.Stat.dev(st), io.versionfs.sys.Stat.ino(st));
    }

    private boolean liveExists() {
        return io.versionfs.sys.Stat.at(rootFd, liveRel(), LibC.AT_SYMLINK_NOFOLLOW) != null;
    }

    /** The name as it is now (creates through the mount are not calls the trap sees). */
    private LinkState now() {
        return isOurLink(target) ? (liveExists() ? LinkState.SERVED : LinkState.EMPTY) : LinkState.observe(false, false,
                Files.exists(target, LinkOption.NOFOLLOW_LINKS), false);
    }

    /**
     * 0 when {@code e} may happen to the name now; else what the call returns: -errno, or
     * {@link io.versionfs.trap.NameTrap#PROCEED} when the name is not ours (the follow mode
     * handles what the kernel then does).
     */
    private int refusal(LinkState.Event e) {
        int r = now().refusal(e);
        return r == 0 ? 0 : r < 0 ? io.versionfs.trap.NameTrap.PROCEED : -r;
    }

    private static int errno() {
        return -Posix.errno();
    }

    private static int exdev(io.versionfs.trap.Name n, io.versionfs.trap.Inode dev) {
        return n.parent().dev() != dev.dev() ? Errno.EXDEV.negated() : 0;
    }

    /** The live file's name in generation {@code g}. */
    private String liveRel(int g) {
        return (g == 0 ? LIVE_SUB : LIVE_SUB + g) + "/" + name;
    }

    /** Makes the next generation's folder; its name is the live name once {@link #useGeneration} swaps the symlink. */
    private int newGeneration() {
        int g = generation + 1;
        String dir = liveRel(g).substring(0, liveRel(g).indexOf('/'));
        if (Posix.C.mkdirat(rootFd, dir, 0700) != 0 && Posix.errno() != Errno.EEXIST.code) return errno();
        targets.addFile(liveRel(g), store, name);
        return g;
    }

    /**
     * The target is generation {@code g} from now on: a name in the mount the kernel has never
     * looked up (so no cached page of an older file can be read through it), the symlink swapped
     * to it in one rename. The old name stays a target name: a process that resolved the
     * symlink just before (or kept a realpath) still reaches a file, whose writes are versions.
     */
    private int useGeneration(int g) {
        int e = swapTo(g);
        if (e != 0) {
            Log.warn("could not point " + target + " to its new live file (" + Posix.strerror(-e) + "): it is kept in "
                    + liveDir.resolve(liveRel(g)) + " and put in the versions folder at the end");
        }
        return e;
    }

    /** Swaps the symlink to generation {@code g}'s name in one rename and retires the old name; -errno if it could not. */
    private int swapTo(int g) {
        String old = liveRel();
        Path to = mountPoint.resolve(liveRel(g));
        String tmp = "." + name + ".versionfs-link";
        Posix.C.unlinkat(folderFd, tmp, 0);
        if (Posix.C.symlinkat(to.toString(), folderFd, tmp) != 0 || Posix.C.renameat(folderFd, tmp, folderFd, name) != 0) {
            int e = errno();
            Posix.C.unlinkat(folderFd, tmp, 0);
            return e;
        }
        generation = g;
        linkTarget = to;
        retire(old);
        return 0;
    }

    /** Old generation names, removed once no process can still be on its way to them (2 s after they were replaced). */
    private final java.util.ArrayDeque<Object[]> retired = new java.util.ArrayDeque<>();
    private static final long RETIRE_AFTER_NANOS = 2_000_000_000L;

    private void retire(String rel) {
        retired.add(new Object[] {rel, System.nanoTime()});
        dropRetired(false);
    }

    /** Removes retired names whose time is up (all, at the end); what someone wrote there since is kept (restore). */
    private void dropRetired(boolean all) {
        for (Object[] r; (r = retired.peek()) != null && (all || System.nanoTime() - (long) r[1] > RETIRE_AFTER_NANOS); ) {
            retired.poll();
            String rel = (String) r[0];
            fs.unlink("/" + rel, new CaptureFs.OnBehalf(0, name, null), null);
            targets.removeFile(rel); // one rule per generation would make every lookup longer (a job deleting its file 100,000 times)
            dropGenerationFolderIfEmpty(rel);
        }
    }

    private void dropGenerationFolderIfEmpty(String rel) {
        String dir = rel.substring(0, rel.indexOf('/'));
        if (!dir.equals(LIVE_SUB)) Posix.C.unlinkat(rootFd, dir, LibC.AT_REMOVEDIR); // ENOTEMPTY: still has a name
    }

    /**
     * The file now at generation {@code g}'s name becomes the target: one version of exactly it
     * (taken before the symlink leads anyone there, so no other process's write can slip into
     * it), then the swap.
     */
    private int arrive(int g, String reason, String from, int tid, boolean writtenOutside) {
        boolean hadLive = liveExists();
        fs.arrived(liveRel(g), reason, new CaptureFs.OnBehalf(tid, from, name, writtenOutside));
        int r = useGeneration(g);
        if (r == 0 && hadLive) store.event(ManifestLine.event("replaced").file(name).by(from).pid(tid));
        return r;
    }

    /** rename(src, target): src becomes the target's content, one version (reason "rename"). */
    int renameOnto(io.versionfs.trap.Name src, boolean noReplace, int tid) {
        return renameOnto(src, noReplace, tid, false);
    }

    /** {@code fromAnotherMount}: the file was another target's, which the job may still write through that target's mount. */
    private synchronized int renameOnto(io.versionfs.trap.Name src, boolean noReplace, int tid, boolean fromAnotherMount) {
        int refused = refusal(noReplace ? LinkState.Event.LINKED_ONTO : LinkState.Event.RENAMED_ONTO); // NOREPLACE: as link
        if (refused == 0) refused = exdev(src, liveDev);
        if (refused != 0) return refused;
        if (src.kind() == io.versionfs.trap.Name.Kind.SYMLINK) return renameAliasOnto(src, tid);
        // A descriptor still open for writing lets the job change this inode without us: its
        // versions are then copies (CaptureFs sees foreign hard links itself).
        boolean writtenOutside = fromAnotherMount
                || src.entry().inode() != null && io.versionfs.trap.OpenFiles.writableByJob(tid, src.entry().inode());
        int g = newGeneration();
        if (g < 0) return g;
        // Moved, not copied: exactly the file the job named, O(1), never deleted by us.
        if (Posix.C.renameat(src.parentFd(), src.base(), rootFd, liveRel(g)) != 0) return errno();
        arrive(g, "rename", src.shown(), tid, writtenOutside);
        return held(Held.RENAMED_ONTO, 0);
    }

    /**
     * A hard link the job made of the target (our symlink to a second mount name) renamed back
     * onto the target: as on a plain filesystem, nothing happens when both are the same file;
     * otherwise that file is the target again (one version) and the link's name is gone.
     * Any other symlink renamed onto the target is left to the kernel (it replaces our link).
     */
    private int renameAliasOnto(io.versionfs.trap.Name src, int tid) {
        Path to = readLink(src);
        if (to == null || !aliases.containsKey(to)) return io.versionfs.trap.NameTrap.PROCEED;
        String alias = mountPoint.relativize(to).toString();
        if (inoAt(alias) < 0) return io.versionfs.trap.NameTrap.PROCEED;
        if (fs.sameFile(alias, liveRel())) return 0; // two names of one file: rename(2) does nothing
        int g = newGeneration();
        if (g < 0) return g;
        if (Posix.C.linkat(rootFd, alias, rootFd, liveRel(g), 0) != 0) return errno();
        if (Posix.C.unlinkat(src.parentFd(), src.base(), 0) != 0) {
            int e = errno();
            Posix.C.unlinkat(rootFd, liveRel(g), 0);
            return e;
        }
        aliases.remove(to);
        fs.unlink("/" + alias, new CaptureFs.OnBehalf(tid, src.shown(), null), null);
        arrive(g, "rename", src.shown(), tid, false);
        return held(Held.RENAMED_ONTO, 0);
    }

    /** The backing inode number at {@code rel} in the live folder, -1 if nothing is there. */
    private long inoAt(String rel) {
        var st = io.versionfs.sys.Stat.at(rootFd, rel, LibC.AT_SYMLINK_NOFOLLOW);
        return st == null ? -1 : io.versionfs.sys.Stat.ino(st);
    }

    private static Path readLink(io.versionfs.trap.Name n) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd/" + n.parentFd()).resolve(n.base()));
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /** rename(target, dst): dst gets the live file itself (O(1)); the target name is left empty. */
    synchronized int renameAway(io.versionfs.trap.Name dst, boolean noReplace, int tid) {
        int refused = refusal(LinkState.Event.RENAMED_AWAY);
        if (refused == 0) refused = exdev(dst, liveDev);
        if (refused == 0 && noReplace && dst.exists()) refused = Errno.EEXIST.negated();
        if (refused != 0) return refused;
        String rel = liveRel();
        // First out of the series (no close from now on links a new version to it), then
        // separated from the versions it has (a close in flight finishes first): once outside
        // the mount the job writes this inode directly, and it must not be a version's.
        var series = fs.leaveSeries(rel);
        if (!fs.detach(rel, DETACH_IN_CALL_MILLIS)) {
            Log.warn(dst.shown() + " (renamed from " + target + ") still shares its storage with the last version of " + name
                    + " (the copy that separates them failed): writing it directly would change that version");
            store.event(ManifestLine.event("shares-inode").file(name).to(dst.shown()).why("the copy at the rename failed"));
        }
        // The name is simply absent afterwards: the mount caches no entry (entry_timeout=0), so
        // the job's next create of the target is a create at this same live name.
        int r = fs.moveOut(rel, dst.parentFd(), dst.base(), noReplace, series, new CaptureFs.OnBehalf(tid, name, dst.shown()));
        if (r != 0) {
            fs.rejoin(rel, series);
            return r;
        }
        lastAwayTo = dst.shown();
        return held(Held.RENAMED_AWAY, 0);
    }

    /** rename(this target, other target): the content moves on as the other's new version. */
    int renameOnto(TargetLink other, boolean noReplace, int tid) {
        String tmp = "." + other.name + ".versionfs-from-" + passing.incrementAndGet();
        int fd = Posix.C.openat(other.folderFd, ".", O_PATH | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        if (fd < 0) return errno();
        try (var between = new io.versionfs.trap.Name(fd, other.folderId, tmp, null, other.target.toString())) {
            if (noReplace && other.now() != LinkState.EMPTY) return Errno.EEXIST.negated();
            int r = renameAway(between, true, tid);
            if (r != 0) return r;
            var st = io.versionfs.sys.Stat.at(fd, tmp, LibC.AT_SYMLINK_NOFOLLOW);
            var entry = st == null ? null : new io.versionfs.trap.Name.Entry(io.versionfs.trap.Name.Kind.FILE,
                    new io.versionfs.trap.Inode(io.versionfs.sys.Stat.dev(st), io.versionfs.sys.Stat.ino(st)), io.versionfs.sys.Stat.nlink(st));
            r = other.renameOnto(new io.versionfs.trap.Name(fd, other.folderId, tmp, entry, target.toString()), false, tid, true);
            if (r != 0) Log.warn("the job renamed " + target + " onto " + other.target + ", which failed (" + Posix.strerror(-r)
                    + "): its content is kept as " + other.target.resolveSibling(tmp));
            return r;
        }
    }

    /** link(other target, this target) onto this empty name: other's file is this target's too (a version of it, a copy). */
    synchronized int linkOnto(TargetLink from, int tid) {
        int refused = refusal(LinkState.Event.LINKED_ONTO);
        if (refused != 0) return refused;
        if (from.now() != LinkState.SERVED) return from.now().ours() ? Errno.ENOENT.negated() : io.versionfs.trap.NameTrap.PROCEED;
        if (!from.liveDev.equals(liveDev) && from.liveDev.dev() != liveDev.dev()) return Errno.EXDEV.negated();
        int g = newGeneration();
        if (g < 0) return g;
        if (Posix.C.linkat(from.rootFd, from.liveRel(), rootFd, liveRel(g), 0) != 0) return errno();
        arrive(g, "link", from.name, tid, true);
        return held(Held.LINKED_ONTO, 0);
    }

    /**
     * unlink(target): the name is left empty by moving the target on to a fresh generation whose
     * name does not exist yet (the symlink swapped to it); the live file's old name is retired
     * like a replaced one (removed 2 s later; open descriptors keep the file after that).
     *
     * <p>Not removed at once: the kernel looks a name up and opens it in two FUSE calls, so
     * another process of the job may have looked the live name up just before this unlink and
     * be on its way to open it. On a plain disk that open gets the file it looked up, whatever
     * happens to the name meanwhile; a name removed under it made its open fail with ENOENT
     * (even an open with O_CREAT, which never fails so on a plain disk), a write of the job lost.
     * What it writes through the retired name is versioned like any close.
     */
    synchronized int unlinkTarget(int tid) {
        int refused = refusal(LinkState.Event.UNLINKED);
        if (refused != 0) return refused;
        int g = newGeneration();
        int r = g < 0 ? g : swapTo(g);
        if (r == 0) {
            store.event(ManifestLine.event("unlink").file(name).pid(tid));
        } else {
            if (g >= 0) targets.removeFile(liveRel(g));
            Log.debug("unlink of " + target + ": no fresh name (" + Posix.strerror(-r) + "): the live name is removed at once");
            r = fs.unlink("/" + liveRel(), new CaptureFs.OnBehalf(tid, name, null), "unlink");
            if (r != 0) return r;
        }
        return held(Held.UNLINKED, 0);
    }

    /**
     * link(target, dst): a second name of the same file, as link(2) makes. The target's inode
     * lives in the mount, so the new name is a symlink to a second mount name of the live file
     * (CaptureFs keeps one file with two names, so a write by either is one file's write, and a
     * later replace, rename or delete of the target leaves dst its file); at the end both names
     * become regular files sharing the inode.
     */
    synchronized int linkOut(io.versionfs.trap.Name dst, int tid) {
        if (now() != LinkState.SERVED) return now().ours() ? Errno.ENOENT.negated() : io.versionfs.trap.NameTrap.PROCEED;
        if (dst.exists()) return Errno.EEXIST.negated();
        int refused = exdev(dst, liveDev);
        if (refused != 0) return refused;
        String alias = liveRel().substring(0, liveRel().indexOf('/') + 1) + ALIAS + passing.incrementAndGet();
        int r = fs.link("/" + liveRel(), "/" + alias);
        if (r != 0) return r;
        Path aliasInMount = mountPoint.resolve(alias);
        if (Posix.C.symlinkat(aliasInMount.toString(), dst.parentFd(), dst.base()) != 0) {
            int e = errno();
            fs.unlink("/" + alias, new CaptureFs.OnBehalf(tid, name, null), null);
            return e;
        }
        aliases.put(aliasInMount, pathNow(dst.parentFd(), Path.of(dst.shown()).toAbsolutePath().getParent()).resolve(dst.base()));
        store.event(ManifestLine.event("link").from(name).to(dst.shown()).pid(tid));
        return held(Held.LINKED_OUT, 0);
    }

    /**
     * link(src, target) onto an empty target name: src's inode becomes the live file (a second
     * name of it, as link(2) makes), one version (reason "link", a copy: src can still be written
     * directly).
     */
    synchronized int linkOnto(io.versionfs.trap.Name src, int tid) {
        int refused = refusal(LinkState.Event.LINKED_ONTO);
        if (refused == 0) refused = exdev(src, liveDev);
        if (refused != 0) return refused;
        int g = newGeneration();
        if (g < 0) return g;
        if (Posix.C.linkat(src.parentFd(), src.base(), rootFd, liveRel(g), 0) != 0) return errno();
        arrive(g, "link", src.shown(), tid, true);
        return held(Held.LINKED_ONTO, 0);
    }

    /** The job's calls on the name that the trap did, by kind (for the summary); the last new name of a rename away. */
    private enum Held { RENAMED_ONTO, LINKED_ONTO, RENAMED_AWAY, UNLINKED, LINKED_OUT }

    /** Whether the trap changed the target's generations (restore then keeps what is left in old ones). */
    private volatile boolean trapUsed;

    private final java.util.Map<Held, java.util.concurrent.atomic.AtomicInteger> held = new java.util.concurrent.ConcurrentHashMap<>();
    private volatile String lastAwayTo;

    private int held(Held e, int result) {
        trapUsed = true;
        dropRetired(false);
        if (result == 0) held.computeIfAbsent(e, k -> new java.util.concurrent.atomic.AtomicInteger()).incrementAndGet();
        return result;
    }

    /** One line saying what the trap did for the job on this name, if anything. */
    private List<String> heldSummary() {
        if (held.isEmpty()) return List.of();
        List<String> parts = new ArrayList<>();
        count(parts, Held.RENAMED_ONTO, "rename(s) onto " + name + " (each a version)");
        count(parts, Held.LINKED_ONTO, "link(s) onto " + name + " (each a version)");
        count(parts, Held.RENAMED_AWAY, "rename(s) away (last to " + lastAwayTo + ")");
        count(parts, Held.UNLINKED, "delete(s)");
        count(parts, Held.LINKED_OUT, "hard link(s) of " + name);
        return List.of("note: held and done for the job: " + String.join(", ", parts));
    }

    private void count(List<String> parts, Held e, String what) {
        var n = held.get(e);
        if (n != null) parts.add(n.get() + " " + what);
    }

    /** One line per followed rename for the summary. */
    List<String> followedSummary() {
        if (followed.isEmpty()) return heldSummary();
        long after = versionsSoFar() - Math.max(0, versionsAtFirstFollow);
        List<String> out = new ArrayList<>();
        for (String f : followed) out.add("followed: the program " + f);
        out.add("followed renames and deletes: " + after + " more version(s) captured after the first");
        if (unseenChanges > 0) out.add(unseenChanges + " change(s) to " + name + " were made outside versionfs and may be missing");
        return out;
    }

    /**
     * The name stopped leading through versionfs at some point because the job put a real file
     * there (the trap could not hold the rename): its saves were versioned only when noticed, by
     * copy, and nobody can count the writes missed between. A loss for --strict.
     */
    private volatile boolean onlyNoticed;
    /**
     * The name stopped leading through versionfs and nothing follows it (--no-follow, a deletion
     * or rename that could not be followed): what the job wrote there then is not versioned at all.
     * A loss for --strict.
     */
    private volatile boolean notVersioned;

    boolean onlyNoticed() {
        return onlyNoticed;
    }

    boolean notVersioned() {
        return notVersioned;
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
        ending = true;
        dropRetired(true);
        if (linkInstalled) check();
        // Where the folders are now: without the trap the job may have moved them (mv d d2).
        Path folder = pathNow(folderFd, target.getParent()), liveNow = pathNow(rootFd, liveDir);
        Path keepDir = liveNow.equals(liveDir) || !liveDir.equals(store.liveDir()) ? store.dir() : liveNow.getParent().getParent();
        if (!folder.equals(target.getParent())) {
            said("the job moved " + target.getParent() + " to " + folder + " during the run: the final " + name + " is put there");
        }
        if (!keepDir.equals(store.dir())) {
            said("the job moved the versions folder " + store.dir() + " to " + keepDir + " during the run: versions saved after"
                    + " that may be lost (each is a 'lost' line in the manifest there)");
        }
        Path live = liveNow.resolve(liveRel());
        Map<Path, List<Path>> links = linkInstalled ? LinkedFiles.symlinksInto(mountPoint, liveNow, folder, target) : new java.util.HashMap<>();
        aliases.forEach((alias, link) -> {
            Path backing = liveNow.resolve(mountPoint.relativize(alias));
            if (!links.containsKey(backing) && isLinkTo(link, alias)) links.computeIfAbsent(backing, k -> new ArrayList<>()).add(link);
        });
        for (Map.Entry<Path, List<Path>> e : links.entrySet()) {
            if (Files.exists(e.getKey(), LinkOption.NOFOLLOW_LINKS)) {
                LinkedFiles.putInPlace(e.getKey(), e.getValue(), false); // detached at the end of capture
            } else {
                for (Path p : e.getValue()) Files.deleteIfExists(p); // the program deleted the file: so be it
            }
        }
        if (Files.exists(live, LinkOption.NOFOLLOW_LINKS)) {
            if (linkInstalled) {
                // Nothing leads to it (the program replaced the target): keep it, and say where.
                Path keep = keepDir.resolve(VersionNaming.taggedName(name, "final"));
                Files.move(live, keep, StandardCopyOption.REPLACE_EXISTING);
                problems.add("the last content the program wrote through versionfs is kept as " + keep);
                store.event(ManifestLine.event("kept-final").file(name).path(keep.getFileName().toString())
                        .why(target + " was replaced or deleted by the program"));
            } else {
                // never linked (failed before): the target was never touched; drop our copy
                Files.deleteIfExists(live);
            }
        }
        for (Path alias : aliases.keySet()) Files.deleteIfExists(liveNow.resolve(mountPoint.relativize(alias))); // the job deleted that link
        if (Files.isRegularFile(target, LinkOption.NOFOLLOW_LINKS) && !lastSeen.ours()) noticeRealFile();
        // Older generations nothing leads to any more: in follow mode their content was put in
        // place above; with the trap, a file there was written through an old name after the
        // target moved on (a path resolved earlier): it is the job's, so it is kept.
        for (int g = 0; g < generation; g++) {
            Path old = liveNow.resolve((g == 0 ? LIVE_SUB : LIVE_SUB + g) + "/" + name);
            if (trapUsed && Files.isRegularFile(old, LinkOption.NOFOLLOW_LINKS)) {
                Path keep = keepDir.resolve(VersionNaming.keptName(name, "old-name-" + g));
                Files.move(old, keep);
                said("something wrote " + name + " through a name versionfs had already replaced (a path resolved before a"
                        + " rename onto the target): that file is kept as " + keep);
            }
            Files.deleteIfExists(old);
            if (g > 0) LinkedFiles.deleteIfEmpty(old.getParent());
        }
        linkInstalled = false;
    }

    private void said(String msg) {
        problems.add(msg);
        Log.warn(msg);
    }

    /** The current path of a folder held open ({@code fallback} if it cannot be known: then it did not move). */
    private static Path pathNow(int fd, Path fallback) {
        if (fd < 0) return fallback;
        try {
            Path p = Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd));
            return p.toString().endsWith(" (deleted)") ? fallback : p;
        } catch (IOException | RuntimeException e) {
            return fallback;
        }
    }

    /** Releases the descriptor and removes the state file and mount point. */
    void cleanup(boolean restored) {
        if (rootFd >= 0) Posix.C.close(rootFd);
        rootFd = -1;
        if (folderFd >= 0) Posix.C.close(folderFd);
        folderFd = -1;
        try {
            // A failed restore keeps the record: the next run recovers from it.
            if (stateWritten && restored) Files.deleteIfExists(stateFile());
            for (int g = 0; g <= generation; g++) LinkedFiles.deleteIfEmpty(liveDir.resolve(g == 0 ? LIVE_SUB : LIVE_SUB + g));
            if (!liveDir.equals(store.liveDir()) && Files.isDirectory(liveDir)) {
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
