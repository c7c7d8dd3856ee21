package io.versionfs.capture;

import io.versionfs.text.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.FileCopier;
import io.versionfs.sys.IoError;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;

/**
 * When a version gets its name, and when its manifest line is written. A version linked to the
 * live inode waits without a name in a pending folder ({@code .versionfs/pending/<pid>-<start>/}):
 * its name would lead to an inode the job still writes, and a tool writing through that name would
 * change the job's file. It gets its name, read-only, once the job can no longer write that inode
 * ({@link #publish}). Within a series, manifest lines follow version numbers: a version ready for
 * its line waits while an earlier one of its series is still hidden.
 *
 * <h2>Locks</h2>
 * A version's monitor guards its file: publishing, removing ({@link #remove}) and the hasher's
 * reflink over it hold that monitor, so the state read under it says where the file is. (A drop
 * for space, {@link GiveWay}, goes by name alone: it only removes a file under its published name
 * that no longer shares the live inode.) {@link #queues} guards every version's {@link State} and
 * the queues; it is taken inside a version's monitor, never the other way round.
 */
final class Publication {
    /** Where a version stands between its capture and its manifest line. */
    enum State {
        /** Linked to the live inode, in the pending folder without its name: later versions of its series wait for it. */
        HIDDEN,
        /** Under its name (a copy from the start, or published), or lost (no file): listed in number order. */
        LISTED,
        /** Could not get its name (said): what is left of it stays in the pending folder; later versions go on. */
        STRANDED,
        /** Removed after the capture (given up, pruned): no file, no line that says it is saved. */
        GONE
    }

    static final String ROOT = VersionStore.HIDDEN + "/pending";
    /** This process's own pending folder, relative to the versions folder. */
    static final String FOLDER = ROOT + "/" + processId(ProcessHandle.current()) + "/";

    private final Path dir;         // as the user knows it (warnings)
    private final Path access;      // how we reach it (see VersionStore)
    private final int dirFd;
    /** Told of each version whose turn for a manifest line has come, in number order per series. */
    private final Consumer<Version> listed;
    /**
     * Per series, by number, the versions not yet handed to {@link #listed}: hidden ones, and
     * those ready but behind a hidden one. The head goes on as soon as it is not HIDDEN. Guards
     * itself and every {@link Version#publication}: a version leaves HIDDEN and takes its turn in
     * one step (a version handed over between the two would overtake it).
     */
    private final Map<String, TreeMap<Long, Version>> queues = new HashMap<>();

    Publication(Path dir, Path access, int dirFd, Consumer<Version> listed) {
        this.dir = dir;
        this.access = access;
        this.dirFd = dirFd;
        this.listed = listed;
    }

    /** Where a hidden version's file is: its name with '/' and '%' escaped, in this process's folder. */
    static String pendingName(String versionFile) {
        return FOLDER + escape(versionFile);
    }

    /** A new version linked under {@link #pendingName}: it waits for {@link #publish}, and later ones for it. */
    void hide(Version v) {
        settle(v, State.HIDDEN);
    }

    /** A new version that already has its name (a copy) or has no file (lost): listed in its turn. */
    void list(Version v) {
        settle(v, State.LISTED);
    }

    /**
     * The live file no longer shares the inode of {@code v} (a fresh inode took the live name, or
     * no name leads to it any more): gives the version its name, read-only, and its turn in the
     * manifest. O(1) (a chmod and a rename): it can run inside the job's write. Does nothing for
     * a version that is not hidden (published already, given up, or a copy).
     */
    void publish(Version v) {
        synchronized (v) {
            if (v.publication != State.HIDDEN) return;
            settle(v, moveOut(v) ? State.LISTED : State.STRANDED);
        }
    }

    /**
     * End of the run: every version still hidden is published. One that still shares its inode
     * with a file (the copy that separates them did not fit, and that was said) keeps its mode,
     * so that file stays writable.
     */
    void publishRemaining() {
        for (Version v : hidden()) {
            synchronized (v) {
                if (v.publication != State.HIDDEN) continue;
                FileStat st = Stat.at(dirFd, pendingName(v.versionFile), LibC.AT_SYMLINK_NOFOLLOW);
                if (st != null && Stat.nlink(st) > 1) v.mode = -1; // its bits stay: the file it shares stays writable
                settle(v, st != null && moveOut(v) ? State.LISTED : State.STRANDED);
            }
        }
    }

