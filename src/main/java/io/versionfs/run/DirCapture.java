package io.versionfs.run;

import io.versionfs.capture.TargetMatcher;
import io.versionfs.capture.Targets;
import io.versionfs.capture.VersionNaming;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.fs.CaptureFs;
import io.versionfs.fs.FuseMount;
import io.versionfs.text.Log;
import io.versionfs.report.Summary;
import io.versionfs.sys.Posix;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * Directory mode: the job's working folder itself is served through the capture filesystem,
 * mounted over its own path. The program sees its folder at the same path as without versionfs
 * (absolute paths in its input keep working), and every create, rename, delete and atomic save in
 * it goes through us, so renames that defeat the symlink are seen.
 *
 * <p>The trick that makes mounting over the folder possible: we open a descriptor on the folder
 * <em>before</em> mounting, and the filesystem serves everything relative to that descriptor
 * (the real files stay where they are; nothing needs restoring at the end). Our own accesses to
 * versions folders inside it go through /proc/self/fd/N, never through the mount.
 */
final class DirCapture implements Capture {
    /** Lock file in the folder: one run at a time serves it. */
    static final String LOCK = ".versionfs-lock";

    private final Path folder;
    private final List<String> patterns;
    private final Path versionsDir;
    private final Instant start;
    /** Applied to each versions folder opened (keep rules, headroom, hook). */
    private final StoreRules rules;
    private int rootFd = -1;
    private Targets targets;
    private CaptureFs fs;
    private FuseMount mount;
    private final List<String> events = new ArrayList<>();
    /** Files written behind the mount (a process in an older mount namespace), each with its summary line. */
    private final java.util.Map<Path, String> behind = new java.util.LinkedHashMap<>();

    /** @param versionsDir one versions folder for every file (null: NAME.versions beside each) */
    DirCapture(Path folder, List<String> patterns, Path versionsDir, Instant start, StoreRules rules) {
        this.folder = folder;
        this.patterns = patterns;
        this.versionsDir = versionsDir;
        this.start = start;
        this.rules = rules;
    }

