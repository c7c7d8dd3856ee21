package io.versionfs.capture;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;

/**
 * The highest version number each series has in the last lines of a manifest. Numbering goes on
 * after the highest version file in the folder ({@link VersionStore}); a version whose file is
 * gone (removed by hand, given way on a full disk, lost) still has its line, and a new version
 * must not take its number again: two lines for one number would make {@code restore N}
 * ambiguous. Only the tail is read (the newest lines, where such versions are: numbers grow as
 * lines are appended), so a start stays cheap whatever the history's length.
 */
final class ManifestTail {
    /** 64 KiB: a few hundred lines. */
    static final int TAIL = 1 << 16;

    private ManifestTail() {}

    /** Series name to its highest version number in the last {@link #TAIL} bytes of {@code manifest}; empty if none. */
    static Map<String, Long> highestNumbers(Path manifest) throws IOException {
        Map<String, Long> highest = new HashMap<>();
        String tail;
        boolean whole;
        try (FileChannel ch = FileChannel.open(manifest, StandardOpenOption.READ)) {
            long size = ch.size();
            long from = Math.max(0, size - TAIL);
            ByteBuffer b = ByteBuffer.allocate((int) (size - from));
            while (b.hasRemaining() && ch.read(b, from + b.position()) > 0) {
                // read to the end of what was there
            }
            tail = new String(b.array(), 0, b.position(), StandardCharsets.UTF_8);
            whole = from == 0;
        } catch (NoSuchFileException e) {
            return highest;
        }
        String[] lines = tail.split("\n", -1);
        // The first piece is cut mid-line unless the tail is the whole file; the last, unless it
        // ends in a newline, is a line being written: both are left out.
        for (int i = whole ? 0 : 1; i < lines.length - 1; i++) {
            note(highest, lines[i]);
        }
        return highest;
    }

    private static void note(Map<String, Long> highest, String line) {
        if (line.isBlank()) return;
        ManifestLine m;
        try {
            m = ManifestLine.parse(line);
        } catch (IllegalArgumentException e) {
            return; // a damaged line names no number we could trust; the readers report it
        }
        if (!m.isVersion() || m.file() == null) return;
        highest.merge(m.file(), m.version(), Math::max);
    }
}
