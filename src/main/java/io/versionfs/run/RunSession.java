package io.versionfs.run;

import io.versionfs.capture.Retention;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.fs.FuseSupport;
import io.versionfs.report.Log;
import io.versionfs.report.Summary;
import io.versionfs.sys.Errno;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.LinkedHashSet;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * One {@code versionfs run}: check, set up every target, run the job, and on every way out
 * (normal end, job failure, signal, setup failure) put the user's files back, unmount, and
 * report. The order of the clean-up is the point of this class: processes first (nothing may
 * hold the files), then pending closes, then a last version of unclosed changes, then unmount,
 * then the symlinks become regular files again.
 */
public final class RunSession {

    public enum Mode { SYMLINK, DIR }

    public record Options(List<Path> targets, Mode mode, Path versionsDir, Path mountDir, boolean json, long graceMillis,
                          List<String> command, boolean follow, Retention.Policy retention, long minFree,
                          String onVersion, int onVersionJobs, boolean progress, boolean trap, boolean strict) {
        /** Sets up a versions folder the way the options ask (keep rules, headroom, hook). */
        void configure(VersionStore s) {
            s.retention(retention);
            s.minFree(minFree);
            if (onVersion != null) s.hooks(new io.versionfs.capture.Hooks(onVersion, onVersionJobs, s.dir()));
        }
    }

    private final Options opt;
    private final Path cwd = Path.of("").toAbsolutePath();
    private final List<TargetLink> links = new ArrayList<>();
    private final Map<Path, VersionStore> stores = new LinkedHashMap<>();
    /** Lock file beside each target (symlink mode) and in the folder (dir mode): one run at a time. */
    static final String TARGET_LOCK_SUFFIX = ".versionfs-lock", DIR_LOCK = ".versionfs-lock";
    private final JobSupervisor job = new JobSupervisor();
    private final Map<VersionStore, List<String>> storeNotes = new java.util.IdentityHashMap<>();

    public RunSession(Options opt) {
        this.opt = opt;
    }