    /**
     * Removes {@code v}'s file, wherever it is, for good: no line will say it is saved, and later
     * versions no longer wait for it. False if it was removed already.
     */
    boolean remove(Version v) {
        synchronized (v) {
            State was = v.publication;
            if (was == State.GONE) return false;
            settle(v, State.GONE);
            if (v.versionFile != null && was == State.LISTED) removal.remove(dirFd, v.versionFile, v.file);
            else if (v.versionFile != null) Posix.C.unlinkat(dirFd, pendingName(v.versionFile), 0);
            return true;
        }
    }

    /** How a listed version's file goes (a tombstone on several nodes). */
    private volatile Removal removal = Removal.UNLINK;

    void removeWith(Removal r) {
        removal = r;
    }

    /** Sets {@code v}'s state, queued at its number, and lets through what no hidden version holds up any more. */
    private void settle(Version v, State s) {
        synchronized (queues) {
            v.publication = s;
            TreeMap<Long, Version> q = queues.computeIfAbsent(v.file, k -> new TreeMap<>());
            if (s != State.GONE) q.putIfAbsent(v.number, v);
            while (!q.isEmpty() && q.firstEntry().getValue().publication != State.HIDDEN) {
                Version next = q.pollFirstEntry().getValue();
                if (next.publication == State.LISTED) listed.accept(next);
            }
            if (q.isEmpty()) queues.remove(v.file);
        }
    }

    private List<Version> hidden() {
        List<Version> out = new ArrayList<>();
        synchronized (queues) {
            for (TreeMap<Long, Version> q : queues.values()) {
                for (Version v : q.values()) if (v.publication == State.HIDDEN) out.add(v);
            }
        }
        return out;
    }

    /** Gives a hidden version its read-only name; false if it cannot (said). Caller holds the version's monitor. */
    private boolean moveOut(Version v) {
        String from = pendingName(v.versionFile);
        readOnly(dirFd, from, v.mode);
        return moveInto(from, v.versionFile, true);
    }

    /** Version files are read-only to everyone, their owner too: a careless tool gets EACCES, not a changed version. */
    static void readOnly(int dirFd, String name, int mode) {
        if (mode >= 0) Posix.C.fchmodat(dirFd, name, mode & 07555, 0);
    }

    /**
     * Renames a hidden version file to its name, never over another file. False (and said) if it
     * cannot. {@code ours}: the name is this run's (numbered by it), see {@link #claim}.
     */
    private boolean moveInto(String from, String name, boolean ours) {
        int e = ours ? claim(from, name) : renameNoReplace(from, name);
        if (e == Errno.ENOENT.code && !VersionNaming.folderOf(name).isEmpty()) {
            Posix.C.mkdirat(dirFd, VersionNaming.folderOf(name), 0755); // first version of sub/x.dat
            e = ours ? claim(from, name) : renameNoReplace(from, name);
        }
        if (e == 0) return true;
        if (e != Errno.ENOENT.code) { // ENOENT: no file left to name (removed from outside)
            Log.warn("version " + name + " stays hidden in " + dir.resolve(from) + ": cannot give it its name ("
                    + Posix.strerror(e) + ")");
        }
        return false;
    }

    /**
     * 0, or the errno of renaming {@code from} to {@code name}, a version name this run numbered:
     * never over another file. The name was free when the version was numbered; a file that took
     * it since was not made by versionfs (a tool writing into the versions folder, e.g. a
     * python open() of the next version's name). Refusing would leave the version without its
     * name and out of the manifest; replacing would lose that file. So that file is kept beside,
     * under a name that is never a version's ({@code job.000003.not-a-version-STAMP.gbw}), and
     * the version gets its name.
     */
    int claim(String from, String name) {
        int e = renameNoReplace(from, name);
        if (e != Errno.EEXIST.code) return e;
        if (!setAside(name)) return e;
        return renameNoReplace(from, name);
    }