    /** Target arguments become patterns relative to the working folder. */
    static List<String> patterns(List<Path> given, Path folder) {
        List<String> out = new ArrayList<>();
        for (Path g : given) {
            String s = g.toString();
            if (g.isAbsolute()) {
                Path n = g.normalize();
                if (!n.startsWith(folder) || n.equals(folder)) {
                    throw new UserError(ExitCodes.BAD_TARGET, "--target " + g + " is outside the working folder " + folder
                            + ": in --mode dir targets are files of the folder the job runs in (cd there first)");
                }
                s = folder.relativize(n).toString();
            } else if (s.startsWith("../") || s.equals("..")) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target " + g + " is outside the working folder: in --mode dir"
                        + " targets are files of the folder the job runs in (cd there first)");
            }
            if (s.isBlank()) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target is empty: give a file name or a glob (e.g. --target '*.gbw')");
            }
            if (s.startsWith("./")) s = s.substring(2);
            // Literal names first: an existing file named job[1].gbw is that file, not a pattern.
            boolean literal = TargetMatcher.isGlob(s) && Files.exists(folder.resolve(s), java.nio.file.LinkOption.NOFOLLOW_LINKS);
            boolean glob = TargetMatcher.isGlob(s) && !literal;
            Preflight.nameFits(folder.resolve(s), g.toString());
            if (!glob) {
                Preflight.notSpecial(folder.resolve(s), g.toString());
                Preflight.notASymlink(folder.resolve(s));
            }
            if (Files.isDirectory(folder.resolve(s)) && !glob) {
                throw new UserError(ExitCodes.BAD_TARGET, "--target " + g + " is a directory: give the file the program overwrites");
            }
            out.add(literal ? TargetMatcher.literal(s) : s);
        }
        return out;
    }

    @Override
    public void prepare(Cleanup undo) {
        RunLock.refuseIfServed(folder, folder.resolve(LOCK));
        RunLock l = RunLock.acquire(folder.resolve(LOCK), "the folder " + folder + " (--mode dir)");
        undo.push("unlock " + folder, l::close);
        if (versionsDir != null) RunLock.takeVersionsFolder(versionsDir.toAbsolutePath().normalize(), undo);
    }

    @Override
    public void mount(Cleanup undo, Runnable betweenTargets) throws IOException {
        rootFd = Posix.openDir(folder.toString());
        undo.push("close the versions folders of " + folder, this::close);
        Path viaFd = Path.of("/proc/self/fd/" + rootFd);
        removeTempsOfKilledRun(viaFd);
        targets = versionsDir != null ? intoOneFolder(viaFd) : intoFolderPerFile(viaFd);
        fs = new CaptureFs(rootFd, targets);
        fs.createAtLookup(); // the job's deletes go through libfuse here: see CaptureFs.getattr
        saveInitialContent(viaFd);
        fs.onNamespaceEvent(ev -> {
            synchronized (events) {
                events.add(ev);
            }
            Log.info(ev + " (seen in directory mode; versions continue)");
        });
        mount = FuseMount.mountOver(fs, folder);
    }

    /** --versions-dir: every matching file's versions in that one folder (reached through {@code viaFd} if inside). */
    private Targets intoOneFolder(Path viaFd) {
        Path shown = versionsDir.toAbsolutePath().normalize();
        boolean inside = shown.startsWith(folder);
        Path access = inside ? viaFd.resolve(folder.relativize(shown)) : shown;
        VersionStore fixed = VersionStore.openChecked(access, shown, start);
        rules.apply(fixed);
        return new Targets().add(new TargetMatcher(patterns), fixed, inside ? folder.relativize(shown).toString() : null);
    }

    /** NAME.versions beside each matching file, opened when the file is first seen. */
    private Targets intoFolderPerFile(Path viaFd) {
        return new Targets().addPerFile(new TargetMatcher(patterns), rel -> {
            String vname = VersionNaming.versionsFolderOf(rel);
            Path shown = folder.resolve(vname);
            if (Files.exists(viaFd.resolve(vname), java.nio.file.LinkOption.NOFOLLOW_LINKS)
                    && !Files.isDirectory(viaFd.resolve(vname), java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                throw new IOException(shown + " exists and is not a folder: move it away to version " + rel);
            }
            VersionStore store = VersionStore.open(viaFd.resolve(vname), shown, start);
            rules.apply(store, viaFd.resolve(rel));
            return store;
        });
    }

    /**
     * Existing targets are saved as version "initial" (a hard link: the user's original file is
     * never modified; the first write through the mount copies first), as in symlink mode.
     */
    private void saveInitialContent(Path viaFd) throws IOException {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(viaFd)) {
            for (Path p : ds) {
                String rel = p.getFileName().toString();
                if (Files.isSymbolicLink(p) && new TargetMatcher(patterns).matches(rel)) {
                    // Writes through a symlink land where it points, outside what we serve.
                    String to = String.valueOf(Files.readSymbolicLink(p));
                    targets.markUnversionable(rel, rel + " is a symlink (to " + to + "): what is written through it is not"
                            + " versioned; give the real file as target, or run in its folder");
                    continue;
                }
                if (!Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) continue;
                fs.captureInitial(rel);
            }
        }
    }

    /** COW temp files (hidden from the program) of a run that was SIGKILLed: copies, safe to drop. */
    private static void removeTempsOfKilledRun(Path viaFd) throws IOException {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(viaFd, CaptureFs.TMP_PREFIX + "*")) {
            for (Path p : ds) {
                Log.info("removing " + p.getFileName() + ", a temporary copy left by a versionfs run that was killed");
                Files.deleteIfExists(p);
            }
        }
    }

    @Override
    public List<Path> mountPoints() {
        return mount == null ? List.of() : List.of(folder);
    }

    @Override
    public void stopWaits() {
        if (fs != null) fs.stop();
    }

    @Override
    public void finish(LongSupplier detachBudgetMillis) {
        if (mount == null) return;
        try {
            mount.finish(5_000, detachBudgetMillis.getAsLong());
        } catch (RuntimeException e) {
            Log.warn("finishing capture in " + folder + ": " + e);
        }
    }

    /** Closes the versions folders (opened as files appeared) and the descriptor the mount served from. */
    private void close() {
        if (targets != null) for (VersionStore s : targets.stores()) s.close();
        if (rootFd >= 0) Posix.C.close(rootFd);
        rootFd = -1;
    }

    @Override
    public int unversionable() {
        return (targets == null ? 0 : targets.unversionable().size()) + behind.size();
    }

    @Override
    public List<VersionStore> stores() {
        return targets == null ? List.of() : targets.stores();
    }

    @Override
    public void takeNotes() {
        for (VersionStore s : stores()) {
            s.drain();
            if (s.skippedCount() > 0) continue; // see WrittenBehind.check
            s.versions().forEach((file, vs) -> {
                Path f = fileOf(s, file);
                String why = WrittenBehind.check(f, vs);
                if (why != null) {
                    behind.put(f, why);
                    Log.warn(why);
                }
            });
        }
    }

    @Override
    public void report(Summary summary) {
        summary.put("mode", "dir (" + folder + " served through versionfs)");
        reports().forEach(summary::add);
    }

    /**
     * The file of series {@code file} in {@code s}: with --versions-dir a series is named by its
     * path in the folder; otherwise by the file's name, beside its NAME.versions folder (a target
     * in a subfolder was reported, and checked for writes behind the mount, as if it were in the
     * folder itself: a false alarm on an unrelated file of that name).
     */
    private Path fileOf(VersionStore s, String file) {
        return versionsDir != null ? folder.resolve(file) : s.dir().getParent().resolve(file);
    }

    /** {@code r} with one more line under it (the folder's --on-version note goes under its last file). */
    private static Summary.FileReport withNote(Summary.FileReport r, String note) {
        List<String> w = new ArrayList<>(r.warnings());
        w.add(note);
        return new Summary.FileReport(r.file(), r.versionsDir(), r.manifest(), r.versions(), w);
    }

    /** One report per versioned file, grouped by file. */
    private List<Summary.FileReport> reports() {
        List<Summary.FileReport> out = new ArrayList<>();
        if (targets != null) {
            targets.unversionable().forEach((rel, why) -> out.add(new Summary.FileReport(folder.resolve(rel).toString(),
                    "-", "-", null, List.of("NOT versioned: " + why))));
        }
        for (VersionStore s : stores()) {
            int first = out.size();
            s.versions().forEach((file, vs) -> {
                Path f = fileOf(s, file);
                out.add(new Summary.FileReport(f.toString(), s.dir().toString(), s.manifestPath().toString(), vs,
                        behind.containsKey(f) ? List.of(behind.get(f)) : List.of()));
            });
            if (s.hooks() != null && out.size() > first) out.set(out.size() - 1, withNote(out.get(out.size() - 1), s.hooks().report()));
        }
        if (out.isEmpty()) {
            out.add(new Summary.FileReport(String.join(", ", patterns) + " (in " + folder + ")", "-", "-", null,
                    List.of("no file matching the targets was written")));
        }
        return out;
    }
}
