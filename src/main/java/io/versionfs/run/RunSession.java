package io.versionfs.run;

import io.versionfs.capture.VersionLog;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.fs.FuseSupport;
import io.versionfs.text.Log;
import io.versionfs.report.Progress;
import io.versionfs.report.Summary;
import io.versionfs.sys.Errno;
import io.versionfs.sys.JvmEnv;
import io.versionfs.sys.ProcessCpu;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.locks.Lock;

/**
 * One {@code versionfs run}: check, set up the capture, run the job, and on every way out (normal
 * end, job failure, signal, set-up failure) end the capture, put the user's files back and
 * report. Set-up pushes the undo of each thing it takes on {@link Cleanup}; the tear-down runs in
 * a fixed order (see {@link #tearDown}).
 */
public final class RunSession {

    public enum Mode { SYMLINK, DIR }

    /** How the job's renames, deletes and links of a target are handled in symlink mode. */
    public record Renames(boolean follow, boolean trap) {
        /** Held by the name trap while versionfs does them (the default). */
        boolean trapped() {
            return follow && trap;
        }

        /** The option that declined the trap, as the message names it; null if none did. */
        String declinedBy() {
            return trap ? follow ? null : "--no-follow" : follow ? "--no-trap" : "--no-trap --no-follow";
        }
    }

    /** What the run prints (--json, progress) and whether a lost version fails a successful job (--strict). */
    public record Output(boolean json, boolean progress, boolean strict) {}

    public record Options(List<Path> targets, Mode mode, Path versionsDir, Path mountDir, List<String> command,
                          long graceMillis, Renames renames, StoreRules rules, Output output) {}

    /** How the run ended: the exit code, the summary's status line, and the error if versionfs failed. */
    private record Outcome(int exit, String status, UserError failure) {
        static Outcome ended(int exit) {
            return new Outcome(exit, describeExit(exit), null);
        }

        static Outcome failed(UserError e, String status) {
            return new Outcome(e.code, status, e);
        }
    }

    private final Options opt;
    private final Path cwd = Path.of("").toAbsolutePath();
    private final JobSupervisor job = new JobSupervisor();
    private final Cleanup undo = new Cleanup();
    private Capture capture;
    /** Our children before the job started (fusermount's auto_unmount helpers): not the job's leftovers. */
    private Set<Long> ours = Set.of();
    private Progress progress;

    public RunSession(Options opt) {
        this.opt = opt;
    }

