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

    /** Start-up and tear-down timing on stderr (-Dversionfs.timing=true): where a short job's fixed cost goes. */
    private static final boolean TIMING = Boolean.getBoolean("versionfs.timing");

    /** The process's start (the launcher's, which execs java), read only when timing is on. */
    private static final class Start {
        static final long MILLIS = ProcessHandle.current().info().startInstant().map(java.time.Instant::toEpochMilli)
                .orElse(System.currentTimeMillis());
    }

    /**
     * "versionfs: timing: +0.412s cpu 0.800s (this thread 0.350s) main: mounted": seconds since the
     * process (the launcher) started, and the CPU the process and this thread have used (on a busy
     * machine the wall clock says little, the CPU still does).
     */
    public static void phase(String what) {
        if (TIMING) System.err.printf("versionfs: timing: +%.3fs cpu %.2fs (this thread %.2fs) %s: %s%n",
                (System.currentTimeMillis() - Start.MILLIS) / 1000.0, cpuSeconds("/proc/self/stat"),
                cpuSeconds("/proc/thread-self/stat"), Thread.currentThread().getName(), what);
    }

    /** utime + stime of a proc(5) stat file, in seconds (USER_HZ = 100); -1 if unreadable. */
    private static double cpuSeconds(String statFile) {
        try {
            String s = java.nio.file.Files.readString(java.nio.file.Path.of(statFile));
            String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0;
        } catch (java.io.IOException | RuntimeException e) {
            return -1;
        }
    }

    public static void debug(String msg) {
        if (verbose) System.err.println("versionfs: debug: " + msg);
    }
}
