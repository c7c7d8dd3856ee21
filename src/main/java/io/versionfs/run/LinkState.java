package io.versionfs.run;

import io.versionfs.sys.Errno;

/**
 * The target's name during a symlink-mode run, as one state machine. With the trap the job's
 * calls move it only between {@link #SERVED} and {@link #EMPTY}, and each call is checked against
 * the state first ({@link #refusal}): the job gets the errno a plain file in that state would give.
 * The other states are what the follow mode (no trap) can find after the fact.
 */
enum LinkState {
    /** Our symlink at the name, the live file behind it: the job's opens go through versionfs. */
    SERVED,
    /** Our symlink at the name, no file behind it (deleted or renamed away): to the job the name is absent, and its next create goes through versionfs. */
    EMPTY,
    /** Follow mode: our symlink was renamed to another name, nothing at the target name. */
    RENAMED,
    /** Follow mode: our symlink was renamed away and a file not ours is at the name (a race lost, or --no-follow). */
    RENAMED_NEW,
    /** Follow mode: a file not ours replaced our symlink (temp file + rename). */
    REPLACED,
    /** Follow mode: nothing at the name, our symlink not put back. */
    DELETED;

    /** What the job (or versionfs following it) does to the name. */
    enum Event {
        /** A file created at the name (through the mount). */
        CREATED,
        RENAMED_ONTO,
        LINKED_ONTO,
        RENAMED_AWAY,
        UNLINKED,
        /** Follow mode put our symlink back at an absent name. */
        LINK_PUT_BACK
    }

    /** Whether our symlink is at the name. */
    boolean ours() {
        return this == SERVED || this == EMPTY;
    }

    boolean renamed() {
        return this == RENAMED || this == RENAMED_NEW;
    }

    /** The manifest event for a state the follow mode noticed ({@code symlink-renamed}, ...); null for ours. */
    String eventName() {
        return switch (this) {
            case SERVED, EMPTY -> null;
            case RENAMED, RENAMED_NEW -> "symlink-renamed";
            case REPLACED -> "symlink-replaced";
            case DELETED -> "symlink-deleted";
        };
    }

    /**
     * 0 when {@code e} can happen to the name in this state; else the errno the job's call gets,
     * as on a plain file: nothing to rename or delete (ENOENT), link(2) never replaces (EEXIST).
     * Calls on a name that is not ours are not ours to do (-1: let the kernel run them).
     */
    int refusal(Event e) {
        if (!ours()) return e == Event.LINK_PUT_BACK && !(this == RENAMED_NEW || this == REPLACED) ? 0 : -1;
        return switch (e) {
            case RENAMED_AWAY, UNLINKED -> this == SERVED ? 0 : Errno.ENOENT.code;
            case LINKED_ONTO -> this == EMPTY ? 0 : Errno.EEXIST.code;
            case CREATED, RENAMED_ONTO -> 0;
            case LINK_PUT_BACK -> Errno.EEXIST.code;
        };
    }

    /** The state after {@code e}; this state when {@code e} is refused here. */
    LinkState after(Event e) {
        if (refusal(e) != 0) return this;
        return switch (e) {
            case CREATED, RENAMED_ONTO, LINKED_ONTO -> SERVED;
            case RENAMED_AWAY, UNLINKED, LINK_PUT_BACK -> EMPTY;
        };
    }

    /** What the name shows now, from what is there: our symlink (with or without a live file), or what replaced it. */
    static LinkState observe(boolean ourLink, boolean liveFile, boolean somethingAtName, boolean linkFoundElsewhere) {
        if (ourLink) return liveFile ? SERVED : EMPTY;
        if (linkFoundElsewhere) return somethingAtName ? RENAMED_NEW : RENAMED;
        return somethingAtName ? REPLACED : DELETED;
    }
}
