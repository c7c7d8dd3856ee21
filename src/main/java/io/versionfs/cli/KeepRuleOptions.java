package io.versionfs.cli;

import io.versionfs.capture.Retention;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import picocli.CommandLine.Option;

/** The keep rules, as options: one definition for {@code run} (live) and {@code prune} (after the fact). */
final class KeepRuleOptions {
    @Option(names = "--keep-last", paramLabel = "N", description = "Keep the newest N versions (plus what other keep rules keep).")
    int keepLast;

    @Option(names = "--keep-every", paramLabel = "N", description = "Keep every Nth version (numbers N, 2N, ...).")
    int keepEvery;

    @Option(names = "--keep-first", paramLabel = "BOOL", defaultValue = "true", arity = "0..1",
            description = "Keep the first version (the content before the first run); default true.")
    boolean keepFirst = true;

    @Option(names = "--max-size", paramLabel = "SIZE", description = "Keep the versions of each file within SIZE bytes"
            + " (500M, 10G): the oldest go first, never the first (with --keep-first) or the newest.")
    String maxSize;

    @Option(names = "--min-interval", paramLabel = "DURATION", description = "At most one version per DURATION (30s,"
            + " 5m): of versions closer together, the last is kept, the others are recorded as pruned.")
    String minInterval;

    Retention.Policy policy() {
        if (keepLast < 0 || keepEvery < 0) throw new UserError(ExitCodes.USAGE, "--keep-last and --keep-every take 1 or more");
        return new Retention.Policy(keepLast, keepEvery, keepFirst,
                maxSize == null ? -1 : Units.size("--max-size", maxSize),
                minInterval == null ? null : Units.duration("--min-interval", minInterval));
    }
}
