package io.versionfs.capture;

import io.versionfs.sys.Posix;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The hasher on a plain folder: lines in hand-over order, each saved version hashed, same_as for a repeat. */
class HasherTest {
    @TempDir
    Path tmp;
    private int dirFd;
    private Manifest manifest;
    private final List<Long> told = Collections.synchronizedList(new ArrayList<>());
    private Hasher hasher;

    @BeforeEach
    void setUp() throws Exception {
        Files.createDirectories(tmp.resolve(VersionStore.HIDDEN).resolve("tmp"));
        dirFd = Posix.openDir(tmp.toString());
        manifest = new Manifest(tmp);
        hasher = new Hasher(tmp, tmp, dirFd, manifest, v -> told.add(v.number));
    }

    @AfterEach
    void tearDown() throws Exception {
        manifest.close();
        Posix.C.close(dirFd);
    }

    private Version saved(String series, long n, String content) throws Exception {
        String name = VersionNaming.versionName(series, n);
        Files.writeString(tmp.resolve(name), content);
        return new Version(n, series, name, content.length(), Instant.now(), 1, "job", "close", Version.Status.SAVED, null);
    }

    private static String sha256(String s) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes()));
    }

    @Test
    void aVersionEqualToThePreviousOneOfItsSeriesSaysSo() throws Exception {
        hasher.record(saved("job.dat", 1, "same"));
        hasher.record(saved("job.dat", 2, "same"));
        hasher.record(saved("other.dat", 1, "same")); // another series: not compared with job.dat
        hasher.record(saved("job.dat", 3, "different"));
        hasher.record(saved("job.dat", 4, "samf")); // same size, other content
        hasher.record(saved("job.dat", 5, "samf"));
        hasher.drain();
        List<ManifestLine> rows = Manifest.readChecked(tmp).rows();
        assertEquals(List.of("job.dat1", "job.dat2", "other.dat1", "job.dat3", "job.dat4", "job.dat5"),
                rows.stream().map(r -> r.file() + r.version()).toList(), "in hand-over order");
        assertNull(rows.get(0).same_as());
        assertEquals(1L, rows.get(1).same_as());
        assertNull(rows.get(2).same_as());
        assertNull(rows.get(3).same_as());
        assertNull(rows.get(4).same_as());
        assertEquals(4L, rows.get(5).same_as());
        assertEquals(sha256("same"), rows.get(0).sha256());
        assertEquals(sha256("samf"), rows.get(5).sha256());
        assertEquals("same", Files.readString(tmp.resolve("job.000002.dat")), "a repeat keeps its own content");
        assertEquals(List.of(1L, 2L, 1L, 3L, 4L, 5L), told, "each saved version told once its line is written");
    }

    @Test
    void aRemovedVersionGetsNoLineALostOneNoHashAndEventsKeepTheirPlace() throws Exception {
        Version removed = saved("job.dat", 1, "x");
        removed.publication = Publication.State.GONE;
        hasher.record(removed);
        hasher.append(ManifestLine.event("rename").from("a").to("b").build());
        hasher.record(new Version(2, "job.dat", null, -1, Instant.now(), 1, "job", "close", Version.Status.LOST, "ENOSPC"));
        hasher.drain();
        List<ManifestLine> rows = Manifest.readChecked(tmp).rows();
        assertEquals(2, rows.size(), rows.toString());
        assertEquals("rename", rows.get(0).event());
        assertEquals(2L, rows.get(1).version());
        assertEquals("lost", rows.get(1).status());
        assertNull(rows.get(1).sha256());
        assertTrue(told.isEmpty(), "no hook for a removed or a lost version");
        assertEquals(0, hasher.dedupedBytes());
        assertNotEquals(null, rows.get(1).time());
    }
}
