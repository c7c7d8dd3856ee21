package io.versionfs.run;

import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.fs.FuseSupport;
import io.versionfs.report.Log;
import io.versionfs.report.Summary;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
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
    private static final int SIGKILL = 9;

    public enum Mode { SYMLINK, DIR }

    public record Options(List<Path> targets, Mode mode, Path versionsDir, Path mountDir, boolean json, long graceMillis,
                          List<String> command) {}

    private final Options opt;
    private final Path cwd = Path.of("").toAbsolutePath();
    private final List<TargetLink> links = new ArrayList<>();
    private final Map<Path, VersionStore> stores = new LinkedHashMap<>();
    /** Lock file beside each target (symlink mode) and in the folder (dir mode): one run at a time. */
    static final String TARGET_LOCK_SUFFIX = ".versionfs-lock", DIR_LOCK = ".versionfs-lock";
    private final Object signalLock = new Object();
    private volatile ChildProcess child;
    private volatile int setupSignal;           // a signal that arrived before the job started
    private volatile long stopRequestedAt;      // when TERM/INT/HUP was forwarded
    private volatile String lastSignal;

    public RunSession(Options opt) {
        this.opt = opt;
    }

    public int execute() {
        Instant start = Instant.now();
        DirCapture dirMode = opt.mode() == Mode.DIR
                ? new DirCapture(cwd, DirCapture.patterns(opt.targets(), cwd), opt.versionsDir(), start) : null;
        List<Path> targets = dirMode == null ? Preflight.targets(opt.targets(), cwd) : List.of();
        Preflight.command(opt.command());
        Preflight.grace(opt.graceMillis());
        FuseSupport.check();
        Reaper.becomeSubreaper();
        Signals.install(sig -> onSignal(sig.getNumber(), sig.getName()));

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
                    stores.put(vdir, store);
                }
                links.add(new TargetLink(t, store));
            }
            for (TargetLink l : links) {
                l.recoverEarlierRun();
                Preflight.notASymlink(l.target);
            }
            if (dirMode != null) dirMode.setup();
            if (!links.isEmpty()) privateDir = Preflight.privateDir(opt.mountDir());
            int i = 0;
            for (TargetLink l : links) {
                l.prepareLive();
                Path mp = privateDir.resolve("m" + i++);
                Files.createDirectory(mp);
                l.mount(mp);
                l.installLink();
                abortIfSignalled();
            }
            keep = Reaper.currentChildren();
            abortIfSignalled();
            startJob();
            watcher = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "versionfs-link-watch");
                t.setDaemon(true);
                return t;
            });
            watcher.scheduleWithFixedDelay(() -> links.forEach(TargetLink::check), 500, 500, TimeUnit.MILLISECONDS);
            while (!child.waitFor(200)) {
                long asked = stopRequestedAt;
                if (asked > 0 && System.currentTimeMillis() - asked > opt.graceMillis()) {
                    Log.warn("the job is still running " + opt.graceMillis() / 1000 + " s after " + lastSignal
                            + ": killing it (SIGKILL) to save the versions before the batch system kills us");
                    links.forEach(TargetLink::stopWaits); // a writer waiting on a copy must not survive the KILL
                    if (dirMode != null) dirMode.stopWaits();
                    child.signal(SIGKILL);
                    stopRequestedAt = 0;
                }
            }
            exit = child.exitCode();
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
            failure = new UserError(TargetLink.isNoSpace(e) ? ExitCodes.NO_SPACE : ExitCodes.INTERNAL, "setting up: " + e.getMessage());
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
            if (child != null) Reaper.endLeftovers(keep, 3_000);
            if (dirMode != null) {
                try {
                    dirMode.finish(5_000, detachBudget());
                } catch (RuntimeException e) {
                    Log.warn("finishing capture in " + cwd + ": " + e);
                }
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
            for (VersionStore s : stores.values()) s.close();
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
        boolean started = child != null;
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
        if (exit == 0 && (summary.totalLost() > 0 || (dirMode != null && dirMode.unversionableCount() > 0))) {
            return ExitCodes.VERSIONS_LOST;
        }
        return exit;
    }

    /**
     * Time for the end-of-run copies that separate live files from their last versions: all it
     * takes after a normal end; after TERM/INT/HUP (Slurm's KillWait is 30 s by default) 15 s,
     * and a copy that does not fit is left undone and said (the summary names the fix).
     */
    private long detachBudget() {
        return lastSignal != null && !lastSignal.equals("SIGUSR1") && !lastSignal.equals("SIGUSR2")
                ? DETACH_BUDGET_WHEN_STOPPED_MILLIS : Long.MAX_VALUE / 2_000_000;
    }

    static final long DETACH_BUDGET_WHEN_STOPPED_MILLIS = 15_000;

    private void abortIfSignalled() {
        synchronized (signalLock) {
            if (setupSignal != 0) {
                throw new UserError(128 + setupSignal, "stopped by " + lastSignal + " before the job started");
            }
        }
    }

    /**
     * Starts the job under the signal lock: a signal that arrives while it starts is either seen
     * by the last check before (the run stops without starting it) or forwarded, and timed, right
     * after: never lost between the two.
     */
    private void startJob() {
        synchronized (signalLock) {
            abortIfSignalled();
            try {
                child = ChildProcess.start(opt.command(), cwd);
            } catch (IOException e) {
                throw new UserError(ExitCodes.CHILD_NOT_FOUND, "cannot start " + opt.command().get(0) + ": " + e.getMessage());
            }
        }
    }

    private void onSignal(int number, String name) {
        synchronized (signalLock) {
            lastSignal = "SIG" + name;
            ChildProcess c = child;
            if (c == null) {
                setupSignal = number;
                return;
            }
            Log.info("received SIG" + name + ": forwarding it to the job (pid " + c.pid() + ")");
            c.signal(number);
            if ((name.equals("TERM") || name.equals("INT") || name.equals("HUP")) && stopRequestedAt == 0) {
                stopRequestedAt = System.currentTimeMillis();
            }
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

    static String describeExit(int code) {
        if (code > 128 && code < 128 + 65) return "killed by " + Signals.name(code - 128) + " (exit " + code + ")";
        return "exit " + code;
    }

    private Summary summary(Instant start, String status, DirCapture dirMode) {
        Summary s = new Summary(start)
                .put("command", String.join(" ", opt.command()))
                .put("status", status)
                .put("wall", Summary.elapsed(Duration.between(start, Instant.now())).substring(1));
        String job = System.getenv("SLURM_JOB_ID");
        if (job != null) {
            String arr = System.getenv("SLURM_ARRAY_JOB_ID");
            String task = System.getenv("SLURM_ARRAY_TASK_ID");
            s.put("slurm", arr != null && task != null ? "job " + job + " (array " + arr + "_" + task + ")" : "job " + job);
        }
        if (dirMode != null) {
            s.put("mode", "dir (" + cwd + " served through versionfs)");
            dirMode.reports().forEach(s::add);
        }
        for (TargetLink l : links) {
            s.add(new Summary.FileReport(l.target.toString(), l.store.dir().toString(), l.store.manifestPath().toString(),
                    l.store.versions().get(l.name), l.problems()));
        }
        return s;
    }

    /** Checks that can fail before anything is touched. */
    static final class Preflight {
        private Preflight() {}

        static List<Path> targets(List<Path> given, Path cwd) {
            List<Path> out = new ArrayList<>();
            for (Path g : given) {
                if (g.toString().isBlank()) {
                    throw new UserError(ExitCodes.BAD_TARGET, "--target is empty: give the path of the file the program"
                            + " overwrites (e.g. --target job.gbw)");
                }
            }
            for (Path g : expandGlobs(given, cwd)) {
                Path t = cwd.resolve(g).normalize();
                nameFits(t, g.toString());
                if (out.contains(t)) throw new UserError(ExitCodes.BAD_TARGET, "--target " + g + " is given twice");
                Path dir = t.getParent();
                if (dir == null || !Files.isDirectory(dir)) {
                    throw new UserError(ExitCodes.BAD_TARGET, "the folder of --target " + g + " (" + dir
                            + ") does not exist: create it first, or fix the path");
                }
                if (!Files.isWritable(dir)) {
                    throw new UserError(ExitCodes.BAD_TARGET, "the folder of --target " + g + " (" + dir
                            + ") is not writable: versionfs puts a symlink there; run from a folder you can write");
                }
                if (Files.isDirectory(t, LinkOption.NOFOLLOW_LINKS)) {
                    throw new UserError(ExitCodes.BAD_TARGET, "--target " + g + " is a directory: give the file the"
                            + " program overwrites (e.g. job.gbw)");
                }
                notSpecial(t, g.toString());
                out.add(t);
            }
            return out;
        }

        /**
         * In symlink mode a glob can only mean the files that exist now (a symlink must be put in
         * place before the job starts); files created later need --mode dir.
         */
        static List<Path> expandGlobs(List<Path> given, Path cwd) {
            List<Path> out = new ArrayList<>();
            for (Path g : given) {
                String name = g.getFileName() == null ? "" : g.getFileName().toString();
                if (!io.versionfs.capture.TargetMatcher.isGlob(name)) {
                    out.add(g);
                    continue;
                }
                Path dir = cwd.resolve(g).normalize().getParent();
                java.nio.file.PathMatcher m = dir.getFileSystem().getPathMatcher("glob:" + name);
                List<Path> found = new ArrayList<>();
                try (java.nio.file.DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
                    for (Path p : ds) {
                        if (m.matches(p.getFileName()) && Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) found.add(p);
                    }
                } catch (IOException e) {
                    throw new UserError(ExitCodes.BAD_TARGET, "cannot list " + dir + " for --target " + g + ": " + e.getMessage());
                }
                if (found.isEmpty()) {
                    throw new UserError(ExitCodes.BAD_TARGET, "--target '" + g + "' matches no existing file: in the default"
                            + " symlink mode a pattern only covers files that exist when the job starts; use --mode dir"
                            + " to version files the job creates");
                }
                found.sort(null);
                out.addAll(found);
            }
            return out;
        }

        /** Room versionfs needs in a file name for its own suffixes (".NAME.versionfs-lock" is the longest). */
        static final int MAX_NAME_BYTES = 255 - ".versionfs-lock".length() - 1;

        static void nameFits(Path t, String given) {
            if (t.getFileName() == null) return;
            int n = t.getFileName().toString().getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
            if (n > MAX_NAME_BYTES) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target " + (given.length() > 40 ? given.substring(0, 40) + "..." : given)
                        + ": file name too long (" + n + " bytes; versionfs adds suffixes such as .versions and needs it"
                        + " to be at most " + MAX_NAME_BYTES + "): use a shorter name");
            }
        }

        static void grace(long millis) {
            if (millis < 0) {
                throw new UserError(ExitCodes.USAGE, "--grace must be 0 or more seconds, not " + millis / 1000
                        + " (the time the job gets between TERM and KILL)");
            }
        }

        /** Only regular files are versioned: a FIFO, socket or device as target is refused up front. */
        static void notSpecial(Path t, String given) {
            if (!Files.exists(t, LinkOption.NOFOLLOW_LINKS) || Files.isSymbolicLink(t)) return;
            if (!Files.isRegularFile(t, LinkOption.NOFOLLOW_LINKS)) {
                String kind;
                try {
                    Object mode = Files.getAttribute(t, "unix:mode", LinkOption.NOFOLLOW_LINKS);
                    int fmt = ((Integer) mode) & 0170000;
                    kind = switch (fmt) {
                        case 0010000 -> "a FIFO (named pipe)";
                        case 0140000 -> "a socket";
                        case 0020000 -> "a character device";
                        case 0060000 -> "a block device";
                        default -> "not a regular file";
                    };
                } catch (IOException | RuntimeException e) {
                    kind = "not a regular file";
                }
                throw new UserError(ExitCodes.BAD_TARGET, "--target " + given + " is " + kind + ": versionfs versions"
                        + " regular files only (give the file the program overwrites)");
            }
        }

        static void notASymlink(Path t) {
            if (Files.isSymbolicLink(t)) {
                String to;
                try {
                    to = Files.readSymbolicLink(t).toString();
                } catch (IOException e) {
                    to = "?";
                }
                throw new UserError(ExitCodes.BAD_TARGET, "--target " + t + " is a symlink (to " + to
                        + "): give the real file's path instead");
            }
        }

        static void command(List<String> command) {
            if (command == null || command.isEmpty()) {
                throw new UserError(ExitCodes.USAGE, "no command to run: put it after --, e.g. versionfs run --target job.gbw -- orca job.inp");
            }
            String c = command.get(0);
            if (c.contains("/")) {
                Path p = Path.of(c);
                if (!Files.exists(p)) throw new UserError(ExitCodes.CHILD_NOT_FOUND, "command not found: " + c + " does not exist");
                if (Files.isDirectory(p) || !Files.isExecutable(p)) {
                    throw new UserError(ExitCodes.CHILD_NOT_FOUND, "command " + c + " is not an executable file (chmod +x " + c + "?)");
                }
                return;
            }
            String path = System.getenv().getOrDefault("PATH", "");
            for (String d : path.split(":")) {
                if (d.isEmpty()) d = ".";
                Path p = Path.of(d, c);
                if (Files.isRegularFile(p) && Files.isExecutable(p)) return;
            }
            throw new UserError(ExitCodes.CHILD_NOT_FOUND, "command not found: '" + c + "' is not on PATH: give its full path"
                    + " or load its module before versionfs");
        }

        /** A fresh folder only we can enter, for the mount points. */
        static Path privateDir(Path mountDir) throws IOException {
            Path base = mountDir;
            if (base == null) {
                for (String env : new String[] {"SLURM_TMPDIR", "TMPDIR"}) {
                    String v = System.getenv(env);
                    if (v != null && !v.isBlank() && Files.isDirectory(Path.of(v)) && Files.isWritable(Path.of(v))) {
                        base = Path.of(v);
                        break;
                    }
                }
                if (base == null) base = Path.of("/tmp");
            }
            if (!Files.isDirectory(base) || !Files.isWritable(base)) {
                throw new UserError(ExitCodes.MOUNT_FAILED, "--mount-dir " + base + " is not a writable folder: give one"
                        + " on a local disk (e.g. /tmp)");
            }
            return Files.createTempDirectory(base.toAbsolutePath(), "versionfs-",
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        }
    }
}
