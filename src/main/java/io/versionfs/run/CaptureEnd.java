package io.versionfs.run;

import io.versionfs.capture.VersionStore;
import io.versionfs.sys.ProcessCpu;
import io.versionfs.text.Log;

import java.util.List;
import java.util.function.LongSupplier;

/**
 * The end of a capture once nothing of the job runs any more, in the order that loses nothing;
 * the same for {@code run} and {@code mount}. Every step is taken whatever happened before it.
 */
final class CaptureEnd {
    private CaptureEnd() {}

    /**
     * @param detachBudgetMillis time for the copies that separate live files from their last versions
     * @param hooksMillis        how long pending --on-version commands get (asked once the files are back)
     */
    static void run(Capture capture, LongSupplier detachBudgetMillis, LongSupplier hooksMillis, Cleanup undo) {
        try {
            ProcessCpu.rememberThreads(); // the FUSE threads end at the unmount: the summary still counts them as FUSE
            capture.finish(detachBudgetMillis); // pending closes, a last version of unclosed changes, unmount
            Log.phase("finished (unmounted)");
            capture.restore(); // symlinks become regular files
            Log.phase("restored");
            finishHooks(capture.stores(), hooksMillis.getAsLong());
            capture.takeNotes(); // drained; what the summary says of each folder
            Log.phase("drained");
        } finally {
            undo.runAll(); // set-up in reverse: folders closed, private folder removed, locks dropped
            Log.phase("undone");
        }
    }

    /** Versions are published, then pending --on-version commands get until one deadline. */
    private static void finishHooks(List<VersionStore> stores, long millis) {
        long until = System.currentTimeMillis() + millis;
        for (VersionStore s : stores) {
            s.publishRemaining(); // the job is gone: what it could still write before, it cannot now
            s.drain(); // every hashed version has its hook queued
            if (s.hooks() != null) s.hooks().finish(until - System.currentTimeMillis());
        }
    }
}
