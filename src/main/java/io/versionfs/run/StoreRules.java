package io.versionfs.run;

import io.versionfs.capture.Hooks;
import io.versionfs.capture.Retention;
import io.versionfs.capture.VersionStore;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.OptionalInt;

/**
 * The rules every versions folder of a run (or a mount) follows: keep rules, the headroom kept
 * free (-1: the default), and the --on-version command (null: none) with how many may run at once.
 */
public record StoreRules(Retention.Policy retention, long minFree, String onVersion, int onVersionJobs) {

    /** Keep everything, the default headroom, and {@code onVersion} (null: none) one at a time. */
    public static StoreRules keepAll(String onVersion) {
        return new StoreRules(Retention.Policy.KEEP_ALL, -1, onVersion, 1);
    }

    /** Sets up a versions folder the way the rules ask. */
    void apply(VersionStore s) {
        s.retention(retention);
        s.minFree(minFree);
        if (onVersion != null) s.hooks(new Hooks(onVersion, onVersionJobs, s.dir()));
    }

    /** As {@link #apply(VersionStore)}; and the folder shows no more than {@code target} does, if it exists. */
    void apply(VersionStore s, Path target) {
        apply(s);
        modeOf(target).ifPresent(s::restrictTo); // after the hook: restrictTo narrows its log too
    }

    /** The permission bits of an existing file (empty for a missing one: nothing to hide yet). */
    private static OptionalInt modeOf(Path file) {
        try {
            return OptionalInt.of(((Number) Files.getAttribute(file, "unix:mode", LinkOption.NOFOLLOW_LINKS)).intValue() & 07777);
        } catch (IOException | RuntimeException e) {
            return OptionalInt.empty();
        }
    }
}
