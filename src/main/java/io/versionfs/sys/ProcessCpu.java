package io.versionfs.sys;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The CPU time this JVM (the versionfs daemon) has used so far, user and system, and how it splits
 * over its threads: on a node whose cores all run the job, every CPU-second here is one the job
 * did not get. Read from {@code /proc/self/stat} (the process, exited threads included) and
 * {@code /proc/self/task/TID/stat} (each live thread, grouped by its name). The job and other
 * children are not in these figures.
 */
public final class ProcessCpu {
    /**
     * The kernel's unit for these fields is USER_HZ, which is 100 on every Linux architecture
     * (x86-64, arm64, ppc64le; sysconf(_SC_CLK_TCK)): 10 ms resolution.
     */
    private static final long MILLIS_PER_TICK = 10;

    /** Who spent it, by the thread names HotSpot, libfuse and versionfs give (15 characters as the kernel keeps them). */
    public enum Group {
        /** The main thread: start-up, set-up, waiting for the job, tear-down. */
        MAIN("main"),
        /** The JIT compilers (C1, C2) and the code cache sweeper. */
        JIT("jit"),
        /** The VM thread (the serial collector runs there) and any GC worker threads. */
        GC("gc"),
        /** libfuse's loop and worker threads: every request of the job on the mount. */
        FUSE("fuse"),
        /** The SHA-256 of each version. */
        HASHER("hasher"),
        /** Copy-on-write copies that separate a live file from its last version. */
        COPIER("copier"),
        /** Every other thread, and threads that have already ended. */
        OTHER("other");

        public final String key;

        Group(String key) {
            this.key = key;
        }

        static Group of(String comm, boolean firstTask) {
            if (comm.startsWith("versionfs-fuse")) return FUSE;
            if (comm.startsWith("versionfs-hash")) return HASHER;
            if (comm.startsWith("versionfs-copi")) return COPIER;
            if (comm.startsWith("C1 Compiler") || comm.startsWith("C2 Compiler") || comm.startsWith("Sweeper")) return JIT;
            if (comm.equals("VM Thread") || comm.startsWith("GC Thread") || comm.startsWith("G1 ")) return GC;
            // The launcher's primordial thread ("java", the task whose id is the pid) only waits;
            // the Java main thread is the other task named "java".
            if (comm.equals("java") && !firstTask) return MAIN;
            return OTHER;
        }
    }

    /** Milliseconds of CPU: user and system for the whole process, and user + system per group. */
    public record Usage(long userMillis, long sysMillis, Map<Group, Long> byGroup) {
        public long totalMillis() {
            return userMillis + sysMillis;
        }
    }

    /**
     * Each thread's group and CPU at the last {@link #rememberThreads}: the FUSE threads end at the
     * unmount, before the summary reads the figures, and an ended thread's time is otherwise only in
     * the process's total.
     */
    private static final Map<String, Seen> REMEMBERED = new ConcurrentHashMap<>();

    private record Seen(Group group, long millis) {}

    private ProcessCpu() {}

    /** Notes every live thread's CPU so far (call before threads end: the unmount ends libfuse's). */
    public static void rememberThreads() {
        try {
            eachTask((tid, g, ms) -> REMEMBERED.put(tid, new Seen(g, ms)));
        } catch (IOException | RuntimeException e) {
            // the figures then count those threads as OTHER
        }
    }

    /** Now, or null where /proc cannot be read (the summary then leaves the figure out). */
    public static Usage now() {
        try {
            Map<Group, Long> by = new EnumMap<>(Group.class);
            for (Group g : Group.values()) by.put(g, 0L);
            Map<String, Seen> ended = new HashMap<>(REMEMBERED);
            long[] counted = {0};
            eachTask((tid, g, ms) -> {
                ended.remove(tid);
                by.merge(g, ms, Long::sum);
                counted[0] += ms;
            });
            for (Seen s : ended.values()) {
                by.merge(s.group(), s.millis(), Long::sum);
                counted[0] += s.millis();
            }
            // Read after the threads, so it is never less than their sum and the groups add up to it.
            long[] total = ticks(Files.readString(Path.of("/proc/self/stat")));
            if (total == null) return null;
            long totalMillis = (total[0] + total[1]) * MILLIS_PER_TICK;
            // Threads that ended unseen (and what remembered ones did after) are in the process's figure only.
            by.merge(Group.OTHER, Math.max(0, totalMillis - counted[0]), Long::sum);
            return new Usage(total[0] * MILLIS_PER_TICK, total[1] * MILLIS_PER_TICK, by);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    private interface TaskVisitor {
        void visit(String tid, Group group, long millis);
    }

    /** Each live thread: its id, group and CPU milliseconds (a thread that ends meanwhile is skipped). */
    private static void eachTask(TaskVisitor v) throws IOException {
        String self = Path.of("/proc/self").toRealPath().getFileName().toString();
        try (DirectoryStream<Path> tasks = Files.newDirectoryStream(Path.of("/proc/self/task"))) {
            for (Path task : tasks) {
                String stat;
                try {
                    stat = Files.readString(task.resolve("stat"));
                } catch (IOException e) {
                    continue;
                }
                long[] t = ticks(stat);
                if (t == null) continue;
                String tid = task.getFileName().toString();
                String comm = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
                v.visit(tid, Group.of(comm, tid.equals(self)), (t[0] + t[1]) * MILLIS_PER_TICK);
            }
        }
    }

    /**
     * utime and stime (fields 14 and 15 of proc(5)) of a stat line, or null. The name in
     * parentheses may hold spaces and parentheses: the fields are counted after the last ')'.
     */
    static long[] ticks(String stat) {
        int close = stat.lastIndexOf(')');
        if (close < 0) return null;
        String[] f = stat.substring(close + 1).trim().split(" ");
        if (f.length < 13) return null;
        return new long[] {Long.parseLong(f[11]), Long.parseLong(f[12])};
    }
}
