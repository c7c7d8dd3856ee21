package io.versionfs.capture;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.function.Consumer;

/**
 * {@link Manifest#latest}'s view of a manifest (one row per version, at the place of its first
 * line, with the content of its last; events as they are), handed out row by row instead of as a
 * list, so that {@code list}, {@code verify} and {@code prune} get through a million versions in
 * the launcher's small heap. The rows are the same, in the same order.
 *
 * <p>Two passes over the same bytes. The first judges every line (the skipped ones are reported
 * then, once) and notes, per version, whether it has one line or several; for one with several,
 * the offset of its last (a {@link VersionTable}: about 4 bytes a version, 8 more for a version
 * with later lines). The second reads the lines again and hands each version out at its first
 * line, reading its last line back from its offset when there are several. A running job appends
 * while we read: the second pass stops where the first one stopped, so both see the same lines.
 */
public final class LatestRows {
    private static final int CHUNK = 1 << 16;
    /** In the table: a version seen on one line; n > 0 is a version with several, its last at {@code lastAt[n - 1]}. */
    private static final int ONE_LINE = -1;
    /** In lastAt: that version was handed out already. */
    private static final long DONE = -1;

    private final VersionTable table = new VersionTable();
    private long[] lastAt = new long[16];
    private int several;
    /** The node manifests of a job on several nodes not merged yet; null if none. */
    private NodeRows nodes;

    private LatestRows() {}

    /**
     * Hands {@code rows} the latest view of {@code dir}'s manifest, and {@code skipped} each line
     * that cannot be used ("line N: why"), all of those first. Nothing if there is no manifest.
     */
    public static void each(Path dir, Consumer<String> skipped, Consumer<ManifestLine> rows) throws IOException {
        Path p = dir.resolve(Manifest.FILE_NAME);
        NodeRows nodes = NodeRows.read(dir); // before manifest.jsonl: see NodeRows.read
        if (!Files.exists(p)) {
            if (nodes == null) return;
            p = Path.of("/dev/null"); // only node lines so far
        }
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
            LatestRows view = new LatestRows();
            if (nodes != null && nodes.stillThere(dir)) view.nodes = nodes; // else merged meanwhile: all in manifest.jsonl
            long end = view.index(ch, skipped);
            view.hand(ch, end, rows);
        } catch (UncheckedIOException e) {
            throw e.getCause(); // reading a last line back, from inside the line reader's callback
        }
    }

    /** First pass: notes where each version's last line is; returns how many bytes it read. */
    private long index(FileChannel ch, Consumer<String> skipped) throws IOException {
        long end = read(ch, Long.MAX_VALUE, new Manifest.LineReader(1, p -> {
            if (p.line() == null) skipped.accept("line " + p.lineNo() + ": " + p.skipped());
            else if (p.line().isVersion()) note(p.line(), p.offset());
            if (p.line() != null && nodes != null && p.offset() >= nodes.mark) nodes.seenInMain(p.line());
        }));
        if (nodes != null) {
            nodes.reportSkipped(skipped);
            nodes.prepare();
        }
        return end;
    }

    private void note(ManifestLine r, long offset) {
        String series = String.valueOf(r.file());
        int n = table.get(series, r.version());
        if (n == 0) {
            table.put(series, r.version(), ONE_LINE);
        } else if (n == ONE_LINE) {
            if (several == lastAt.length) lastAt = Arrays.copyOf(lastAt, several + (several >> 1));
            lastAt[several++] = offset;
            table.put(series, r.version(), several);
        } else {
            lastAt[n - 1] = offset;
        }
    }

    /** Second pass: the rows, in the first pass's bytes only. */
    private void hand(FileChannel ch, long end, Consumer<ManifestLine> rows) throws IOException {
        read(ch, end, new Manifest.LineReader(1, p -> {
            NodeManifests.Key key = nodes != null && p.offset() >= nodes.mark ? nodes.mainKey(p.line()) : null;
            ManifestLine row = rowAt(ch, end, p.line());
            if (row == null) return;
            if (key != null) nodes.main(row, key); // the job's part: sorted in with the other nodes' rows
            else rows.accept(row);
        }));
        if (nodes != null) nodes.rest(rows);
    }

    /** The row handed out at this line, or null (unreadable, or a later line of a version handed out at its first). */
    private ManifestLine rowAt(FileChannel ch, long end, ManifestLine r) {
        if (r == null) return null; // reported by the first pass
        if (!r.isVersion()) return r;
        int n = table.get(String.valueOf(r.file()), r.version());
        if (n <= 0) return r; // its only line (0 cannot happen with the same bytes: shown rather than lost)
        long at = lastAt[n - 1];
        if (at == DONE) return null;
        lastAt[n - 1] = DONE;
        try {
            return lineAt(ch, at, end, r);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Feeds {@code lines} the bytes of {@code ch} up to {@code limit} (or its end); returns how many. */
    private static long read(FileChannel ch, long limit, Manifest.LineReader lines) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(CHUNK);
        long pos = 0;
        while (pos < limit) {
            b.clear().limit((int) Math.min(CHUNK, limit - pos));
            int n = ch.read(b, pos);
            if (n <= 0) break;
            lines.feed(b.array(), 0, n);
            pos += n;
        }
        lines.end();
        return pos;
    }

    /** The line at {@code at} (the last about a version), parsed; {@code fallback} if it no longer parses. */
    private static ManifestLine lineAt(FileChannel ch, long at, long end, ManifestLine fallback) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        ByteBuffer b = ByteBuffer.allocate(4096);
        for (long pos = at; pos < end && line.size() <= Manifest.MAX_LINE; ) {
            b.clear().limit((int) Math.min(b.capacity(), end - pos));
            int n = ch.read(b, pos);
            if (n <= 0) break;
            int nl = indexOf(b.array(), n, (byte) '\n');
            line.write(b.array(), 0, nl < 0 ? n : nl);
            if (nl >= 0) break;
            pos += n;
        }
        // Not line 1 (that one is always a first line): no byte-order mark to strip.
        Manifest.Parsed p = Manifest.judge(0, at, line.toByteArray(), true);
        return p != null && p.line() != null ? p.line() : fallback;
    }

    private static int indexOf(byte[] b, int len, byte x) {
        for (int i = 0; i < len; i++) if (b[i] == x) return i;
        return -1;
    }
}
