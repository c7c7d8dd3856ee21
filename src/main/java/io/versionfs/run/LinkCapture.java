package io.versionfs.run;

import io.versionfs.capture.VersionNaming;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Log;
import io.versionfs.report.Summary;
import io.versionfs.trap.NameTrap;
import io.versionfs.sys.Posix;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * Symlink mode: each target becomes a symlink into a small mount of its own ({@link TargetLink}),
 * the mounts in one private folder. The job's renames, deletes and links of a target are held by
 * the name trap, or followed after the fact by watching the targets' folders.
 */
final class LinkCapture implements Capture {
    /** Lock file beside each target (".job.gbw.versionfs-lock"): one run at a time per target. */
    static final String LOCK_SUFFIX = ".versionfs-lock";

    private final List<Path> targets;
    private final Path versionsDir, mountDir;
    private final RunSession.Renames renames;
    private final StoreRules rules;
    /** The job's container runtime: with one, each mount goes into a hidden folder beside its target. */
    private final ContainerRuntime runtime;
    private final List<String> command;
    /** Why the trap stays off for this job's container runtime (setuid helpers), or null. */
    private String trapConflict;
    private final Instant start;
    private final List<TargetLink> links = new ArrayList<>();
    private final Map<Path, VersionStore> stores = new LinkedHashMap<>();
    private final Map<VersionStore, List<String>> notes = new IdentityHashMap<>();
    private NameTrap trap;
    /** Targets written behind the mount (a process in an older mount namespace), each with its summary line. */
    private final Map<TargetLink, String> behind = new IdentityHashMap<>();
    private ScheduledExecutorService watcher;
    /** The agents on the other nodes of a job on several nodes; null on one node. */
    private Agents agents;
    /** Where each folder's manifest.jsonl stood when the agents started: the merge rewrites from there. */
    private final Map<VersionStore, Long> marks = new IdentityHashMap<>();
    /** What each folder's merge found, per host (for --json's "nodes"). */
    private final Map<io.versionfs.capture.ManifestMerge.Result, VersionStore> merged = new IdentityHashMap<>();

    /**
     * @param versionsDir one versions folder for every target (null: TARGET.versions beside each)
     * @param mountDir    where to make the private folder for the mounts (null: node-local scratch)
     */
    LinkCapture(List<Path> targets, Path versionsDir, Path mountDir, RunSession.Renames renames, StoreRules rules, Instant start,
                List<String> command) {
        this.command = command;
        this.runtime = ContainerRuntime.of(command);
        this.targets = targets;
        this.versionsDir = versionsDir;
        this.mountDir = mountDir;
        this.renames = renames;
        this.rules = rules;
        this.start = start;
    }

    @Override
    public void prepare(Cleanup undo) throws IOException {
        Map<Path, Path> vdirOf = versionsFolders();
        // Exclusion first: nothing is created, moved or deleted before every lock is ours, so
        // a refused run (another run holds the target) leaves the other run's files alone.
        for (Path t : targets) {
            RunLock.refuseInsideServed(t.getParent(), t.toString());
            Preflight.notInsideAVersionsFolder(t);
        }
        for (Path v : vdirOf.values()) RunLock.refuseInsideServed(v, "the versions folder " + v);
        for (Path t : targets) {
            RunLock l = RunLock.acquire(t.resolveSibling("." + t.getFileName() + LOCK_SUFFIX), t.toString());
            undo.push("unlock " + t, l::close);
        }
        for (Path vdir : new LinkedHashSet<>(vdirOf.values())) RunLock.takeVersionsFolder(vdir, undo);
        for (Path t : targets) links.add(new TargetLink(t, open(vdirOf.get(t), t, undo), renames.follow()));
        for (TargetLink l : links) {
            l.recoverEarlierRun();
            Preflight.notASymlink(l.target);
        }
        agents = planAgents();
        if (agents != null) {
            for (VersionStore s : stores.values()) {
                s.acrossNodes(new io.versionfs.capture.NodeNumbering(agents.batchNode()));
                s.drain();
                marks.put(s, io.versionfs.capture.ManifestMerge.mark(s)); // this run's lines, from the initial version on
            }
            links.forEach(l -> l.acrossNodes = true);
        }
    }

