package io.versionfs.capture;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * One history from several nodes. During a job on several nodes the batch node appends to
 * {@code manifest.jsonl} and each agent to its own {@code .versionfs/nodes/manifest.HOST.jsonl}
 * (no two writers on one file, no locks). At the end, with every agent stopped, the batch node
 * rewrites the part of manifest.jsonl this run wrote with the lines of every node, in version
 * order (an event stays after the version its node wrote before it), and removes the node files.
 */
public final class ManifestMerge {
    private ManifestMerge() {}

    /** What a merge did: lines taken from other nodes, and saved versions per host (this run). */
    public record Result(int fromNodes, Map<String, Integer> savedByHost) {}

    /** One line with where it came from, for the order. */
    private record Placed(ManifestLine line, long anchor, int source, int pos) {
        boolean version() {
            return line.isVersion();
        }

        Instant time() {
            Instant t = line.instant();
            return t == null ? Instant.EPOCH : t;
        }
    }

    static final Comparator<Placed> ORDER = Comparator.comparingLong(Placed::anchor)
            .thenComparing(p -> p.version() ? 0 : 1).thenComparing(Placed::time)
            .thenComparingInt(Placed::source).thenComparingInt(Placed::pos);

    /** Where this run's lines start in manifest.jsonl: call once every earlier line is written (drained). */
    public static long mark(VersionStore store) {
        return store.manifest().size();
    }

    /**
     * Merges the nodes' manifests into {@code store}'s manifest.jsonl from {@code mark} on, and
     * lists the merged versions in the store's summary. Call with the store drained and no agent left.
     */
    public static Result merge(VersionStore store, long mark) throws IOException {
        Path access = store.liveDirAccess().getParent().getParent();
        List<List<ManifestLine>> sources = new ArrayList<>();
        sources.add(readFrom(access.resolve(Manifest.FILE_NAME), mark));
        List<Path> nodeFiles = nodeManifests(access);
        for (Path p : nodeFiles) sources.add(readFrom(p, 0));
        List<ManifestLine> merged = order(sources);
        int fromNodes = merged.size() - sources.get(0).size();
        if (fromNodes > 0) store.manifest().rewriteFrom(mark, merged);
        for (Path p : nodeFiles) Files.deleteIfExists(p);
        try {
            Files.deleteIfExists(access.resolve(NodeNumbering.NODES)); // empty unless an agent's files are left
        } catch (IOException e) {
            // not empty: kept
        }
        relist(store, merged);
        return new Result(fromNodes, savedByHost(merged));
    }

    static List<ManifestLine> order(List<List<ManifestLine>> sources) {
        List<Placed> all = new ArrayList<>();
        for (int s = 0; s < sources.size(); s++) {
            long anchor = 0;
            List<ManifestLine> lines = sources.get(s);
            for (int i = 0; i < lines.size(); i++) {
                ManifestLine l = lines.get(i);
                if (l.isVersion()) anchor = l.version();
                all.add(new Placed(l, anchor, s, i));
            }
        }
        all.sort(ORDER);
        return all.stream().map(Placed::line).toList();
    }

    /** The nodes' manifest files, by name. */
    static List<Path> nodeManifests(Path vdir) throws IOException {
        Path nodes = vdir.resolve(NodeNumbering.NODES);
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(nodes)) return out;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(nodes, "manifest.*.jsonl")) {
            ds.forEach(out::add);
        }
        out.sort(null);
        return out;
    }

    /** The readable lines of a manifest from byte {@code offset} on. */
    static List<ManifestLine> readFrom(Path p, long offset) throws IOException {
        List<ManifestLine> rows = new ArrayList<>();
        if (!Files.exists(p)) return rows;
        Manifest.LineReader lr = new Manifest.LineReader(1, r -> {
            if (r.line() != null) rows.add(r.line());
        });
        try (InputStream in = Files.newInputStream(p)) {
            in.skipNBytes(Math.min(offset, Files.size(p)));
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) lr.feed(buf, 0, n);
        }
        lr.end();
        return rows;
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

    private static Map<String, Integer> savedByHost(List<ManifestLine> merged) {
        Map<String, Integer> out = new TreeMap<>();
        for (ManifestLine l : Manifest.latest(merged)) {
            if (l.saved()) out.merge(l.host() == null ? "?" : l.host(), 1, Integer::sum);
        }
        return out;
    }
}
