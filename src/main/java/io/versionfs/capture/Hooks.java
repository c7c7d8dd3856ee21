package io.versionfs.capture;

import io.versionfs.text.Log;

import java.io.File;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code --on-version CMD}: runs CMD (through {@code sh -c}, at nice 10) after each version is
 * published (its own read-only file, which the job no longer writes) and hashed, with VERSIONFS_PATH, VERSIONFS_VERSION and VERSIONFS_TARGET set. Never in the
 * program's close(): hooks run on their own threads (one at a time per versions folder by
 * default), from a bounded backlog; output goes to {@code hooks.log} in the versions folder; each
 * exit status is a manifest line. At the end of the run, pending hooks get a deadline; what is
 * left undone is counted and can be run later with {@code versionfs hook}.
 */
public final class Hooks {
    public static final String LOG = "hooks.log";
    private static final int BACKLOG = 1000;

    private final String command;
    private final Path dir;
    private final ThreadPoolExecutor pool;
    private final AtomicInteger ran = new AtomicInteger(), failed = new AtomicInteger(), undone = new AtomicInteger();
    private final AtomicLong firstUndone = new AtomicLong(Long.MAX_VALUE);
    private volatile java.util.function.Consumer<ManifestLine.Builder> manifest = l -> {};

    public Hooks(String command, int jobs, Path dir) {
        this.command = command;
        this.dir = dir;
        this.logAccess = dir.resolve(LOG);
        this.pool = new ThreadPoolExecutor(jobs, jobs, 60, TimeUnit.SECONDS, new ArrayBlockingQueue<>(BACKLOG), r -> {
            Thread t = new Thread(r, "versionfs-hook");
            t.setDaemon(true);
            return t;
        });
    }

    /** The command, for the agents on the other nodes of a job (they run it for their own versions). */
    public String command() {
        return command;
    }

    public int jobs() {
        return pool.getCorePoolSize();
    }

    void manifest(java.util.function.Consumer<ManifestLine.Builder> m) {
        this.manifest = m;
    }

    /**
     * How this process opens hooks.log: through the versions folder's descriptor during a run.
     * In directory mode the folder's own path leads through our mount, which keeps versions
     * folders read-only.
     */
    private volatile Path logAccess;

    void logAt(Path access) {
        this.logAccess = access;
    }

    /**
     * Queues the hook for a saved version, unless it was removed meanwhile (then the keep rules
     * counted its hook as skipped); a full backlog leaves it undone (counted), never blocks.
     */
    void queue(Version v, Path file) {
        synchronized (v) { // the remover reads hookQueued under the same monitor
            if (v.gone()) return;
            v.hookQueued = true;
        }
        try {
            pool.execute(new Task(v, file));
        } catch (RejectedExecutionException e) {
            markUndone(v.number);
        }
    }

    /** One queued hook; named so that what is left at the deadline can be counted by version. */
    private final class Task implements Runnable {
        final Version v;
        final Path file;

        Task(Version v, Path file) {
            this.v = v;
            this.file = file;
        }

        @Override
        public void run() {
            Hooks.this.run(v, file);
        }
    }

    /** The hook processes running now: ours, not the job's leftovers. */
    private final java.util.Set<Long> live = java.util.concurrent.ConcurrentHashMap.newKeySet();

    public boolean isLive(Object pid) {
        return live.contains(pid);
    }

    /**
     * Held from the start of a hook's process until its pid is known as ours. A process being
     * spawned is already our child (jspawnhelper) before {@code start()} returns: the end-of-run
     * sweep of the job's leftovers takes this lock so it never mistakes a starting hook for one.
     */
    private final java.util.concurrent.locks.ReentrantLock spawning = new java.util.concurrent.locks.ReentrantLock();

    /** Stops hooks from starting until {@code unlock()}: for the sweep of the job's leftovers. */
    public java.util.concurrent.locks.Lock spawnLock() {
        return spawning;
    }

    private void markUndone(long number) {
        undone.incrementAndGet();
        firstUndone.accumulateAndGet(number, Math::min);
    }

    /** Versions whose hook runs now: the keep rules leave them until it ends (lock: the Version, then this set). */
    private final java.util.Set<Long> running = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private final java.util.concurrent.atomic.AtomicInteger skipped = new java.util.concurrent.atomic.AtomicInteger();
    /** Told when a hook ends, so a version the keep rules waited for can go now. */
    private volatile java.util.function.Consumer<Version> onDone = v -> {};

    void onDone(java.util.function.Consumer<Version> c) {
        onDone = c;
    }

    /** Whether version {@code v}'s hook runs now (the keep rules must not remove it under the hook). */
    boolean busy(Version v) {
        return running.contains(v.number);
    }