    /** On several nodes: agents if they can be started, else the one warning (what works, what not). */
    private static Agents planAgents() {
        SlurmContext ctx = SlurmContext.current();
        if (ctx.nodes() <= 1) return null;
        Agents.Decision d = Agents.decide(ctx);
        if (d.agents() == null) Log.warn(ctx.multiNodeWarning(false) + " (No versionfs agents on the other nodes: " + d.whyNot() + ".)");
        return d.agents();
    }

    /** Each target's versions folder; two targets of the same name cannot share one. */
    private Map<Path, Path> versionsFolders() {
        Map<Path, Path> vdirOf = new LinkedHashMap<>();
        for (Path t : targets) {
            Path vdir = versionsDir != null ? versionsDir.toAbsolutePath().normalize() : t.resolveSibling(VersionNaming.versionsFolderOf(t.getFileName().toString()));
            for (Map.Entry<Path, Path> other : vdirOf.entrySet()) {
                if (other.getKey().getFileName().equals(t.getFileName()) && other.getValue().equals(vdir)) {
                    throw new UserError(ExitCodes.BAD_TARGET, "--target " + other.getKey() + " and --target " + t
                            + " have the same file name and would share the versions folder " + vdir
                            + ": give them separate folders (run versionfs once per target, or drop --versions-dir)");
                }
            }
            vdirOf.put(t, vdir);
        }
        return vdirOf;
    }

    /** The versions folder {@code vdir}, opened for its first target {@code t} (later targets share it). */
    private VersionStore open(Path vdir, Path t, Cleanup undo) {
        VersionStore store = stores.get(vdir);
        if (store != null) return store;
        store = VersionStore.openChecked(vdir, start);
        undo.push("close " + vdir, store::close);
        rules.apply(store, t);
        stores.put(vdir, store);
        return store;
    }

    @Override
    public void mount(Cleanup undo, Runnable betweenTargets) throws IOException {
        Map<Path, Path> dirs = new LinkedHashMap<>(); // a target's folder (or null: all of them) -> the private folder
        int i = 0;
        for (TargetLink l : links) {
            Path dir = privateDir(l.target.getParent(), dirs, undo);
            l.prepareLive();
            Path mp = dir.resolve("m" + i++);
            if (!Files.isDirectory(mp)) Files.createDirectory(mp);
            l.mount(mp);
            l.installLink();
            betweenTargets.run();
        }
        if (agents != null) startAgents();
    }

    /**
     * Where the mount points go: with a container runtime (and no --mount-dir, one node) a hidden
     * folder in each target's folder, which the container binds; else one private folder in
     * node-local scratch (or --mount-dir; on several nodes the agents' common path).
     */
    private Path privateDir(Path targetFolder, Map<Path, Path> made, Cleanup undo) throws IOException {
        boolean beside = runtime.mountsBesideTarget() && mountDir == null && agents == null;
        Path key = beside ? targetFolder : null;
        Path dir = made.get(key);
        if (dir != null) return dir;
        Path fresh = beside ? Preflight.privateDirBeside(targetFolder) : agents != null ? agents.mountDir(mountDir) : Preflight.privateDir(mountDir);
        undo.push("remove " + fresh, () -> removeEmpty(fresh));
        if (runtime.mountsBesideTarget() && mountDir == null && agents != null) {
            Log.warn("the command runs " + runtime.shown() + " on several nodes: the mounts are at " + fresh + " (the same path"
                    + " on every node, for the agents), which the container sees only if it binds it: add "
                    + runtime.bindOption(fresh) + " to its options");
        }
        if (beside) {
            Log.info("the command runs " + runtime.shown() + ": the mount is in " + fresh + ", beside the target, where a"
                    + " container that binds " + targetFolder + " at its own path sees it");
            String elsewhere = runtime.boundElsewhere(command, targetFolder);
            if (elsewhere != null) Log.warn(elsewhere);
            String throughLink = runtime.boundThroughLink(command, targetFolder);
            if (throughLink != null) Log.warn(throughLink);
        }
        made.put(key, fresh);
        return fresh;
    }