    public int execute() {
        Instant start = Instant.now();
        Preflight.workingFolderAlive(cwd);
        DirCapture dirMode = opt.mode() == Mode.DIR
                ? new DirCapture(cwd, DirCapture.patterns(opt.targets(), cwd), opt.versionsDir(), start, opt::configure) : null;
        List<Path> targets = dirMode == null ? Preflight.targets(opt.targets(), cwd) : List.of();
        Preflight.command(opt.command());
        Preflight.grace(opt.graceMillis());
        FuseSupport.check();
        Reaper.becomeSubreaper();
        Signals.install(sig -> job.onSignal(sig.getNumber(), sig.getName()));

        Path privateDir = null;
        ScheduledExecutorService watcher = null;
        int exit = ExitCodes.INTERNAL;
        String status = "not started";
        UserError failure = null;
        Set<Long> keep = Set.of();
        Cleanup undo = new Cleanup();
        try {
            Map<Path, Path> vdirOf = new LinkedHashMap<>();
            for (Path t : targets) {
                Path vdir = opt.versionsDir() != null ? opt.versionsDir().toAbsolutePath().normalize()
                        : t.resolveSibling(t.getFileName() + ".versions");
                for (Map.Entry<Path, Path> other : vdirOf.entrySet()) {
                    if (other.getKey().getFileName().equals(t.getFileName()) && other.getValue().equals(vdir)) {
                        throw new UserError(ExitCodes.BAD_TARGET, "--target " + other.getKey() + " and --target " + t
                                + " have the same file name and would share the versions folder " + vdir
                                + ": give them separate folders (run versionfs once per target, or drop --versions-dir)");
                    }
                }
                vdirOf.put(t, vdir);
            }
            // Exclusion first: nothing is created, moved or deleted before every lock is ours, so
            // a refused run (another run holds the target) leaves the other run's files alone.
            for (Path t : targets) {
                RunLock.refuseInsideServed(t.getParent(), t.toString());
                Preflight.notInsideAVersionsFolder(t);
            }
            for (Path v : vdirOf.values()) RunLock.refuseInsideServed(v, "the versions folder " + v);
            if (dirMode != null) {
                RunLock.refuseIfServed(cwd, cwd.resolve(DIR_LOCK));
                RunLock l = RunLock.acquire(cwd.resolve(DIR_LOCK), "the folder " + cwd + " (--mode dir)");
                undo.push("unlock " + cwd, l::close);
            }
            for (Path t : targets) {
                RunLock l = RunLock.acquire(t.resolveSibling("." + t.getFileName() + TARGET_LOCK_SUFFIX), t.toString());
                undo.push("unlock " + t, l::close);
            }
            Set<Path> vdirs = new LinkedHashSet<>(vdirOf.values());
            if (dirMode != null && opt.versionsDir() != null) vdirs.add(opt.versionsDir().toAbsolutePath().normalize());
            for (Path vdir : vdirs) lockVersionsFolder(vdir, undo);
            for (Path t : targets) {
                Path vdir = vdirOf.get(t);
                VersionStore store = stores.get(vdir);
                if (store == null) {
                    store = VersionStore.openChecked(vdir, start);
                    opt.configure(store);
                    modeOf(t).ifPresent(store::restrictTo);
                    stores.put(vdir, store);
                }
                links.add(new TargetLink(t, store, opt.follow()));
            }
            for (TargetLink l : links) {
                l.recoverEarlierRun();
                Preflight.notASymlink(l.target);
            }
            if (dirMode != null) dirMode.setup();
            dirModeRef = dirMode;
            if (!links.isEmpty()) privateDir = Preflight.privateDir(opt.mountDir());
            int i = 0;
            for (TargetLink l : links) {
                l.prepareLive();
                Path mp = privateDir.resolve("m" + i++);
                Files.createDirectory(mp);
                l.mount(mp);
                l.installLink();
                job.abortIfSignalled();
            }
            String multiNode = SlurmContext.current().multiNodeWarning(dirMode != null);
            if (multiNode != null) Log.warn(multiNode);
            keep = Reaper.currentChildren();
            trap = links.isEmpty() || !opt.trap() || !opt.follow() ? null : NameTraps.prepare(links);
            job.start(opt.command(), cwd, trap == null ? null : trap::installHere);
            if (!links.isEmpty()) NameTraps.sayMode(trap, opt.trap() ? opt.follow() ? null : "--no-follow" : "--no-trap");
            links.forEach(TargetLink::startWatching);
            if (opt.progress()) progress = new io.versionfs.report.Progress(this::allVersions);
            watcher = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "versionfs-link-watch");
                t.setDaemon(true);
                return t;
            });
            watcher.scheduleWithFixedDelay(() -> links.forEach(TargetLink::check), 500, 500, TimeUnit.MILLISECONDS);
            exit = job.await(opt.graceMillis(), () -> {
                links.forEach(TargetLink::stopWaits); // a writer waiting on a copy must not survive the KILL
                if (dirMode != null) dirMode.stopWaits();
            });
            status = describeExit(exit);
        } catch (UserError e) {
            failure = e;
            exit = e.code;
            status = "versionfs error: " + e.getMessage();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            failure = new UserError(ExitCodes.INTERNAL, "interrupted");
            exit = failure.code;
        } catch (IOException e) {
            failure = new UserError(Errno.isNoSpace(e) ? ExitCodes.NO_SPACE : ExitCodes.INTERNAL, "setting up: " + e.getMessage());
            exit = failure.code;
            status = "versionfs error: " + e.getMessage();
        } finally {
            if (watcher != null) {
                watcher.shutdownNow();
                try {
                    // The watcher reads the symlinks restore is about to change: let it finish.
                    watcher.awaitTermination(5, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            if (progress != null) progress.close();
            links.forEach(TargetLink::stopWatching);
            if (job.started()) {
                // Our own --on-version commands are children too, but not the job's leftovers.
                Set<Long> before = keep;
                Set<Long> ours = new java.util.AbstractSet<>() { // asked again at each check: hooks come and go
                    @Override
                    public boolean contains(Object o) {
                        if (before.contains(o)) return true;
                        for (VersionStore s : allStores()) if (s.hooks() != null && s.hooks().isLive(o)) return true;
                        return false;
                    }

                    @Override
                    public java.util.Iterator<Long> iterator() {
                        return before.iterator();
                    }

                    @Override
                    public int size() {
                        return before.size();
                    }
                };
                // No hook may be half-started while the leftovers are listed (it would look like one).
                List<java.util.concurrent.locks.Lock> held = new ArrayList<>();
                for (VersionStore s : allStores()) {
                    if (s.hooks() == null) continue;
                    java.util.concurrent.locks.Lock l = s.hooks().spawnLock();
                    l.lock();
                    held.add(l);
                }
                try {
                    Reaper.endLeftovers(ours, 3_000);
                } finally {
                    held.forEach(java.util.concurrent.locks.Lock::unlock);
                }
            }
            if (trap != null) trap.close(); // every process of the job is gone: nothing is waiting in it
            if (dirMode != null) {
                try {
                    dirMode.finish(5_000, detachBudget());
                } catch (RuntimeException e) {
                    Log.warn("finishing capture in " + cwd + ": " + e);
                }
                finishHooks(dirMode.stores());
                dirModeNotes(dirMode);
                dirMode.close();
            }
            for (TargetLink l : links) {
                try {
                    l.finishCapture(5_000, detachBudget());
                } catch (RuntimeException e) {
                    Log.warn("finishing capture of " + l.target + ": " + e);
                }
            }
            for (TargetLink l : links) {
                boolean restored = false;
                try {
                    l.restore();
                    restored = true;
                } catch (IOException | RuntimeException e) {
                    Log.warn("could not put " + l.target + " back as a regular file (" + e.getMessage()
                            + "); its last content is in " + l.liveDir + " and the next run on this target recovers it");
                }
                l.cleanup(restored);
            }
            finishHooks(stores.values());
            for (VersionStore s : stores.values()) {
                s.drain();
                storeNotes.put(s, pruneNote(s)); // while its folder is still open
                s.close();
            }
            if (privateDir != null) {
                try {
                    Files.deleteIfExists(privateDir);
                } catch (IOException e) {
                    Log.debug("leaving " + privateDir + ": " + e.getMessage());
                }
            }
            undo.runAll();
        }
        Summary summary = summary(start, status, dirMode);
        boolean started = job.started();
        if (failure != null && !started && summary.totalAttempted() == 0) {
            // Refused before the job started: one line says it all (nothing was changed).
            System.err.println("versionfs: error: " + failure.getMessage());
            return failure.code;
        }
        summary.printHuman(System.err);
        if (opt.json()) {
            PrintStream out = System.out;
            out.println(summary.toJson());
            out.flush();
        }
        if (failure != null) {
            System.err.println("versionfs: error: " + failure.getMessage());
            return failure.code;
        }
        boolean lost = summary.totalLost() > 0 || (dirMode != null && dirMode.unversionableCount() > 0);
        // The job's own answer is the run's (a Slurm afterok chain follows the job, not us);
        // --strict makes a loss fail a successful job.
        if (opt.strict() && exit == 0 && lost) return ExitCodes.VERSIONS_LOST;
        return exit;
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

    /** The permission bits of an existing file (empty for a missing one: nothing to hide yet). */
    static java.util.OptionalInt modeOf(Path file) {
        try {
            return java.util.OptionalInt.of(((Number) Files.getAttribute(file, "unix:mode", LinkOption.NOFOLLOW_LINKS)).intValue() & 07777);
        } catch (IOException | RuntimeException e) {
            return java.util.OptionalInt.empty();
        }
    }

    /** Makes the versions folder (if missing) and locks it; a folder this run made is removed if it stays empty. */
    private static void lockVersionsFolder(Path vdir, Cleanup undo) {
        VersionStore.checkUsable(vdir);
        boolean created = !Files.exists(vdir, LinkOption.NOFOLLOW_LINKS);
        try {
            Files.createDirectories(vdir.resolve(VersionStore.HIDDEN));
        } catch (IOException e) {
            throw VersionStore.cannotUse(vdir, e);
        }
        if (created) undo.push("remove empty " + vdir, () -> VersionStore.removeIfUnused(vdir));
        RunLock l = RunLock.acquire(vdir.resolve(VersionStore.HIDDEN).resolve("lock"), "the versions folder " + vdir);
        undo.push("unlock " + vdir, l::close);
    }

    private io.versionfs.report.Progress progress;
    private io.versionfs.trap.NameTrap trap;

    private Map<String, io.versionfs.capture.VersionLog.Snapshot> allVersions() {
        Map<String, io.versionfs.capture.VersionLog.Snapshot> out = new LinkedHashMap<>();
        for (VersionStore s : allStores()) s.versions().forEach((f, v) -> out.put(s.dir() + "/" + f, v));
        return out;
    }

    /** Every versions folder of this run: the targets' in symlink mode, and those opened in directory mode. */
    private List<VersionStore> allStores() {
        List<VersionStore> all = new ArrayList<>(stores.values());
        if (dirModeRef != null) all.addAll(dirModeRef.stores());
        return all;
    }

    private volatile DirCapture dirModeRef;

    private long hooksUntil;

    /** Pending --on-version commands get until a deadline: KillWait-sized after TERM, 5 minutes otherwise. */
    private void finishHooks(java.util.Collection<VersionStore> ss) {
        if (hooksUntil == 0) {
            hooksUntil = System.currentTimeMillis() + (job.stopRequested() ? Math.min(opt.graceMillis(), 10_000) : 300_000);
        }
        for (VersionStore s : ss) {
            s.publishRemaining(); // the job is gone: what it could still write before, it cannot now
            s.drain(); // every hashed version has its hook queued
            if (s.hooks() != null) s.hooks().finish(hooksUntil - System.currentTimeMillis());
        }
    }

    private final List<String> dirNotes = new ArrayList<>();

    private void dirModeNotes(DirCapture d) {
        for (VersionStore s : d.stores()) {
            s.drain();
            if (s.hooks() != null) dirNotes.add(s.hooks().report());
        }
    }

    private List<String> pruneNote(VersionStore s) {
        List<String> out = new ArrayList<>();
        if (s.prunedCount() > 0) {
            out.add("note: keep rules (" + opt.retention().describe() + "): " + s.prunedCount()
                    + " version(s) pruned, each recorded in the manifest");
        }
        String usage = s.usage();
        if (usage != null && (s.prunedCount() > 0 || s.skippedCount() > 0 || s.dedupedBytes() > 0 || s.lostCount() > 0)) {
            out.add("note: storage " + usage);
        }
        if (s.hooks() != null) out.add(s.hooks().report());
        if (s.skippedCount() > 0) {
            out.add(s.skippedCount() + " close(s) not kept as versions: low space on the versions filesystem or low quota (--min-free);"
                    + " each is a 'skipped' line in the manifest");
        }
        return out;
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }

    static String describeExit(int code) {
        if (code > 128 && code < 128 + 65) return "killed by " + Signals.name(code - 128) + " (exit " + code + ")";
        return "exit " + code;
    }

    private Summary summary(Instant start, String status, DirCapture dirMode) {
        Summary s = new Summary(start)
                .put("command", String.join(" ", opt.command()))
                .put("status", status)
                .put("wall", Summary.elapsed(Duration.between(start, Instant.now())).substring(1));
        String slurmJob = SlurmContext.current().jobLine();
        if (slurmJob != null) s.put("slurm", slurmJob);
        if (dirMode != null) {
            s.put("mode", "dir (" + cwd + " served through versionfs)");
            dirMode.reports().forEach(s::add);
            if (!dirNotes.isEmpty()) {
                s.add(new Summary.FileReport("--on-version (" + cwd + ")", "-", "-", null, List.copyOf(dirNotes)));
            }
        }
        for (TargetLink l : links) {
            s.add(new Summary.FileReport(l.target.toString(), l.store.dir().toString(), l.store.manifestPath().toString(),
                    l.store.versions().get(l.name), concat(concat(l.followedSummary(), storeNotes.getOrDefault(l.store, List.of())), l.problems())));
        }
        return s;
    }
}
