package io.versionfs.sys;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

class Sha256Test {
    @TempDir
    Path dir;

    /** Sizes around the read chunk's edges: every byte hashed once, in order, however the reads fall. */
    @Test
    void matchesTheDigestOfTheWholeFileAtEveryChunkEdge() throws Exception {
        int chunk = 128 << 10;
        Random r = new Random(42);
        for (int size : new int[] {0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5, (1 << 20) + 17}) {
            byte[] data = new byte[size];
            r.nextBytes(data);
            Path f = Files.write(dir.resolve("f" + size), data);
            String expected = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
            assertEquals(expected, Sha256.of(f), "size " + size);
            assertEquals(expected, Sha256.of(f, () -> false, true), "size " + size + ", cache dropped");
        }
    }

    @Test
    void aCancelledHashIsNull() throws Exception {
        Path f = Files.write(dir.resolve("f"), new byte[1 << 20]);
        assertNull(Sha256.of(f, () -> true));
    }
}