    /** The agents serve every target at the same mount point path on their nodes; ready (or said) on return. */
    private void startAgents() throws IOException {
        Path control = AgentPlan.controlIn(stores.values().iterator().next().dir(), SlurmContext.current().jobId());
        agents.start(links.stream().map(TargetLink::serve).toList(), control);
    }

    /** The nodes' manifest lines into manifest.jsonl, in version order; what the summary says of it. */
    private List<String> merge(VersionStore s) {
        try {
            adoptFromStoppedAgents(s);
            var r = io.versionfs.capture.ManifestMerge.merge(s, marks.getOrDefault(s, 0L));
            merged.putIfAbsent(r, s);
            List<String> out = new ArrayList<>();
            out.add("note: versions by node: " + r.savedByHost() + " (" + r.fromNodes()
                    + " manifest line(s) from other nodes merged into " + s.manifestPath() + ")");
            out.addAll(NodeCounts.notes(agents.states(), r));
            if (r.prunedAcrossNodes() > 0) {
                out.add("note: keep rules over the versions of every node: " + r.prunedAcrossNodes()
                        + " more version(s) pruned at the end (each node had applied them to its own), each recorded in the manifest");
            }
            clearTombstones(s);
            return out;
        } catch (IOException | RuntimeException e) {
            Log.warn("could not merge the other nodes' manifests into " + s.manifestPath() + ": " + e.getMessage()
                    + "; they stay in " + s.dir().resolve(io.versionfs.capture.NodeNumbering.NODES));
            return List.of();
        }
    }

    /**
     * The empty files that held lost or dropped versions' numbers while several nodes numbered
     * (NodeNumbering) go once every agent ended cleanly: a user listing the folder should not find
     * empty files named like versions. If an agent did not end cleanly it might still number, so
     * they stay until the next run or prune on the folder clears them under its lock
     * ({@code ManifestMerge.recover}); verify knows them meanwhile.
     */
    private void clearTombstones(VersionStore s) {
        if (!agents.states().values().stream().allMatch(st -> st == Agents.NodeState.DONE)) return;
        try {
            int n = io.versionfs.capture.ManifestMerge.clearTombstones(s);
            if (n > 0) Log.debug(n + " number placeholder(s) removed from " + s.dir());
        } catch (IOException | RuntimeException e) {
            Log.debug("number placeholders stay in " + s.dir() + ": " + e.getMessage());
        }
    }

    /**
     * Versions an agent linked but never listed (it was killed between the two): listed now, as
     * that node's if one agent alone did not end cleanly (every other writer listed all of its
     * own), else as "unknown".
     */
    private void adoptFromStoppedAgents(VersionStore s) throws IOException {
        List<String> stopped = agents.states().entrySet().stream()
                .filter(e -> e.getValue() == Agents.NodeState.GONE || e.getValue() == Agents.NodeState.READY)
                .map(Map.Entry::getKey).sorted().toList();
        if (!stopped.isEmpty()) io.versionfs.capture.ManifestMerge.adoptUnlisted(s, stopped.size() == 1 ? stopped.get(0) : null);
    }

    /** The private folder is empty once every target put its mount point away. */
    private static void removeEmpty(Path dir) {
        try {
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            Log.debug("leaving " + dir + ": " + e.getMessage());
        }
    }

    @Override
    public List<Path> mountPoints() {
        return links.stream().map(TargetLink::mountPoint).filter(java.util.Objects::nonNull).toList();
    }

