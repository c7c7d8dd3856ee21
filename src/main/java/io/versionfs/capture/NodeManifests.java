package io.versionfs.capture;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The per-node side of a versions folder written by a job on several nodes: the nodes' own
 * manifests ({@code .versionfs/nodes/manifest.HOST.jsonl}) and the mark (where in manifest.jsonl
 * the job's lines start), and the one order in which they join manifest.jsonl. Both the merge
 * ({@link ManifestMerge}, which writes that order) and the readers ({@link LatestRows}, which show
 * it while the job runs) use this class, so a history reads the same before and after its merge.
 *
 * <p>The order is version-number order: each version's first line goes at its number (a node
 * with several writers lists its versions in the order they were done, not numbered); a later
 * line about a version (given up, pruned) right after it; an event after the version line its
 * node wrote before it. Ties keep manifest.jsonl first, then the nodes by name, each in its own
 * order. A row (one per version, as the readers show it) takes the key of its first line, so
 * the readers, which sort rows, show the order the merge writes.
 */
public final class NodeManifests {
    /** The mark: the byte offset of manifest.jsonl where the job's own lines start (written before the agents start). */
    static final String MARK = NodeNumbering.NODES + "/mark";

    private NodeManifests() {}

    /** Where a line goes: the version number it belongs at, and whether it is that version's first line (0) or comes after (1). */
    record Key(long anchor, int kind) implements Comparable<Key> {
        @Override
        public int compareTo(Key o) {
            int c = Long.compare(anchor, o.anchor);
            return c != 0 ? c : Integer.compare(kind, o.kind);
        }
    }

    /** Gives each line of one source, fed in order, its key. */
    static final class Anchors {
        private long last = Long.MIN_VALUE;
        private final java.util.Set<String> seen = new java.util.HashSet<>();

        Key next(ManifestLine l) {
            if (l == null || !l.isVersion()) return new Key(last, 1); // an event, an unreadable line: after the version before it
            last = l.version();
            return new Key(last, seen.add(l.file() + "\u0000" + l.version()) ? 0 : 1);
        }
    }

    /** One line as read: its bytes (without the newline), and parsed (null: unreadable, {@code why}). */
    record Line(byte[] raw, ManifestLine parsed, long lineNo, String why) {
        String rawKey() {
            return new String(raw, StandardCharsets.ISO_8859_1); // byte for byte, for equality
        }
    }

    /** A node's manifest: its file name and lines. */
    record Source(String name, List<Line> lines) {}

    /** The nodes' manifest files, by name (none: the folder has no job on several nodes to merge). */
    static List<Path> files(Path vdir) throws IOException {
        Path nodes = vdir.resolve(NodeNumbering.NODES);
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(nodes)) return out;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(nodes, "manifest.*.jsonl")) {
            for (Path p : ds) if (Files.isRegularFile(p)) out.add(p);
        }
        out.sort(Comparator.comparing(p -> p.getFileName().toString()));
        return out;
    }

    /** Whether {@code vdir} holds node manifests not merged yet (a job on several nodes runs, or was killed). */
    public static boolean present(Path vdir) {
        try {
            return !files(vdir).isEmpty();
        } catch (IOException e) {
            return false;
        }
    }

    /** Every node manifest's lines. */
    static List<Source> read(Path vdir) throws IOException {
        List<Source> out = new ArrayList<>();
        for (Path p : files(vdir)) out.add(new Source(NodeNumbering.NODES + "/" + p.getFileName(), lines(p, 0)));
        return out;
    }

    /**
     * The mark a job on several nodes left, or, without one (a folder of an older versionfs),
     * the end of manifest.jsonl: the nodes' lines then come after every line of it.
     */
    static long mark(Path vdir) throws IOException {
        Path m = vdir.resolve(MARK);
        long size = Files.exists(vdir.resolve(Manifest.FILE_NAME)) ? Files.size(vdir.resolve(Manifest.FILE_NAME)) : 0;
        try {
            long at = Long.parseLong(Files.readString(m).strip());
            return at >= 0 && at <= size ? at : size; // a mark past the end (the file was replaced): nothing is the job's
        } catch (java.nio.file.NoSuchFileException | NumberFormatException e) {
            return size;
        }
    }

    /** The lines of the file {@code p} from byte {@code offset} on; a last line without its newline is one too. */
    static List<Line> lines(Path p, long offset) throws IOException {
        List<Line> out = new ArrayList<>();
        if (!Files.exists(p)) return out;
        try (InputStream in = Files.newInputStream(p)) {
            in.skipNBytes(Math.min(offset, Files.size(p)));
            byte[] all = in.readAllBytes();
            long no = 1;
            int start = 0;
            for (int i = 0; i < all.length; i++) {
                if (all[i] != '\n') continue;
                if (i > start) out.add(judge(Arrays.copyOfRange(all, start, i), no, false));
                no++;
                start = i + 1;
            }
            if (start < all.length) out.add(judge(Arrays.copyOfRange(all, start, all.length), no, true));
        }
        return out;
    }

    private static Line judge(byte[] raw, long no, boolean last) {
        Manifest.Parsed p = Manifest.judge(no, 0, raw, last);
        if (p == null) return new Line(raw, null, no, null); // blank
        return new Line(raw, p.line(), no, p.skipped());
    }

    /** Counts lines by their bytes: the node lines a merge already put into manifest.jsonl are dropped, once each. */
    static Map<String, Integer> countOf(List<Line> lines) {
        Map<String, Integer> n = new HashMap<>();
        for (Line l : lines) if (l.raw().length > 0) n.merge(l.rawKey(), 1, Integer::sum);
        return n;
    }

    /** The lines of {@code s} not accounted for by {@code present} (consumed from it). */
    static List<Line> notIn(Map<String, Integer> present, List<Line> s) {
        List<Line> out = new ArrayList<>();
        for (Line l : s) {
            Integer c = present.get(l.rawKey());
            if (c != null && c > 0) {
                present.put(l.rawKey(), c - 1);
                continue;
            }
            if (l.raw().length > 0) out.add(l);
        }
        return out;
    }

    /** A line with its place: key, source (0: manifest.jsonl), position in its source. */
    record Placed<T>(T item, Key key, int source, int pos) {}

    static final Comparator<Placed<?>> ORDER = Comparator.<Placed<?>, Key>comparing(Placed::key)
            .thenComparingInt(Placed::source).thenComparingInt(Placed::pos);

    /** The sources' lines in the merged order (see the class comment). */
    static List<Line> order(List<List<Line>> sources) {
        List<Placed<Line>> all = new ArrayList<>();
        for (int s = 0; s < sources.size(); s++) {
            Anchors a = new Anchors();
            List<Line> lines = sources.get(s);
            for (int i = 0; i < lines.size(); i++) all.add(new Placed<>(lines.get(i), a.next(lines.get(i).parsed()), s, i));
        }
        all.sort(ORDER);
        return all.stream().map(Placed::item).toList();
    }
}
