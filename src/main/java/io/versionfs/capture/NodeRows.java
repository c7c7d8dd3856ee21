package io.versionfs.capture;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The readers' side of a job on several nodes that runs (or whose batch node was killed): the
 * node manifests not merged yet, shown among manifest.jsonl's rows in the order the merge will
 * write them ({@link NodeManifests}). The node rows and manifest.jsonl's rows after the mark are
 * held in memory to be sorted: they are one job's lines, not the folder's history. Used by {@link LatestRows}, so list, verify, restore, diff and prune read one history.
 */
final class NodeRows {
    /** Where the job's lines start in manifest.jsonl. */
    final long mark;
    private final List<NodeManifests.Source> sources;
    /** Each node line, counted; and those found in manifest.jsonl after the mark (a merge finished while we read). */
    private final Map<ManifestLine, Integer> total = new HashMap<>(), found = new HashMap<>();
    private final NodeManifests.Anchors mainAnchors = new NodeManifests.Anchors();
    private List<NodeManifests.Placed<ManifestLine>> rows;
    private final List<NodeManifests.Placed<ManifestLine>> mainRows = new ArrayList<>();

    private NodeRows(long mark, List<NodeManifests.Source> sources) {
        this.mark = mark;
        this.sources = sources;
        for (NodeManifests.Source s : sources) {
            for (NodeManifests.Line l : s.lines()) if (l.parsed() != null) total.merge(l.parsed(), 1, Integer::sum);
        }
    }

    /**
     * The node manifests of {@code dir}, read before manifest.jsonl is opened (so that a merge
     * finishing meanwhile shows their lines in manifest.jsonl, where {@link #seenInMain} finds
     * them); null if there are none.
     */
    static NodeRows read(Path dir) throws IOException {
        if (!Files.isDirectory(dir.resolve(NodeNumbering.NODES))) return null;
        long mark = NodeManifests.mark(dir);
        List<NodeManifests.Source> s = NodeManifests.read(dir);
        return s.isEmpty() ? null : new NodeRows(mark, s);
    }

    /** Still to merge once manifest.jsonl is open: a merge removes the node files only after its manifest is in place. */
    boolean stillThere(Path dir) {
        return NodeManifests.present(dir);
    }

    /** The node lines that cannot be used, said like manifest.jsonl's (with the file they are in). */
    void reportSkipped(Consumer<String> skipped) {
        for (NodeManifests.Source s : sources) {
            for (NodeManifests.Line l : s.lines()) {
                if (l.parsed() == null && l.why() != null) skipped.accept("(merged from " + s.name() + ") line " + l.lineNo() + ": " + l.why());
            }
        }
    }

    /** First pass, a line of manifest.jsonl after the mark: if a node's, the merge took it in already. */
    void seenInMain(ManifestLine l) {
        int n = total.getOrDefault(l, 0);
        if (n > 0 && found.getOrDefault(l, 0) < n) found.merge(l, 1, Integer::sum);
    }

    /** After the first pass: each node's rows (one per version, latest content) with the key of its first line, in merged order. */
    void prepare() {
        List<NodeManifests.Placed<ManifestLine>> all = new ArrayList<>();
        for (int s = 0; s < sources.size(); s++) {
            NodeManifests.Anchors a = new NodeManifests.Anchors();
            Map<String, Integer> at = new HashMap<>();
            List<NodeManifests.Placed<ManifestLine>> mine = new ArrayList<>();
            int pos = 0;
            for (NodeManifests.Line l : sources.get(s).lines()) {
                ManifestLine r = l.parsed();
                if (r != null && alreadyMerged(r)) continue;
                NodeManifests.Key k = a.next(r);
                pos++;
                if (r == null) continue;
                String key = r.isVersion() ? r.file() + "\u0000" + r.version() : null;
                Integer i = key == null ? null : at.get(key);
                if (i == null) {
                    if (key != null) at.put(key, mine.size());
                    mine.add(new NodeManifests.Placed<>(r, k, s + 1, pos));
                } else {
                    NodeManifests.Placed<ManifestLine> first = mine.get(i);
                    mine.set(i, new NodeManifests.Placed<>(r, first.key(), first.source(), first.pos()));
                }
            }
            all.addAll(mine);
        }
        rows = all;
    }

    /** Whether {@code r} is one of the node lines manifest.jsonl holds already (each found one taken once). */
    private boolean alreadyMerged(ManifestLine r) {
        int n = found.getOrDefault(r, 0);
        if (n == 0) return false;
        found.put(r, n - 1);
        return true;
    }

    /** Second pass, a line of manifest.jsonl after the mark: its key (every line counts, as in the merge). */
    NodeManifests.Key mainKey(ManifestLine l) {
        return mainAnchors.next(l);
    }

    /** A row of manifest.jsonl after the mark (the job's part), with the key of its first line: held to be sorted in. */
    void main(ManifestLine row, NodeManifests.Key k) {
        mainRows.add(new NodeManifests.Placed<>(row, k, 0, mainRows.size()));
    }

    /** Hands out the job's rows, from every node, in merged order. */
    void rest(Consumer<ManifestLine> out) {
        List<NodeManifests.Placed<ManifestLine>> all = new ArrayList<>(mainRows);
        all.addAll(rows);
        all.sort(NodeManifests.ORDER);
        all.forEach(p -> out.accept(p.item()));
    }
}