    @Override
    public ChildProcess.OnLaunchThread beforeJob() {
        trapConflict = renames.trapped() ? runtime.trapConflict(command, Posix.C.geteuid() == 0) : null;
        trap = renames.trapped() && trapConflict == null ? NameTraps.prepare(links) : null;
        return trap == null ? null : trap::installHere;
    }

    @Override
    public void jobStarted() {
        NameTraps.sayMode(trap, renames, trapConflict);
        links.forEach(TargetLink::startWatching);
        watcher = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "versionfs-link-watch");
            t.setDaemon(true);
            return t;
        });
        // inotify sees most changes at once (TargetLink.startWatching); the poll is the backstop.
        watcher.scheduleWithFixedDelay(() -> links.forEach(TargetLink::check), 500, 500, TimeUnit.MILLISECONDS);
    }

    @Override
    public void stopWaits() {
        links.forEach(TargetLink::stopWaits);
    }

    @Override
    public void stopWatching() {
        if (watcher != null) {
            watcher.shutdownNow();
            try {
                // The watcher reads the symlinks restore is about to change: let it finish.
                watcher.awaitTermination(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        links.forEach(TargetLink::stopWatching);
    }

    @Override
    public void jobGone() {
        if (trap != null) trap.close(); // nothing is waiting in it now
    }

    /** Every mount is finished before any target is put back: a file can move between targets. */
    @Override
    public void finish(LongSupplier detachBudgetMillis) {
        if (agents != null) agents.stop(); // their last versions first; nothing mounted on the other nodes after
        for (TargetLink l : links) {
            try {
                l.finishCapture(5_000, detachBudgetMillis.getAsLong());
            } catch (RuntimeException e) {
                Log.warn("finishing capture of " + l.target + ": " + e);
            }
        }
    }

    @Override
    public void restore() {
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
    }

    @Override
    public List<VersionStore> stores() {
        return List.copyOf(stores.values());
    }

    @Override
    public void takeNotes() {
        for (VersionStore s : stores.values()) {
            s.drain();
            List<String> n = new ArrayList<>(agents != null ? merge(s) : List.of());
            n.addAll(notesOf(s));
            notes.put(s, n);
        }
        for (TargetLink l : links) {
            if (agents != null || l.store.skippedCount() > 0) continue; // see WrittenBehind.check
            String why = WrittenBehind.check(l.target, l.store.versions().get(l.name));
            if (why != null) {
                behind.put(l, why);
                Log.warn(why);
            }
        }
    }

    @Override
    public int unversionable() {
        return (int) links.stream().filter(l -> l.notVersioned() || behind.containsKey(l)).count(); // each target once
    }

    @Override
    public int noticedAfterTheFact() {
        return (int) links.stream().filter(TargetLink::onlyNoticed).count();
    }

    /** What the summary says of a versions folder besides its versions: pruned, storage, hooks, skipped. */
    private List<String> notesOf(VersionStore s) {
        List<String> out = new ArrayList<>();
        if (s.prunedCount() > 0) {
            out.add("note: keep rules (" + rules.retention().describe() + "): " + s.prunedCount()
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

    @Override
    public void report(Summary summary) {
        if (agents != null) NodeCounts.json(agents.batchNode(), agents.states(), merged.keySet()).forEach(summary::node);
        for (TargetLink l : links) {
            List<String> lines = new ArrayList<>(l.followedSummary());
            lines.addAll(notes.getOrDefault(l.store, List.of()));
            lines.addAll(l.problems());
            if (behind.containsKey(l)) lines.add(behind.get(l));
            if (agents != null && l == links.get(0)) lines.addAll(agents.problems());
            summary.add(new Summary.FileReport(l.target.toString(), l.store.dir().toString(), l.store.manifestPath().toString(),
                    l.store.versions().get(l.name), lines));
        }
    }
}
