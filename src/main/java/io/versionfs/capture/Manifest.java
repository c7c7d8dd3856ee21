package io.versionfs.capture;

import io.versionfs.sys.Errno;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
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
    /**
     * Space kept allocated past the end of the file (fallocate KEEP_SIZE), so appends still find
     * room when the versions disk is full: the manifest must describe what happened most of all
     * then.
     */
    private static final long RESERVE = 256 << 10;
    private static final int FALLOC_FL_KEEP_SIZE = 1;
    private static final LibC C = Posix.C;

    private final Path path;
    /** How the file is reached (through the folder's descriptor), to open it again once replaced. */
    private final String file;
    private int fd;
    private long reservedTo;
    /** Lines that could not be written yet (disk full): retried before the next one, in order. */
    private final java.util.ArrayDeque<byte[]> pending = new java.util.ArrayDeque<>();
    private boolean warned;

    public Manifest(Path dir) throws IOException {
        this(dir, dir);
    }

    /** Opens {@code access}/manifest.jsonl, reported to the user as {@code shown}/manifest.jsonl. */
    public Manifest(Path access, Path shown) throws IOException {
        this(access, shown, FILE_NAME);
    }

    /** As {@link #Manifest(Path, Path)}, for the file {@code name} (a node's own manifest, see NodeNumbering). */
    public Manifest(Path access, Path shown, String name) throws IOException {
        this.path = shown.resolve(name);
        this.file = access.resolve(name).toString();
        this.fd = openFile();
        long size = Stat.size(Stat.of(fd));
        if (size > 0 && lastByte(size - 1) != '\n') {
            // A run killed mid-append (or a node crash) left a line without its newline: ours
            // must not be glued to that fragment, or the reader loses it too.
            pending.add(new byte[] {'\n'});
        }
        reserve(size);
    }

    /** Opens the file for appending; refuses what is not a regular file. */
    private int openFile() throws IOException {
        // O_NONBLOCK: a FIFO put there by someone must not hang us; it is refused just below.
        int f = C.openat(LibC.AT_FDCWD, file,
                LibC.O_RDWR | LibC.O_CREAT | LibC.O_APPEND | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0644);
        if (f < 0) throw new Posix.NativeException("open " + path, Posix.errno());
        ru.serce.jnrfuse.struct.FileStat st = Stat.of(f);
        if (st == null || !Stat.isRegular(st)) {
            C.close(f);
            throw new IOException(path + " is not a regular file: move it away");
        }
        return f;
    }

    private int lastByte(long at) {
        jnr.ffi.Pointer b = jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), 1);
        return C.pread(fd, b, 1, at) == 1 ? b.getByte(0) : '\n';
    }

    private void reserve(long size) {
        if (size + RESERVE / 2 < reservedTo) return;
        if (C.fallocate(fd, FALLOC_FL_KEEP_SIZE, size, RESERVE) == 0) reservedTo = size + RESERVE;
        else reservedTo = size + RESERVE; // not supported here: do not retry at every line
    }

    public Path path() {
        return path;
    }

    /**
     * Appends one line, whole or not at all: a write cut short (disk full) is cut off again, and
     * the line is kept to be retried before the next one, so lines are never torn or reordered.
     */
    public synchronized void append(ManifestLine line) throws IOException {
        pending.add((line.toJson() + "\n").getBytes(StandardCharsets.UTF_8));
        flushPending();
    }

    private void flushPending() throws IOException {
        while (!pending.isEmpty()) {
            byte[] b = pending.peek();
            ru.serce.jnrfuse.struct.FileStat st = Stat.of(fd);
            long start = st != null ? Stat.size(st) : -1;
            jnr.ffi.Pointer buf = jnr.ffi.Memory.allocateDirect(jnr.ffi.Runtime.getSystemRuntime(), b.length);
            buf.put(0, b, 0, b.length);
            long n = C.write(fd, buf, b.length);
            if (n == b.length) {
                pending.poll();
                reserve(start + n);
                continue;
            }
            int e = n < 0 ? Posix.errno() : Errno.ENOSPC.code;
            if (n > 0 && start >= 0) C.ftruncate(fd, start); // never leave half a line
            if (pending.size() > 10_000) pending.poll(); // bounded: the oldest unwritten line goes
            String msg = "cannot append to " + path + ": " + Posix.strerror(e) + "; " + pending.size()
                    + " line(s) kept in memory and retried";
            if (!warned) {
                warned = true;
                io.versionfs.text.Log.warn(msg);
            }
            throw new IOException(msg);
        }
    }

    /** Bytes in the file now (lines still pending not counted). */
    public synchronized long size() {
        ru.serce.jnrfuse.struct.FileStat st = Stat.of(fd);
        return st == null ? 0 : Stat.size(st);
    }

    /** Work that replaces the file whole (see {@link ManifestSwap}), and what it found. */
    interface Replacement<T> {
        T run() throws IOException;
    }

    /**
     * Runs {@code r}, which replaces this file by a new one (the merge of a job on several nodes),
     * with no line appended meanwhile (every line before it is written first, every line after
     * goes to the new file), then appends to the new file.
     */
    synchronized <T> T replacedBy(Replacement<T> r) throws IOException {
        flushPending();
        try {
            return r.run();
        } finally {
            int was = fd;
            fd = openFile(); // the file now at the name: the new one, or the old one if nothing was replaced
            C.close(was); // its reserve goes with it if it was replaced
            reservedTo = 0;
            ru.serce.jnrfuse.struct.FileStat st = Stat.of(fd);
            if (st != null) reserve(Stat.size(st));
        }
    }

    @Override
    public synchronized void close() throws IOException {
        try {
            if (!pending.isEmpty()) flushPending();
            C.fsync(fd);
            ru.serce.jnrfuse.struct.FileStat st = Stat.of(fd);
            // Give back the reserve: punch out the blocks kept past the end.
            if (st != null && reservedTo > Stat.size(st)) C.fallocate(fd, 3, Stat.size(st), reservedTo - Stat.size(st));
        } finally {
            C.close(fd);
        }
    }

    /**
     * Reads every readable line of a manifest (unreadable ones skipped; see {@link #readChecked}),
     * one row per version with its latest status ({@link #latest}).
     */
    public static List<ManifestLine> read(Path dir) throws IOException {
        return latest(readChecked(dir).rows());
    }

    /**
     * The manifest is append-only: a version whose status changed later (saved, then given up to
     * let the job write) has two lines. This view keeps one row per (file, version), at the
     * place of its first line, with the content of its last; events stay as they are.
     */
    public static List<ManifestLine> latest(List<ManifestLine> rows) {
        Map<String, Integer> at = new java.util.HashMap<>();
        List<ManifestLine> out = new ArrayList<>();
        for (ManifestLine r : rows) {
            if (!r.isVersion()) {
                out.add(r);
                continue;
            }
            String key = r.file() + "\u0000" + r.version();
            Integer i = at.get(key);
            if (i == null) {
                at.put(key, out.size());
                out.add(r);
            } else {
                out.set(i, r);
            }
        }
        return out;
    }

    /** The lines of a manifest that parse, and what was skipped (line number: why). */
    public record Contents(List<ManifestLine> rows, List<String> skipped) {}

    /**
     * Longest line read: a real line is well under 10 KiB; a longer one is skipped without being
     * held in memory (a garbage line of 150 MiB must not take the reader's small heap).
     */
    public static final int MAX_LINE = 1 << 20;

    /**
     * Reads a manifest line by line, never failing on content: a line cut short by a crash, a
     * garbage line, invalid UTF-8, {@code null}, a line far too long, nesting deep enough to
     * overflow a recursive parser, or a path that leads out of the folder is skipped and reported
     * with its line number; the rest is kept. Streams: memory is bounded by {@link #MAX_LINE}.
     */
    public static Contents readChecked(Path dir) throws IOException {
        List<ManifestLine> rows = new ArrayList<>();
        List<String> skipped = new ArrayList<>();
        Path p = dir.resolve(FILE_NAME);
        if (!Files.exists(p)) return new Contents(rows, skipped);
        LineReader lr = new LineReader(1, r -> {
            if (r.line() != null) rows.add(r.line());
            else skipped.add("line " + r.lineNo() + ": " + r.skipped());
        });
        try (java.io.InputStream in = Files.newInputStream(p)) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) lr.feed(buf, 0, n);
        }
        lr.end();
        return new Contents(rows, skipped);
    }

    /** One line's verdict: the parsed line, or why it was skipped; {@code offset} is where the line starts, in bytes. */
    public record Parsed(long lineNo, long offset, ManifestLine line, String skipped) {}

    /**
     * Splits manifest bytes into lines as they come (whole file or a growing one) and judges each:
     * positions are counted in bytes, never re-derived from decoded text, so a bad byte cannot
     * shift the next line; a line longer than {@link #MAX_LINE} is dropped as it streams by.
     */
    public static final class LineReader {
        private final java.util.function.Consumer<Parsed> out;
        private final java.io.ByteArrayOutputStream cur = new java.io.ByteArrayOutputStream();
        private boolean tooLong;
        private long lineNo;
        /** Bytes fed so far, and where the current line started. */
        private long fed, lineStart;

        public LineReader(long firstLineNo, java.util.function.Consumer<Parsed> out) {
            this.lineNo = firstLineNo;
            this.out = out;
        }

        public void feed(byte[] b, int off, int len) {
            int start = off, end = off + len;
            for (int i = off; i < end; i++) {
                if (b[i] != '\n') continue;
                append(b, start, i - start);
                finishLine(false);
                lineStart = fed + (i - off) + 1;
                start = i + 1;
            }
            append(b, start, end - start);
            fed += len;
        }

        private void append(byte[] b, int off, int len) {
            if (tooLong) return;
            if (cur.size() + len > MAX_LINE) {
                tooLong = true;
                cur.reset();
                return;
            }
            cur.write(b, off, len);
        }

        private void finishLine(boolean atEnd) {
            byte[] line = cur.toByteArray();
            boolean wasTooLong = tooLong;
            long n = lineNo++;
            cur.reset();
            tooLong = false;
            if (wasTooLong) {
                out.accept(new Parsed(n, lineStart, null, "longer than " + (MAX_LINE >> 20) + " MiB: not a manifest line"));
            } else if (line.length > 0 || atEnd) {
                Parsed p = judge(n, lineStart, line, atEnd);
                if (p != null) out.accept(p);
            }
        }

        /** End of input: a last line without its newline is judged too (a run killed mid-append). */
        public void end() {
            if (cur.size() > 0 || tooLong) finishLine(true);
        }
    }

    private static final byte[] BOM = {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF};

    /** Null for a blank line. */
    static Parsed judge(long lineNo, long offset, byte[] bytes, boolean last) {
        int off = lineNo == 1 && bytes.length >= 3 && bytes[0] == BOM[0] && bytes[1] == BOM[1] && bytes[2] == BOM[2] ? 3 : 0;
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes, off, bytes.length - off)).toString();
        } catch (CharacterCodingException e) {
            return new Parsed(lineNo, offset, null, "not UTF-8");
        }
        if (text.isBlank()) return null;
        ManifestLine m;
        try {
            m = ManifestLine.parse(text);
        } catch (IllegalArgumentException e) {
            String why = last ? "cut short (the run was killed while writing it?)"
                    : e.getMessage() != null && e.getMessage().startsWith("not a JSON object") ? "not a JSON object" : "not valid JSON";
            return new Parsed(lineNo, offset, null, why);
        } catch (RuntimeException | StackOverflowError e) {
            return new Parsed(lineNo, offset, null, "not valid JSON");
        }
        String bad = m.problem();
        return bad != null ? new Parsed(lineNo, offset, null, bad) : new Parsed(lineNo, offset, m, null);
    }
}