    /** A version that will get no hook (removed before its turn, or before it was published): counted and said. */
    void skip(Version v, String why) {
        skipped.incrementAndGet();
        manifest.accept(ManifestLine.event("hook").file(v.file).version(v.number).status("skipped").why(why));
    }

    private void run(Version v, Path file) {
        synchronized (v) {
            if (v.gone()) {
                // Removed by the keep rules (or to make room) before its turn: nothing to run it on.
                skip(v, "the version was removed by the keep rules before its hook's turn");
                return;
            }
            running.add(v.number);
        }
        try {
            runOn(v, file);
        } finally {
            running.remove(v.number);
            onDone.accept(v);
        }
    }

    private void runOn(Version v, Path file) {
        Instant t0 = Instant.now();
        int rc;
        try {
            Process p = start(v, file);
            try {
                rc = p.waitFor();
            } catch (InterruptedException e) {
                // The end-of-run deadline passed: stop it, it is left undone (and can be run later).
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                markUndone(v.number);
                return;
            } finally {
                live.remove(p.pid());
            }
        } catch (Exception e) {
            rc = -1;
        }
        ran.incrementAndGet();
        if (rc != 0 && failed.incrementAndGet() == 1) {
            Log.warn("--on-version failed (exit " + rc + ") for version " + v.number + " of " + v.file + ": see "
                    + dir.resolve(LOG) + " (the job goes on)");
        }
        manifest.accept(ManifestLine.event("hook").file(v.file).version(v.number).exit(rc)
                .seconds(Duration.between(t0, Instant.now()).toMillis() / 1000.0));
    }

    /** Starts the hook's process on {@code file}; it is in {@link #live} before the spawn lock is let go. */
    private Process start(Version v, Path file) throws java.io.IOException {
        ProcessBuilder pb = new ProcessBuilder(commandLine());
        io.versionfs.sys.JvmEnv.clean(pb.environment());
        pb.environment().put("VERSIONFS_PATH", file.toString());
        pb.environment().put("VERSIONFS_VERSION", Long.toString(v.number));
        pb.environment().put("VERSIONFS_TARGET", v.file);
        File log = logAccess.toFile();
        pb.redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log)).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        spawning.lock();
        try {
            Process p = io.versionfs.sys.Spawns.start(pb); // not while libfuse forks fusermount
            live.add(p.pid());
            return p;
        } finally {
            spawning.unlock();
        }
    }

    /**
     * {@code nice -n 10 sh -c CMD}; as root, without CAP_DAC_OVERRIDE (setpriv drops it from the
     * bounding set): root ignores permission bits, and a version is read-only by its bits alone,
     * so without this a hook writing its {@code $VERSIONFS_PATH} would change a saved version.
     */
    private List<String> commandLine() {
        List<String> sh = List.of("nice", "-n", "10", "sh", "-c", command);
        if (io.versionfs.sys.Posix.C.geteuid() != 0) return sh;
        if (!SETPRIV.canExecute()) {
            Log.warnOnce("hooks-setpriv", "setpriv (util-linux) is missing: --on-version commands run as root can"
                    + " write the versions they are given (install util-linux)");
            return sh;
        }
        List<String> out = new java.util.ArrayList<>(List.of(SETPRIV.getPath(), "--bounding-set", "-dac_override", "--"));
        out.addAll(sh);
        return out;
    }

    private static final File SETPRIV = new File("/usr/bin/setpriv");

    /** Waits for pending hooks until the deadline; what is left is counted as undone. */
    public void finish(long deadlineMillis) {
        pool.shutdown();
        try {
            if (!pool.awaitTermination(Math.max(0, deadlineMillis), TimeUnit.MILLISECONDS)) {
                // Past the deadline: what is queued is left undone (counted); running ones are interrupted.
                for (Runnable r : pool.shutdownNow()) {
                    if (r instanceof Task t) markUndone(t.v.number);
                    else undone.incrementAndGet();
                }
                pool.awaitTermination(5, TimeUnit.SECONDS); // the interrupted ones record themselves
                Log.warn("--on-version commands still pending at the end of the run were left undone (see the summary)");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** One line for the summary. */
    public String report() {
        String s = "note: --on-version: " + ran.get() + " ran, " + failed.get() + " failed";
        if (skipped.get() > 0) s += ", " + skipped.get() + " skipped (their version was removed by the keep rules first)";
        if (undone.get() > 0) {
            s += ", " + undone.get() + " left undone: run them later with versionfs hook " + dir
                    + (firstUndone.get() != Long.MAX_VALUE ? " --from " + firstUndone.get() : "") + " -- '" + command + "'";
        }
        return s + " (output in " + dir.resolve(LOG) + ")";
    }
}
