package io.versionfs.text;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/** Diagnostics on stderr, one line each, prefixed so they stand out in a job's mixed output. */
public final class Log {
    private static final Set<String> ONCE = ConcurrentHashMap.newKeySet();
    private static volatile boolean verbose = Boolean.getBoolean("versionfs.verbose");

    private Log() {}

    public static void setVerbose(boolean v) {
        verbose = v;
    }

    public static void info(String msg) {
        System.err.println("versionfs: " + msg);
    }

    public static void warn(String msg) {
        System.err.println("versionfs: warning: " + msg);
    }

    /** Warns the first time a given key is seen (e.g. "hard links impossible, copying"). */
    public static void warnOnce(String key, String msg) {
        if (ONCE.add(key)) warn(msg);
    }

    public static void debug(String msg) {
        if (verbose) System.err.println("versionfs: debug: " + msg);
    }
}
