package io.versionfs.capture;

import io.versionfs.report.Json;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
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
        this.out = FileChannel.open(access.resolve(FILE_NAME), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.APPEND);
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

    /** Reads every line of a manifest (for tests, {@code versionfs list}, and recovery). */
    public static List<Map<String, Object>> read(Path dir) throws IOException {
        List<Map<String, Object>> rows = new ArrayList<>();
        Path p = dir.resolve(FILE_NAME);
        if (!Files.exists(p)) return rows;
        for (String line : Files.readAllLines(p, StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            try {
                rows.add(Json.parseObject(line));
            } catch (RuntimeException e) {
                // A line cut short by a crash mid-write: skip it, keep the rest.
            }
        }
        return rows;
    }
}
