package io.versionfs.capture;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * One history from several nodes. During a job on several nodes the batch node appends to
 * {@code manifest.jsonl} and each agent to its own {@code .versionfs/nodes/manifest.HOST.jsonl}
 * (no two writers on one file, no locks); readers show them merged meanwhile ({@link LatestRows}).
 * At the end, with every agent stopped, the batch node merges: manifest.jsonl up to the mark as it
 * is, then this job's lines of every node in the order of {@link NodeManifests}. The merged file
 * replaces manifest.jsonl whole ({@link ManifestSwap}); a node file is removed only once the
 * merged manifest holding its lines is durable, and a merge run again (after a crash in between)
 * finds those lines already there and takes them once. A batch node killed before its merge
 * leaves the node files: the next run merges them first ({@link #recover}).
 */
public final class ManifestMerge {
    private ManifestMerge() {}

    /** What a merge did: lines taken from other nodes, and this run's versions per host. */
    public record Result(int fromNodes, Map<String, HostCount> byHost, int prunedAcrossNodes) {
        public Result(int fromNodes, Map<String, HostCount> byHost) {
            this(fromNodes, byHost, 0);
        }

        public Map<String, Integer> savedByHost() {
            Map<String, Integer> out = new TreeMap<>();
            byHost.forEach((h, c) -> out.put(h, c.saved()));
            return out;
        }
    }

    /** A node's share of the merged history: versions saved, lost, and the time of its last line. */
    public record HostCount(int saved, int lost, Instant lastLine) {}

    /** What the merge of the files did: the merged lines from the mark on, and how many came from the nodes. */
    record Outcome(List<NodeManifests.Line> region, int fromNodes) {}

    /**
     * Where this run's lines start in manifest.jsonl: call once every earlier line is written
     * (drained) and before any agent starts. Also left in the folder, for the readers while the job
     * runs and for the next run if this one is killed.
     */
    public static long mark(VersionStore store) throws IOException {
        long at = store.manifest().size();
        Path nodes = store.access().resolve(NodeNumbering.NODES);
        Files.createDirectories(nodes);
        Path tmp = nodes.resolve("mark.tmp");
        Files.writeString(tmp, at + "\n");
        Files.move(tmp, store.access().resolve(NodeManifests.MARK), java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return at;
    }

    /** After the merge, every agent ended cleanly: the number placeholders go (NodeNumbering.clearTombstones). */
    public static int clearTombstones(VersionStore store) throws IOException {
        return NodeNumbering.clearTombstones(store.access());
    }

    /**
     * Merges the nodes' manifests into {@code store}'s manifest.jsonl from {@code mark} on, and
     * lists the merged versions in the store's summary. Call with the store drained and no agent left.
     */
    public static Result merge(VersionStore store, long mark) throws IOException {
        return merge(store, mark, ManifestSwap.Seam.NONE);
    }

    static Result merge(VersionStore store, long mark, ManifestSwap.Seam seam) throws IOException {
        Outcome o = store.manifest().replacedBy(() -> mergeFiles(store.dirFd(), store.access(), mark, seam));
        List<ManifestLine> merged = parsed(o.region());
        List<ManifestLine> pruned = keepRulesAcrossNodes(store, merged);
        merged.addAll(pruned);
        relist(store, merged);
        return new Result(o.fromNodes(), byHost(merged), pruned.size());
    }

    /**
     * The run's keep rules over the merged history: each node applied them to its own versions
     * only, so across nodes more were kept than asked (--keep-last 2 kept the newest 2 of each
     * node). What the rules do not keep now goes, each with a pruned line. Its file is replaced by
     * a tombstone, as any removal on several nodes (cleared once every agent ended cleanly).
     */
    private static List<ManifestLine> keepRulesAcrossNodes(VersionStore store, List<ManifestLine> merged) throws IOException {
        Retention.Policy p = store.retentionPolicy();
        if (p.keepsAll() || store.nodes() == null) return List.of();
        Map<String, List<ManifestLine>> bySeries = new TreeMap<>();
        for (ManifestLine l : Manifest.latest(merged)) {
            if (l.saved() && l.file() != null && l.path() != null) bySeries.computeIfAbsent(l.file(), k -> new ArrayList<>()).add(l);
        }
        List<ManifestLine> out = new ArrayList<>();
        for (List<ManifestLine> rows : bySeries.values()) {
            Map<Long, ManifestLine> byNumber = new java.util.HashMap<>();
            List<Retention.Entry> entries = new ArrayList<>();
            rows.sort(java.util.Comparator.comparingLong(ManifestLine::version));
            for (ManifestLine r : rows) {
                byNumber.put(r.version(), r);
                entries.add(new Retention.Entry(r.version(), r.size() == null ? 0 : r.size(), r.instant() == null ? Instant.EPOCH : r.instant()));
            }
            for (Retention.Decision d : Retention.toPrune(entries, p)) {
                ManifestLine r = byNumber.get(d.entry().number());
                if (!store.nodes().retire(store.dirFd(), r.path(), r.file())) continue; // kept: more than asked, nothing lost
                ManifestLine line = r.toBuilder().path(null).status("pruned").pruned(d.why()).build();
                store.manifest().append(line);
                out.add(line);
            }
        }
        return out;
    }

    /**
     * At the open of a versions folder by a run (which holds the folder's lock, so no job on
     * several nodes writes it): node manifests a killed batch node left are merged first, so their
     * versions keep their sha256, time and host; then the number placeholders a job whose agent
     * did not end cleanly kept ({@link NodeNumbering#clearTombstones}) go, as at a clean end: no
     * node of that job numbers any more. Returns how many lines were taken in.
     */
    static int recover(int dirFd, Path access, Path shown) throws IOException {
        int fromNodes = 0;
        if (NodeManifests.files(access).isEmpty()) {
            tidy(access); // a merge stopped after its last node file went
        } else {
            fromNodes = mergeFiles(dirFd, access, NodeManifests.mark(access), ManifestSwap.Seam.NONE).fromNodes();
            if (fromNodes > 0) {
                io.versionfs.text.Log.warn(fromNodes + " line(s) of the node manifests a job on several nodes left in " + shown
                        + " (its batch node was killed before merging them) merged into " + shown.resolve(Manifest.FILE_NAME));
            }
        }
        clearLeftTombstones(access, shown);
        return fromNodes;
    }

    /** The placeholders an earlier job left; if they cannot go, they stay (the readers know them). */
    private static void clearLeftTombstones(Path access, Path shown) {
        try {
            int n = NodeNumbering.clearTombstones(access);
            if (n > 0) io.versionfs.text.Log.debug(n + " number placeholder(s) an earlier job on several nodes left removed from " + shown);
        } catch (IOException e) {
            io.versionfs.text.Log.debug("number placeholders stay in " + shown + ": " + e.getMessage());
        }
    }

    /**
     * As {@link #recover}, for a command that writes a versions folder outside a run (prune),
     * holding the folder's lock: its lines must come after the job's, not between them.
     */
    public static void recoverLeftovers(Path dir) throws IOException {
        int fd = io.versionfs.sys.Posix.openDir(dir.toString());
        try {
            recover(fd, dir, dir);
        } finally {
            io.versionfs.sys.Posix.C.close(fd);
        }
    }

    /**
     * Before the merge, with every agent stopped: version files no line lists were linked by an
     * agent killed before its hasher wrote their lines (the batch node's own lines are all
     * written). They are complete (a version appears whole by link()): hashed now and listed,
     * reason recovered-unlisted, in the node file of {@code host} (the one agent that did not end
     * cleanly), or of "unknown" if that cannot be told, so the merge puts them in version order.
     * Returns how many.
     */
    public static int adoptUnlisted(VersionStore store, String host) throws IOException {
        Path access = store.access();
        java.util.Set<String> listed = new java.util.HashSet<>();
        Map<String, String> seriesOfStem = new java.util.HashMap<>();
        List<ManifestLine> rows = new ArrayList<>(Manifest.read(access));
        for (NodeManifests.Source n : NodeManifests.read(access)) {
            for (NodeManifests.Line l : n.lines()) if (l.parsed() != null) rows.add(l.parsed());
        }
        for (ManifestLine r : rows) {
            if (r.path() == null) continue;
            listed.add(r.path());
            if (r.file() != null) seriesOfStem.put(VersionNaming.seriesOfFileName(r.path()), r.file());
        }
        String who = host == null ? "unknown" : host;
        StringBuilder lines = new StringBuilder();
        int n = 0;
        try (java.nio.file.DirectoryStream<Path> ds = Files.newDirectoryStream(access)) {
            for (Path p : ds) {
                String name = p.getFileName().toString();
                if (!VersionNaming.isVersionFileName(name) || listed.contains(name) || !Files.isRegularFile(p)
                        || NodeNumbering.isTombstone(access, p)) continue;
                String series = seriesOfStem.getOrDefault(VersionNaming.seriesOfFileName(name), VersionNaming.seriesOfFileName(name));
                var num = VersionNaming.parse(series, name);
                if (num.isEmpty()) continue;
                lines.append(ManifestLine.version(num.getAsLong(), series).path(name).size(Files.size(p))
                        .sha256(io.versionfs.sys.Sha256.of(p)).time(Files.getLastModifiedTime(p).toInstant())
                        .reason("recovered-unlisted").status("saved").host(who)
                        .detail("linked by an agent that stopped before writing its line").build().toJson()).append('\n');
                n++;
            }
        }
        if (n == 0) return 0;
        Path f = access.resolve(NodeNumbering.NODES).resolve(NodeNumbering.manifestName(who));
        Files.createDirectories(f.getParent());
        boolean torn = Files.exists(f) && Files.size(f) > 0 && lastByte(f) != '\n'; // an agent killed mid-append
        Files.writeString(f, (torn ? "\n" : "") + lines, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        io.versionfs.text.Log.warn(n + " version file(s) in " + store.dir() + " had no manifest line (" + (host == null
                ? "an agent" : "the agent on " + host) + " stopped before writing them): hashed and listed now, reason recovered-unlisted");
        return n;
    }

    private static int lastByte(Path f) throws IOException {
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(f)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(1);
            ch.read(b, ch.size() - 1);
            return b.get(0);
        }
    }

    /** The merge itself, on the files: see the class comment. */
    static Outcome mergeFiles(int dirFd, Path access, long mark, ManifestSwap.Seam seam) throws IOException {
        List<NodeManifests.Source> nodes = NodeManifests.read(access);
        List<NodeManifests.Line> main = NodeManifests.lines(access.resolve(Manifest.FILE_NAME), mark);
        Map<String, Integer> present = NodeManifests.countOf(main); // merged already, by a merge cut short after its rename
        List<List<NodeManifests.Line>> sources = new ArrayList<>();
        sources.add(main);
        int fromNodes = 0;
        for (NodeManifests.Source n : nodes) {
            List<NodeManifests.Line> rest = NodeManifests.notIn(present, n.lines());
            fromNodes += rest.size();
            sources.add(rest);
        }
        List<NodeManifests.Line> region = fromNodes > 0 ? NodeManifests.order(sources) : main;
        if (fromNodes > 0) ManifestSwap.replace(dirFd, access, mark, region, seam);
        for (NodeManifests.Source n : nodes) {
            Files.deleteIfExists(access.resolve(n.name()));
            seam.after(ManifestSwap.Step.NODE_FILE_REMOVED, n.name());
        }
        tidy(access);
        return new Outcome(region, fromNodes);
    }

    /** Once no node file is left: the mark goes, and the nodes' folder if empty. */
    private static void tidy(Path access) throws IOException {
        Files.deleteIfExists(access.resolve(NodeManifests.MARK));
        try {
            Files.deleteIfExists(access.resolve(NodeNumbering.NODES)); // empty unless an agent's files are left
        } catch (IOException e) {
            // not empty: kept
        }
    }

    private static List<ManifestLine> parsed(List<NodeManifests.Line> lines) {
        List<ManifestLine> out = new ArrayList<>();
        for (NodeManifests.Line l : lines) if (l.parsed() != null) out.add(l.parsed());
        return out;
    }

    /** The summary lists the versions of this run from every node, in version order. */
    private static void relist(VersionStore store, List<ManifestLine> merged) {
        Map<String, List<Version>> bySeries = new TreeMap<>();
        for (ManifestLine l : Manifest.latest(merged)) {
            Version v = asVersion(l);
            if (v != null) bySeries.computeIfAbsent(l.file(), k -> new ArrayList<>()).add(v);
        }
        bySeries.forEach(store::relist);
    }

    private static Version asVersion(ManifestLine l) {
        if (!l.isVersion() || l.file() == null) return null;
        Version.Status st = "saved".equals(l.status()) ? Version.Status.SAVED : "lost".equals(l.status()) ? Version.Status.LOST : null;
        if (st == null) return null;
        Instant t = l.instant() == null ? Instant.EPOCH : l.instant();
        Version v = new Version(l.version(), l.file(), l.path(), l.size() == null ? -1 : l.size(), t,
                l.pid() == null ? 0 : l.pid(), l.cmdline(), l.reason(), st, l.error());
        if (l.sha256() != null) v.sha256(l.sha256());
        return v;
    }

    private static Map<String, HostCount> byHost(List<ManifestLine> merged) {
        Map<String, HostCount> out = new TreeMap<>();
        for (ManifestLine l : Manifest.latest(merged)) {
            String h = l.host() == null ? "?" : l.host();
            HostCount c = out.getOrDefault(h, new HostCount(0, 0, null));
            Instant t = l.instant() != null && (c.lastLine() == null || l.instant().isAfter(c.lastLine())) ? l.instant() : c.lastLine();
            out.put(h, new HostCount(c.saved() + (l.saved() ? 1 : 0), c.lost() + (l.isVersion() && "lost".equals(l.status()) ? 1 : 0), t));
        }
        return out;
    }
}
