package io.versionfs.capture;

import io.versionfs.sys.Errno;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;

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
    /**
     * Space kept allocated past the end of the file (fallocate KEEP_SIZE), so appends still find
     * room when the versions disk is full: the manifest must describe what happened most of all
     * then.
     */
    private static final long RESERVE = 256 << 10;
    private static final int FALLOC_FL_KEEP_SIZE = 1;
    private static final LibC C = Posix.C;

    private final Path path;
    private final int fd;
    private long reservedTo;
    /** Lines that could not be written yet (disk full): retried before the next one, in order. */
    private final java.util.ArrayDeque<byte[]> pending = new java.util.ArrayDeque<>();
    private boolean warned;

    public Manifest(Path dir) throws IOException {
        this(dir, dir);
    }

    /** Opens {@code access}/manifest.jsonl, reported to the user as {@code shown}/manifest.jsonl. */
    public Manifest(Path access, Path shown) throws IOException {
        this.path = shown.resolve(FILE_NAME);
        // O_NONBLOCK: a FIFO put there by someone must not hang us; it is refused just below.
        int f = C.openat(LibC.AT_FDCWD, access.resolve(FILE_NAME).toString(),
                LibC.O_RDWR | LibC.O_CREAT | LibC.O_APPEND | LibC.O_CLOEXEC | LibC.O_NOFOLLOW | LibC.O_NONBLOCK, 0644);
        if (f < 0) throw new Posix.NativeException("open " + path, Posix.errno());
        ru.serce.jnrfuse.struct.FileStat st = Stat.of(f);
        if (st == null || !Stat.isRegular(st)) {
            C.close(f);
            throw new IOException(path + " is not a regular file: move it away");
        }
        this.fd = f;
        long size = Stat.size(st);
        if (size > 0 && lastByte(size - 1) != '\n') {
            // A run killed mid-append (or a node crash) left a line without its newline: ours
            // must not be glued to that fragment, or the reader loses it too.
            pending.add(new byte[] {'\n'});
        }
        reserve(size);
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
            int e = n < 0 ? Posix.errno() : Errno.ENOSPC;
            if (n > 0 && start >= 0) C.ftruncate(fd, start); // never leave half a line
            if (pending.size() > 10_000) pending.poll(); // bounded: the oldest unwritten line goes
            String msg = "cannot append to " + path + ": " + Posix.strerror(e) + "; " + pending.size()
                    + " line(s) kept in memory and retried";
            if (!warned) {
                warned = true;
                io.versionfs.report.Log.warn(msg);
            }
            throw new IOException(msg);
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
     * Reads a manifest line by line, never failing on content: a line cut short by a crash, a
     * garbage line, invalid UTF-8, {@code null}, or nesting deep enough to overflow a recursive
     * parser is skipped and reported with its line number; the rest is kept.
     */
    public static Contents readChecked(Path dir) throws IOException {
        List<ManifestLine> rows = new ArrayList<>();
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
                if (!line.isBlank()) rows.add(ManifestLine.parse(line));
            } catch (CharacterCodingException e) {
                why = "not UTF-8";
            } catch (IllegalArgumentException e) {
                why = end == all.length ? "cut short (the run was killed while writing it?)"
                        : e.getMessage().startsWith("not a JSON object") ? "not a JSON object" : "not valid JSON";
            } catch (RuntimeException | StackOverflowError e) {
                why = "not valid JSON";
            }
            if (why != null) skipped.add("line " + lineNo + ": " + why);
            start = end + 1;
        }
        return new Contents(rows, skipped);
    }
}
