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
 *   SHARED --quiet for a while: a background copy starts---------------------> COPYING
 *   COPYING --copy done, nobody changing the file: fresh inode swapped in-----> INDEPENDENT
 *   SHARED/COPYING --change: copy done (inline if needed), fresh inode swapped in--> INDEPENDENT
 *   SHARED/COPYING --truncate to 0: an empty inode swapped in, no copy-----------> INDEPENDENT
 *   SHARED/COPYING --copy impossible (disk full): the versions give way ---------> INDEPENDENT
 *   SHARED with a version of an earlier (killed) run --copy impossible--> SHARED, and the change
 *                                fails (ENOSPC): that version is not ours to drop
 * </pre>
 *
 * A file with hard links that we did not make never gets here: its versions are copies (see
 * {@link LiveFile}), because a write through those other names would bypass us.
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
        COPYING
    }

    /**
     * A version whose file is this inode, and the store that can give it up; {@code version} null
     * for a version an earlier run left sharing the inode (it may not be given up).
     */
    record Linked(VersionStore store, Version version) {
        boolean mayGiveUp() {
            return version != null;
        }
    }

    private State state;
    private final List<Linked> versions = new ArrayList<>(1);
    private CopyJob job;

    Cow() {
        state = State.INDEPENDENT;
    }

    State state() {
        return state;
    }

    boolean mustCopyBeforeChange() {
        return state != State.INDEPENDENT;
    }

    /** The versions whose file is this inode (empty when INDEPENDENT). */
    List<Linked> versions() {
        return versions;
    }

    CopyJob job() {
        return job;
    }

    /**
     * A version was linked to this inode ({@code v} null: one left by an earlier run). {@code copy}
     * is a copy already accepted by the pool, or null.
     */
    void linked(VersionStore store, Version v, CopyJob copy) {
        versions.add(new Linked(store, v));
        if (job != null && copy != null) copy.discard(); // one copy of one inode is enough
        else if (copy != null) job = copy;
        state = job != null ? State.COPYING : State.SHARED;
    }

    /** A copy was started later, while SHARED (the file stayed quiet): SHARED becomes COPYING. */
    void copying(CopyJob copy) {
        job = copy;
        state = State.COPYING;
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
