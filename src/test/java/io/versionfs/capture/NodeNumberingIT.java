package io.versionfs.capture;

import io.versionfs.TestSupport;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Sha256;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Version numbers of a job on several nodes, taken by link() with no lock: two "nodes" (two
 * processes with their own host names, each with its own NodeNumbering and manifest) capture into
 * one folder from four threads each at once, losing some versions after asking for a number and
 * giving some away as a full disk would. Every number is one node's, every number up to the
 * highest is explained (a saved version whose file matches its sha256, or a lost one, whose
 * number a tombstone holds), and verify finds the folder intact.
 */
class NodeNumberingIT {
    @TempDir
    Path tmp;

    @Test
    void twoNodesRacingLinkGiveUniqueNumbersAndEveryGapIsALostVersion() throws Exception {
        Path dir = tmp.resolve("job.gbw.versions");
        Files.createDirectories(dir);
        List<Process> nodes = new ArrayList<>();
        for (String host : List.of("n1", "n2")) {
            nodes.add(new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-cp", System.getProperty("java.class.path"), NodeWriter.class.getName(),
                    dir.toString(), host, tmp.resolve("scratch-" + host).toString(), "4", "60")
                    .redirectErrorStream(true).start());
        }
        Map<String, String> said = new HashMap<>();
        for (int i = 0; i < nodes.size(); i++) {
            Process p = nodes.get(i);
            assertTrue(p.waitFor(300, TimeUnit.SECONDS), "node writer still running");
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), out);
            said.put("n" + (i + 1), out);
        }
        int dirFd = Posix.openDir(dir.toString());
        try {
            // As the batch node's merge does (the next run's open would also clear the placeholders: NodeManifestsIT).
            ManifestMerge.mergeFiles(dirFd, dir, NodeManifests.mark(dir), ManifestSwap.Seam.NONE);
        } finally {
            Posix.C.close(dirFd);
        }

        Map<Long, String> hostOf = new HashMap<>();
        for (String line : Files.readAllLines(dir.resolve(Manifest.FILE_NAME))) {
            ManifestLine l = ManifestLine.parse(line);
            if (!l.isVersion()) continue;
            String was = hostOf.putIfAbsent(l.version(), l.host());
            assertTrue(was == null || was.equals(l.host()), "version " + l.version() + " is " + was + "'s and " + l.host() + "'s");
        }
        List<ManifestLine> rows = Manifest.read(dir);
        Map<Long, ManifestLine> byNumber = new HashMap<>();
        for (ManifestLine r : rows) if (r.isVersion()) assertNull(byNumber.put(r.version(), r), "twice: " + r.version());
        long max = byNumber.keySet().stream().mapToLong(Long::longValue).max().orElseThrow();
        int saved = 0, lost = 0, dropped = 0;
        for (long n = 1; n <= max; n++) {
            ManifestLine r = byNumber.get(n);
            assertNotNull(r, "version " + n + " is a gap no manifest line explains (" + said + ")");
            Path f = dir.resolve(VersionNaming.versionName("job.gbw", n));
            if (r.saved()) {
                saved++;
                assertEquals(r.sha256(), Sha256.of(f), "version " + n);
                assertTrue(Files.readString(f).startsWith(r.host() + " "), "version " + n + " was written by " + r.host());
            } else {
                assertEquals("lost", r.status(), r.toJson());
                if (Boolean.TRUE.equals(r.dropped())) dropped++;
                else lost++;
                assertTrue(!Files.exists(f) || NodeNumbering.isTombstone(dir, f), "version " + n + " is lost, its file a tombstone");
                assertTrue(Files.exists(f), "the number of lost version " + n + " stays taken");
            }
        }
        assertEquals(2 * 4 * 60, saved + lost + dropped, "every capture is a number: " + said);
        assertTrue(lost >= 2 * 4 * 8 && dropped > 0, "lost " + lost + ", dropped " + dropped);
        assertFalse(NodeManifests.present(dir));

        TestSupport.Result v = TestSupport.vfs(tmp, 120, "verify", dir.toString());
        assertEquals(0, v.exit(), v.out() + v.err());

        // The job's end, every agent stopped: the placeholders go, the versions stay as they were.
        assertEquals(lost + dropped, NodeNumbering.clearTombstones(dir), "one placeholder per lost or dropped number");
        for (ManifestLine r : byNumber.values()) {
            Path f = dir.resolve(VersionNaming.versionName("job.gbw", r.version()));
            if (r.saved()) assertEquals(r.sha256(), Sha256.of(f), "version " + r.version() + " after the clearing");
            else assertFalse(Files.exists(f), "lost version " + r.version() + " has no file once the job ended");
        }
        TestSupport.Result after = TestSupport.vfs(tmp, 120, "verify", dir.toString());
        assertEquals(0, after.exit(), after.out() + after.err());
    }
}
