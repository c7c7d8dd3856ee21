package io.versionfs.capture;

/**
 * The one place that answers "is this a version, and why". The file keeps a modification counter
 * (every write, truncate, create bumps it); a handle remembers the counter after its own last
 * change; the series remembers the counter its last version covers. Then:
 *
 * <ul>
 *   <li>a close is a version when the file changed since the last version <em>and</em> this
 *       handle took part in that change. A handle that only read (programs open O_RDWR just to
 *       read), or a dup/fork copy closing after the version was already taken, gives nothing;</li>
 *   <li>a truncation at open (O_TRUNC, or libfuse2's truncate(2) before open) and a create are
 *       changes, not writes by a handle: a shell opens with O_TRUNC, dup2s and closes the
 *       original descriptor before writing a byte, and that close must not be an empty version.
 *       Such changes are versioned by the next writer's close, or at the end;</li>
 *   <li>at the end of a run, anything changed since the last version is one last version
 *       ("final-unclosed": written through a descriptor never closed, e.g. the job was killed);</li>
 *   <li>a file that arrives at a versioned name by rename or link is new content there: a
 *       version at once, whatever the counters say.</li>
 * </ul>
 */
public final class CaptureRule {
    public enum AtClose {
        /** Save a version (reason "close"). */
        VERSION,
        /** This handle changed nothing (it only read, or only truncated at open). */
        NOT_WRITTEN_BY_HANDLE,
        /** This handle's changes are already in a version (dup/fork copy closing). */
        ALREADY_SAVED,
        /** The file is not in any version series (renamed away to a name that is not versioned). */
        NOT_VERSIONED
    }

    private CaptureRule() {}

    /**
     * @param handleChange the file's counter after this handle's last change, 0 if it never changed it
     * @param fileChange   the file's counter now
     * @param saved        the counter covered by the file's last version
     * @param versioned    whether the file is in a version series
     */
    public static AtClose atClose(long handleChange, long fileChange, long saved, boolean versioned) {
        if (!versioned) return AtClose.NOT_VERSIONED;
        if (handleChange == 0) return AtClose.NOT_WRITTEN_BY_HANDLE;
        if (handleChange <= saved || fileChange == saved) return AtClose.ALREADY_SAVED;
        return AtClose.VERSION;
    }

    /** At the end of a run (or when a file leaves its series): is there unsaved content? */
    public static boolean unsavedAtEnd(long fileChange, long saved, boolean versioned) {
        return versioned && fileChange != saved;
    }
}
