package io.versionfs.run;

import io.versionfs.capture.VersionStore;
import io.versionfs.report.Summary;

import java.io.IOException;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * How versions are captured: symlink mode ({@link LinkCapture}), directory mode
 * ({@link DirCapture}) or the foreground mount ({@link MountPointCapture}). A run calls the
 * phases in the order they are declared here (a mount, having no job, skips the job's). Set-up
 * pushes the undo of each thing it takes on the run's {@link Cleanup} as it takes it; every later
 * phase is safe to call whatever set-up reached (a run refused half-way ends through the same
 * phases).
 */
interface Capture {

    /**
     * The locks first (a refused run touches nothing of the run that holds them), then the
     * versions folders, then what a killed run left.
     */
    void prepare(Cleanup undo) throws IOException;

    /** Mounts and puts the capture in place; {@code betweenTargets} may stop set-up there (a signal). */
    void mount(Cleanup undo, Runnable betweenTargets) throws IOException;

    /** Where the capture is mounted (asked once it is). */
    default List<java.nio.file.Path> mountPoints() {
        return List.of();
    }

    /** What the thread that starts the job does first (the name trap), or null. */
    default ChildProcess.OnLaunchThread beforeJob() {
        return null;
    }

    /** The job runs: say how its renames are handled, and follow the targets' names. */
    default void jobStarted() {}

    /** The grace period is over and the job is about to be killed: nothing may stay blocked in our filesystem. */
    void stopWaits();

    /** The job ended: stop following the names (restoring is about to change them). */
    default void stopWatching() {}

    /** Every process of the job is gone, leftovers too: nothing of the job can wait on the capture any more. */
    default void jobGone() {}

    /** Pending closes, a last version of unclosed changes, live files separated from their versions, unmount. */
    void finish(LongSupplier detachBudgetMillis);

    /** Puts the user's files back where the capture changed them (symlinks become regular files). */
    default void restore() {}

    /** Every versions folder opened so far. */
    List<VersionStore> stores();

    /** Drains the versions folders and takes what the summary says of them, while they are open. */
    void takeNotes();

    /** Adds this capture's part to the summary: its mode, one report per file. */
    void report(Summary summary);

    /**
     * Files that matched a target but could not be versioned at all (written behind the mount,
     * a rename or deletion not followed, a symlink in directory mode): a loss for --strict.
     */
    default int unversionable() {
        return 0;
    }

    /**
     * Targets whose saves could only be noticed after the fact (a real file put at the target where
     * the trap could not hold the rename): versioned by copy when noticed, writes between may be
     * missed and nobody can count them. A loss for --strict too, but not "unversionable".
     */
    default int noticedAfterTheFact() {
        return 0;
    }
}
