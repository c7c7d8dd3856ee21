package io.versionfs.fs;

import io.versionfs.capture.Version;
import io.versionfs.capture.VersionStore;

import java.util.ArrayList;
import java.util.List;

/**
 * The copy-on-write state of one live file: whether its backing inode is also a saved version,
 * and so must be copied before the next change. One small state machine instead of flags:
 *
 * <pre>
 *   INDEPENDENT --version by link--> COPYING (eager copy accepted by the pool)
 *                                 \-> SHARED  (pool saturated, or the program rewrites from scratch)
 *   SHARED/COPYING --change: copy done (inline if needed), fresh inode swapped in--> INDEPENDENT
 *   SHARED/COPYING --truncate to 0: an empty inode swapped in, no copy-----------> INDEPENDENT
 *   SHARED/COPYING --copy impossible (disk full): the versions give way ---------> INDEPENDENT
 *   FOREIGN (other links we did not make) --copy done, swapped--> INDEPENDENT
 *   FOREIGN --copy impossible--> FOREIGN, and the change fails (ENOSPC): we may not drop a link
 *                                that is not ours, nor write through it
 * </pre>
 *
 * The owner ({@link LiveFile}) holds its write lock for every transition.
 */
final class Cow {
    enum State {
        /** The inode belongs to the live file alone: changes go in place. */
        INDEPENDENT,
        /** The inode is also the file of {@link #versions()}; no copy running. */
        SHARED,
        /** As SHARED, with a background copy to a fresh inode running ({@link #job()}). */
        COPYING,
        /** The inode has links we did not make (seen with nlink &gt; 1): copy before any change. */
        FOREIGN
    }

    /** A version whose file is this inode, and the store that can give it up. */
    record Linked(VersionStore store, Version version) {}

    private State state;
    private final List<Linked> versions = new ArrayList<>(1);
    private CopyJob job;

    Cow(boolean foreign) {
        state = foreign ? State.FOREIGN : State.INDEPENDENT;
    }

    State state() {
        return state;
    }

    boolean mustCopyBeforeChange() {
        return state != State.INDEPENDENT;
    }

    /** The versions whose file is this inode (empty when INDEPENDENT or FOREIGN without our own). */
    List<Linked> versions() {
        return versions;
    }

    CopyJob job() {
        return job;
    }

    /**
     * A version was linked to this inode. {@code copy} is a copy already accepted by the pool, or
     * null. A FOREIGN file stays FOREIGN (the stricter rule) but remembers the version.
     */
    void linked(VersionStore store, Version v, CopyJob copy) {
        versions.add(new Linked(store, v));
        if (state == State.FOREIGN) {
            if (copy != null) copy.discard();
            return;
        }
        if (job != null && copy != null) copy.discard(); // one copy of one inode is enough
        else if (copy != null) job = copy;
        state = job != null ? State.COPYING : State.SHARED;
    }

    /** Takes the running copy, if any, for the caller to await or discard (COPYING becomes SHARED). */
    CopyJob takeJob() {
        CopyJob j = job;
        job = null;
        if (state == State.COPYING) state = State.SHARED;
        return j;
    }

    /** A fresh inode took the live name (or the versions gave way): nothing is shared any more. */
    void independent() {
        job = null;
        versions.clear();
        state = State.INDEPENDENT;
    }
}