    /**
     * Moves a file versionfs did not make away from the version name {@code name} of this run
     * (see {@link #claim}), keeping it beside under a name that is never a version's; said.
     * False if it could not be moved (the name then stays taken).
     */
    boolean setAside(String name) {
        String aside = VersionNaming.keptName(name, "not-a-version");
        if (renameNoReplace(name, aside) != 0) return false;
        Log.warn(dir.resolve(name) + " was not made by versionfs but took the name of a version of this run: kept as "
                + dir.resolve(aside));
        return true;
    }

    /** 0, or the errno of renaming {@code from} to {@code name} where no file has that name. */
    private int renameNoReplace(String from, String name) {
        if (Posix.C.renameat2(dirFd, from, dirFd, name, LibC.RENAME_NOREPLACE) == 0) return 0;
        int e = Posix.errno();
        if (e != Errno.EINVAL.code) return e;
        // A filesystem without RENAME_NOREPLACE (some NFS): numbers are ours alone in a run, so a
        // check first is enough against a stray file.
        if (Posix.C.faccessat(dirFd, name, 0, LibC.AT_SYMLINK_NOFOLLOW) == 0) return Errno.EEXIST.code;
        return Posix.C.renameat(dirFd, from, dirFd, name) == 0 ? 0 : Posix.errno();
    }

    // ---- recovery: what a killed run left hidden ------------------------------------------------

    /**
     * Versions a killed run left hidden: each gets its name now, as a copy if its inode is still
     * shared (with the target that run was writing), so the version cannot change when that file
     * does. Folders of versionfs processes still running are theirs. True if any was recovered
     * (they have no manifest line yet: the caller lists them).
     */
    boolean recover() throws IOException {
        boolean any = false;
        try (DirectoryStream<Path> folders = Files.newDirectoryStream(access.resolve(ROOT))) {
            for (Path p : folders) {
                String id = p.getFileName().toString();
                if (running(id)) continue;
                String rel = ROOT + "/" + id + "/";
                try (DirectoryStream<Path> ds = Files.newDirectoryStream(p)) {
                    for (Path f : ds) any |= recoverOne(rel + f.getFileName(), unescape(f.getFileName().toString()));
                }
                Posix.C.unlinkat(dirFd, rel, LibC.AT_REMOVEDIR); // empty now, unless one could not be recovered
            }
        }
        return any;
    }

    private boolean recoverOne(String from, String name) {
        FileStat st = Stat.at(dirFd, from, LibC.AT_SYMLINK_NOFOLLOW);
        if (st == null || !Stat.isRegular(st) || !VersionNaming.isVersionFileName(VersionNaming.baseOf(name))) return false;
        int mode = Stat.mode(st) & 07777;
        if (Stat.nlink(st) <= 1) {
            readOnly(dirFd, from, mode);
            return moveInto(from, name, false);
        }
        String tmp = VersionStore.HIDDEN + "/tmp/" + escape(name) + ".recovered";
        IoError err = FileCopier.copyAt(dirFd, from, dirFd, tmp, false, () -> false);
        if (err != null) {
            Log.warn("a version left by a killed run stays hidden in " + dir.resolve(from) + ": no copy (" + err + ")");
            return false;
        }
        readOnly(dirFd, tmp, mode);
        if (!moveInto(tmp, name, false)) {
            Posix.C.unlinkat(dirFd, tmp, 0);
            return false;
        }
        Posix.C.unlinkat(dirFd, from, 0);
        return true;
    }

    /**
     * A process by pid and start time: a pid alone is reused, and in a pid namespace (a container)
     * every run's JVM may be pid 1.
     */
    private static String processId(ProcessHandle p) {
        return p.pid() + "-" + p.info().startInstant().map(java.time.Instant::toEpochMilli).orElse(0L);
    }

    /** Whether the versionfs process that named a pending folder {@code id} still runs (then the folder is its own). */
    private static boolean running(String id) {
        int dash = id.indexOf('-');
        try {
            long pid = Long.parseLong(dash < 0 ? id : id.substring(0, dash));
            return ProcessHandle.of(pid).map(Publication::processId).filter(id::equals).isPresent();
        } catch (NumberFormatException e) {
            return false;
        }
    }

    private static String escape(String versionFile) {
        return versionFile.replace("%", "%25").replace("/", "%2F");
    }

    private static String unescape(String pendingBase) {
        return pendingBase.replace("%2F", "/").replace("%25", "%");
    }
}
