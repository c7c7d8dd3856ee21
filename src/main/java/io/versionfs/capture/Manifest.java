package io.versionfs.capture;

import io.versionfs.report.Json;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code manifest.jsonl}: one JSON object per line, appended with O_APPEND and handed to the kernel
 * as each version is recorded, so a job killed at any moment leaves a manifest that describes every
 * version it lists. Lines from earlier runs into the same folder are kept. Events that are not
 * versions (a rename of the target detected, a run's start and end) are lines with an
 * {@code "event"} field instead of {@code "version"}.
 */
public final class Manifest implements AutoCloseable {
    public static final String FILE_NAME = "manifest.jsonl";

    private final Path path;
    private final FileChannel out;

    public Manifest(Path dir) throws IOException {
        this(dir, dir);
    }

    /** Opens {@code access}/manifest.jsonl, reported to the user as {@code shown}/manifest.jsonl. */
    public Manifest(Path access, Path shown) throws IOException {
        this.path = shown.resolve(FILE_NAME);
        boolean torn = endsTorn(access.resolve(FILE_NAME));
        this.out = FileChannel.open(access.resolve(FILE_NAME), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.APPEND);
        if (torn) {
            ByteBuffer nl = ByteBuffer.wrap(new byte[] {'\n'});
            while (nl.hasRemaining()) out.write(nl);
        }
    }

    /**
     * A run killed mid-append (or a node crash) can leave a last line without its newline. Our
     * first line must not be glued to that fragment, or the reader loses it too.
     */
    private static boolean endsTorn(Path file) throws IOException {
        if (!Files.exists(file)) return false;
        try (FileChannel in = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = in.size();
            if (size == 0) return false;
            ByteBuffer last = ByteBuffer.allocate(1);
            return in.read(last, size - 1) == 1 && last.get(0) != '\n';
        }
    }

    public Path path() {
        return path;
    }

    public synchronized void append(Json.Obj line) throws IOException {
        ByteBuffer b = ByteBuffer.wrap((line.toString() + "\n").getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) out.write(b);
    }

    @Override
    public synchronized void close() throws IOException {
        try {
            out.force(true);
        } finally {
            out.close();
        }
    }

    /** Reads every readable line of a manifest (unreadable ones skipped; see {@link #readChecked}). */
    public static List<Map<String, Object>> read(Path dir) throws IOException {
        return readChecked(dir).rows();
    }

    /** The lines of a manifest that parse as JSON objects, and what was skipped (line number: why). */
    public record Contents(List<Map<String, Object>> rows, List<String> skipped) {}

    /**
     * Reads a manifest line by line, never failing on content: a line cut short by a crash, a
     * garbage line, invalid UTF-8, {@code null}, or nesting deep enough to overflow a recursive
     * parser is skipped and reported with its line number; the rest is kept.
     */
    public static Contents readChecked(Path dir) throws IOException {
        List<Map<String, Object>> rows = new ArrayList<>();
        List<String> skipped = new ArrayList<>();
        Path p = dir.resolve(FILE_NAME);
        if (!Files.exists(p)) return new Contents(rows, skipped);
        byte[] all = Files.readAllBytes(p);
        CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        int start = 0, lineNo = 0;
        while (start < all.length) {
            int end = start;
            while (end < all.length && all[end] != '\n') end++;
            lineNo++;
            String why = null;
            try {
                String line = utf8.decode(ByteBuffer.wrap(all, start, end - start)).toString();
                if (!line.isBlank()) {
                    Object v = Json.parse(line);
                    if (v instanceof Map<?, ?>) {
                        @SuppressWarnings("unchecked") Map<String, Object> m = (Map<String, Object>) v;
                        rows.add(m);
                    } else {
                        why = "not a JSON object";
                    }
                }
            } catch (CharacterCodingException e) {
                why = "not UTF-8";
            } catch (RuntimeException | StackOverflowError e) {
                why = end == all.length ? "cut short (the run was killed while writing it?)" : "not valid JSON";
            }
            if (why != null) skipped.add("line " + lineNo + ": " + why);
            start = end + 1;
        }
        return new Contents(rows, skipped);
    }
}