    public int execute() {
        Instant start = Instant.now();
        capture = checked(start);
        Log.phase("checked");
        Outcome end;
        try {
            setUp();
            Log.phase("set up");
            end = Outcome.ended(runJob());
            Log.phase("job ended");
        } catch (UserError e) {
            end = Outcome.failed(e, "versionfs error: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            end = Outcome.failed(new UserError(ExitCodes.INTERNAL, "interrupted"), "not started");
        } catch (IOException e) {
            end = Outcome.failed(new UserError(Errno.isNoSpace(e) ? ExitCodes.NO_SPACE : ExitCodes.INTERNAL,
                    "setting up: " + e.getMessage()), "versionfs error: " + e.getMessage());
        } finally {
            tearDown();
        }
        Log.phase("torn down");
        int rc = answer(start, end);
        Log.phase("summary printed");
        if (job.started()) JvmEnv.markTrainingRun();
        return rc;
    }

    /** Checks that refuse a run before anything is touched (one line, no summary); the capture the options ask for. */
    private Capture checked(Instant start) {
        Preflight.workingFolderAlive(cwd);
        Capture c = opt.mode() == Mode.DIR
                ? new DirCapture(cwd, DirCapture.patterns(opt.targets(), cwd), opt.versionsDir(), start, opt.rules())
                : new LinkCapture(Preflight.targets(opt.targets(), cwd), opt.versionsDir(), opt.mountDir(), opt.renames(),
                        opt.rules(), start, opt.command());
        Preflight.command(opt.command());
        Preflight.grace(opt.graceMillis());
        FuseSupport.check();
        return c;
    }

    private void setUp() throws IOException {
        Reaper.becomeSubreaper();
        Signals.install(sig -> job.onSignal(sig.getNumber(), sig.getName()));
        capture.prepare(undo);
        Log.phase("prepared");
        capture.mount(undo, job::abortIfSignalled);
        Log.phase("mounted");
        if (ContainerRuntime.of(opt.command()) == ContainerRuntime.PODMAN && io.versionfs.sys.Posix.C.geteuid() != 0) {
            String blind = PodmanPause.blindTo(capture.mountPoints());
            if (blind != null) Log.warn(blind);
        }
        // Symlink mode starts agents on the other nodes, or says why not (LinkCapture).
        String multiNode = opt.mode() == Mode.DIR ? SlurmContext.current().multiNodeWarning(true) : null;
        if (multiNode != null) Log.warn(multiNode);
    }

    /** Starts the job and waits for it to end; its exit code. */
    private int runJob() throws InterruptedException {
        ours = Reaper.currentChildren();
        job.start(opt.command(), cwd, capture.beforeJob());
        Log.phase("job started");
        capture.jobStarted();
        if (opt.output().progress()) progress = new Progress(this::allVersions);
        // A writer waiting on a copy must not survive the KILL that ends the grace period.
        return job.await(opt.graceMillis(), capture::stopWaits);
    }

    /**
     * The end of every run, in the order that loses nothing: processes first (nothing may hold the
     * files), then the capture's end ({@link CaptureEnd}: pending closes, a last version of
     * unclosed changes, unmount, symlinks become regular files, hooks get their deadline, the
     * versions folders are drained, then set-up is undone in reverse).
     */
    private void tearDown() {
        if (progress != null) progress.close();
        capture.stopWatching();
        Log.phase("stopped watching");
        endLeftovers();
        Log.phase("leftovers ended");
        capture.jobGone(); // the name trap closes only now: until the leftovers are gone it may hold their calls
        Log.phase("trap closed");
        CaptureEnd.run(capture, this::detachBudget, this::hooksMillis, undo);
    }

    /** TERM, then KILL, to what the job left running; never to our own --on-version commands. */
    private void endLeftovers() {
        if (!job.started()) return;
        // No hook may be half-started while the leftovers are listed (it would look like one).
        List<Lock> locks = new ArrayList<>();
        for (VersionStore s : capture.stores()) if (s.hooks() != null) locks.add(s.hooks().spawnLock());
        List<Lock> held = lockAll(locks, HOOK_START_WAIT_MILLIS);
        if (held.size() < locks.size()) {
            Log.warn("an --on-version command has been starting for " + HOOK_START_WAIT_MILLIS / 1000 + " s: the job's"
                    + " leftovers are ended without waiting for it, and it may be ended with them");
        }
        try {
            Reaper.endLeftovers(pid -> ours.contains(pid) || isHook(pid), 3_000);
        } finally {
            held.forEach(Lock::unlock);
        }
    }

    /** How long the end waits for a hook's process to finish starting (a start never hangs, unless something is badly wrong). */
    static final long HOOK_START_WAIT_MILLIS = 5_000;

    /**
     * Takes each of {@code locks} within {@code millis} in all, and returns those it got: the
     * end of a run goes on rather than wait for ever (a TERM from Slurm must still end the run).
     */
    static List<Lock> lockAll(List<Lock> locks, long millis) {
        long deadline = System.nanoTime() + millis * 1_000_000L;
        List<Lock> held = new ArrayList<>();
        for (Lock l : locks) {
            try {
                if (l.tryLock(Math.max(0, deadline - System.nanoTime()), java.util.concurrent.TimeUnit.NANOSECONDS)) held.add(l);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return held;
    }

    /** Asked again at each look: hooks come and go. */
    private boolean isHook(long pid) {
        for (VersionStore s : capture.stores()) if (s.hooks() != null && s.hooks().isLive(pid)) return true;
        return false;
    }

    /**
     * Time for the end-of-run copies that separate live files from their last versions: all it
     * takes after a normal end; after TERM/INT/HUP (Slurm's KillWait is 30 s by default) 15 s,
     * and a copy that does not fit is left undone and said (the summary names the fix).
     */
    private long detachBudget() {
        return job.stopRequested() ? DETACH_BUDGET_WHEN_STOPPED_MILLIS : Long.MAX_VALUE / 2_000_000;
    }

    static final long DETACH_BUDGET_WHEN_STOPPED_MILLIS = Long.getLong("versionfs.stopCopyBudgetMillis", 15_000);

    /** Pending --on-version commands get KillWait-sized time after TERM, 5 minutes otherwise. */
    private long hooksMillis() {
        return job.stopRequested() ? Math.min(opt.graceMillis(), 10_000) : 300_000;
    }

    private Map<String, VersionLog.Snapshot> allVersions() {
        Map<String, VersionLog.Snapshot> out = new LinkedHashMap<>();
        for (VersionStore s : capture.stores()) s.versions().forEach((f, v) -> out.put(s.dir() + "/" + f, v));
        return out;
    }

    /** Prints the summary (or the one line of a run refused before anything changed); the run's exit code. */
    private int answer(Instant start, Outcome end) {
        Summary summary = summary(start, end.status());
        UserError failure = end.failure();
        if (failure != null && !job.started()) {
            // Refused before the job started: one line says it all. The target is as it was; at
            // most its "initial" version was saved (e.g. when agents on other nodes failed after the mount).
            System.err.println("versionfs: error: " + failure.getMessage());
            return failure.code;
        }
        summary.printHuman(System.err);
        if (opt.output().json()) {
            System.out.println(summary.toJson());
            System.out.flush();
        }
        if (failure != null) {
            System.err.println("versionfs: error: " + failure.getMessage());
            return failure.code;
        }
        // The job's own answer is the run's (a Slurm afterok chain follows the job, not us);
        // --strict makes a loss fail a successful job.
        return opt.output().strict() && end.exit() == 0 && summary.anyLoss() ? ExitCodes.VERSIONS_LOST : end.exit();
    }

    private Summary summary(Instant start, String status) {
        Summary s = new Summary(start)
                .put("command", String.join(" ", opt.command()))
                .put("status", status)
                .put("wall", Summary.elapsed(Duration.between(start, Instant.now())).substring(1));
        String slurmJob = SlurmContext.current().jobLine();
        if (slurmJob != null) s.put("slurm", slurmJob);
        capture.report(s);
        s.uncounted(capture.unversionable(), capture.noticedAfterTheFact());
        return s.cpu(ProcessCpu.now());
    }

    static String describeExit(int code) {
        if (code > 128 && code < 128 + 65) return "killed by " + Signals.name(code - 128) + " (exit " + code + ")";
        return "exit " + code;
    }
}
