package io.versionfs.capture;

import io.versionfs.text.Log;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Iterator;

/**
 * The job's writes come first, for one versions folder: no version rather than a job without
 * room (the {@link Headroom} guard), and when the job's write finds the disk full anyway, this
 * run's versions give way in a fixed order: oldest first, the content before the run last.
 */
final class GiveWay implements Room {
    /** A version of this run that may give way: enough to find its file and record its loss. */
    private record Droppable(String series, long number, String name, String reason) {}

    private final Path dir;
    private final int dirFd;
    private final Headroom headroom;
    private final Publication publication;
    private final Hasher hasher;
    private final Tally tally;
    /** This run's saved versions, oldest first. Guarded by itself, as is {@link #lastResort}. */
    private final ArrayDeque<Droppable> droppable = new ArrayDeque<>();
    /** How a dropped version's file goes (a tombstone on several nodes). */
    private volatile Removal removal = Removal.UNLINK;
    /**
     * The content before the run: given up only when nothing else of this run is left. Without
     * versionfs the job would have overwritten that content anyway; its writes come first.
     */
    private final ArrayDeque<Droppable> lastResort = new ArrayDeque<>();

    GiveWay(Path dir, int dirFd, Headroom headroom, Publication publication, Hasher hasher, Tally tally) {
        this.dir = dir;
        this.dirFd = dirFd;
        this.headroom = headroom;
        this.publication = publication;
        this.hasher = hasher;
        this.tally = tally;
    }

    /** A version was saved: it may give way later, in its turn. */
    void add(Version v) {
        Droppable d = new Droppable(v.file, v.number, v.versionFile, v.reason.intern());
        synchronized (droppable) {
            (v.reason.equals("initial") ? lastResort : droppable).add(d);
        }
    }

    @Override
    public boolean skipIfLow(String series, String reason, int pid, long diskBytes) {
        String low = headroom.lowOnSpace(diskBytes);
        if (low == null) return false;
        headroom.skipped(series, reason, pid, low);
        return true;
    }

    void removeWith(Removal r) {
        removal = r;
    }

    @Override
    public boolean dropOne() {
        synchronized (droppable) {
            return dropFrom(droppable) || dropFrom(lastResort);
        }
    }

    @Override
    public void giveUp(Version v, String why) {
        publication.remove(v); // its "saved" line, if not written yet, is not written at all
        Version lost = new Version(v.number, v.file, null, v.size, v.time, v.pid, v.command, v.reason,
                Version.Status.LOST, why);
        tally.gaveUp(v, lost);
        hasher.append(lost.toLine().build());
    }

    @Override
    public void stillShared(Version v, String why) {
        hasher.append(ManifestLine.event("shares-inode").version(v.number).file(v.file).why(why).build());
    }

    /** Removes the first version of {@code queue} whose removal frees blocks; false if none does. Caller holds {@link #droppable}. */
    private boolean dropFrom(ArrayDeque<Droppable> queue) {
        for (Iterator<Droppable> it = queue.iterator(); it.hasNext(); ) {
            Droppable d = it.next();
            // Asked first: a hidden version shares the live file (removing it frees nothing), and
            // once published it is found under its name below.
            if (Posix.C.faccessat(dirFd, Publication.pendingName(d.name()), 0, LibC.AT_SYMLINK_NOFOLLOW) == 0) continue;
            FileStat st = Stat.at(dirFd, d.name(), LibC.AT_SYMLINK_NOFOLLOW);
            if (st == null) {
                it.remove(); // already gone (given up another way)
                continue;
            }
            if (Stat.nlink(st) > 1) continue; // shares the live file: removing it frees nothing
            long size = Stat.size(st);
            if (!removal.remove(dirFd, d.name(), d.series())) continue;
            it.remove();
            recordDrop(d, size, queue == lastResort);
            return true;
        }
        return false;
    }

    private void recordDrop(Droppable d, long size, boolean lastResort) {
        hasher.cancel(d.name()); // its blocks come back when the hasher lets go
        tally.dropped(d.series(), d.number());
        Log.warnOnce("dropped:" + dir, "the disk of " + dir + " is full: versions of this run give way to the"
                + " job's own writes, oldest first (each is recorded in the manifest)");
        if (lastResort) {
            Log.warn("version " + d.number() + " of " + d.series() + " (its content before the run) was given up:"
                    + " the job needed the space");
        }
        String why = "dropped to make room for the job's own writes (disk full or quota)";
        hasher.append(ManifestLine.version(d.number(), d.series()).size(size).status("lost").reason(d.reason())
                .dropped(true).error(why).build());
    }
}
