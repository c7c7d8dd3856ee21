package io.versionfs;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * Turns a hung FUSE test into a failing one. A process (or this JVM's own thread) waiting on a
 * FUSE request that never gets an answer sits in D state: no test timeout and no SIGKILL ends it,
 * and CI once hung 20 minutes that way. At each test's bound this aborts the FUSE connections that
 * appeared during the test (through /sys/fs/fuse/connections/N/abort, which fails every waiting
 * request with ENOTCONN), so the test fails with an error and the suite goes on.
 *
 * <p>Registered for every test class by JUnit's extension autodetection (META-INF/services and
 * junit-platform.properties). The bound is {@code -Dversionfs.test.bound=SECONDS} (default 600:
 * far above any test's normal length, far below CI's 90 minutes).
 */
public final class FuseWatchdog implements BeforeEachCallback, AfterEachCallback {
    private static final long BOUND_SEC = Long.getLong("versionfs.test.bound", 600);
    private static final Path MOUNTINFO = Path.of("/proc/self/mountinfo");
    private static final Path CONNECTIONS = Path.of("/sys/fs/fuse/connections");
    private static final ScheduledExecutorService TIMER = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "fuse-watchdog");
        t.setDaemon(true);
        return t;
    });

    /** One FUSE mount: its connection number (the device minor) and where it is mounted. */
    record FuseMount(String connection, String mountPoint) {}

    private record Watch(Set<FuseMount> before, ScheduledFuture<?> alarm) {}

    @Override
    public void beforeEach(ExtensionContext ctx) {
        Set<FuseMount> before = Set.copyOf(fuseMounts());
        String test = ctx.getDisplayName() + " in " + ctx.getRequiredTestClass().getSimpleName();
        ScheduledFuture<?> alarm = TIMER.schedule(() -> abortNew(test, before), BOUND_SEC, TimeUnit.SECONDS);
        ctx.getStore(ExtensionContext.Namespace.create(FuseWatchdog.class)).put("watch", new Watch(before, alarm));
    }

    @Override
    public void afterEach(ExtensionContext ctx) {
        Watch w = ctx.getStore(ExtensionContext.Namespace.create(FuseWatchdog.class)).remove("watch", Watch.class);
        if (w != null) w.alarm().cancel(false);
    }

    private static void abortNew(String test, Set<FuseMount> before) {
        List<FuseMount> made = new ArrayList<>(fuseMounts());
        made.removeAll(before);
        System.err.println("fuse-watchdog: " + test + " passed its " + BOUND_SEC + " s bound; aborting the FUSE "
                + "connections made during it: " + made + "\n" + threadDump());
        mountFusectl();
        for (FuseMount m : made) abort(m);
    }

    /** The connections folder is empty until fusectl is mounted (Debian does not mount it without systemd). */
    private static void mountFusectl() {
        try {
            if (!Files.exists(CONNECTIONS) || Files.list(CONNECTIONS).findAny().isPresent()) return;
            new ProcessBuilder("mount", "-t", "fusectl", "fusectl", CONNECTIONS.toString()).inheritIO().start()
                    .waitFor(10, TimeUnit.SECONDS);
        } catch (IOException | InterruptedException e) {
            System.err.println("fuse-watchdog: could not mount fusectl: " + e);
        }
    }

    private static void abort(FuseMount m) {
        try {
            Files.writeString(CONNECTIONS.resolve(m.connection()).resolve("abort"), "1");
        } catch (IOException | RuntimeException e) {
            System.err.println("fuse-watchdog: could not abort " + m + ": " + e);
        }
        try {
            new ProcessBuilder("umount", "-l", m.mountPoint()).inheritIO().start().waitFor(10, TimeUnit.SECONDS);
        } catch (IOException | InterruptedException e) {
            System.err.println("fuse-watchdog: could not unmount " + m + ": " + e);
        }
    }

    /** FUSE mounts in this mount namespace, from mountinfo ("ID PARENT MAJ:MIN ROOT POINT ... - fuse.X ..."). */
    static List<FuseMount> fuseMounts() {
        try {
            List<FuseMount> mounts = new ArrayList<>();
            for (String line : Files.readAllLines(MOUNTINFO)) {
                String[] f = line.split(" ");
                int dash = line.indexOf(" - ");
                if (f.length < 5 || dash < 0 || !line.substring(dash + 3).startsWith("fuse")) continue;
                mounts.add(new FuseMount(f[2].substring(f[2].indexOf(':') + 1), unescape(f[4])));
            }
            return mounts;
        } catch (IOException e) {
            return List.of();
        }
    }

    /** mountinfo escapes space, tab, newline and backslash as octal. */
    private static String unescape(String s) {
        return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\");
    }

    private static String threadDump() {
        return Thread.getAllStackTraces().entrySet().stream()
                .filter(e -> e.getKey().getThreadGroup() != null && !e.getKey().isDaemon())
                .map(FuseWatchdog::describe)
                .collect(Collectors.joining("\n"));
    }

    private static String describe(Map.Entry<Thread, StackTraceElement[]> e) {
        StringBuilder b = new StringBuilder("  thread " + e.getKey().getName() + " (" + e.getKey().getState() + ")");
        for (StackTraceElement s : e.getValue()) b.append("\n    at ").append(s);
        return b.toString();
    }
}
