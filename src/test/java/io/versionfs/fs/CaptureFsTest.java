package io.versionfs.fs;

import io.versionfs.TestSupport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static io.versionfs.TestSupport.fsops;
import static io.versionfs.TestSupport.manifestVersions;
import static io.versionfs.TestSupport.payload;
import static io.versionfs.TestSupport.versions;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The capture rule on a real FUSE mount, driven by separate OS processes (python3 fsops.py), each
 * doing exactly the syscalls a real program does.
 */
class CaptureFsTest {
    @TempDir
    Path tmp;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(tmp);
    }

    private static String sha256(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    }

    @Test
    void nRewritesGiveNVersionsWithExactContent() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            fsops("rewrite", m.file("job.gbw").toString(), "w", "1", "5", "300000");
            m.settle();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            assertEquals(5, vs.size(), "one version per rewrite: " + vs);
            List<Map<String, Object>> rows = manifestVersions(m.versions);
            assertEquals(5, rows.size());
            for (int i = 0; i < 5; i++) {
                byte[] expected = payload("w", i + 1, 300000);
                assertArrayEquals(expected, Files.readAllBytes(vs.get(i)), "version " + (i + 1));
                Map<String, Object> row = rows.get(i);
                assertEquals((long) i + 1, row.get("version"));
                assertEquals("job.gbw", row.get("file"));
                assertEquals(vs.get(i).getFileName().toString(), row.get("path"));
                assertEquals(300000L, row.get("size"));
                assertEquals(sha256(expected), row.get("sha256"));
                assertTrue(((String) row.get("time")).matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z"), "ISO time with ms");
                assertTrue((Long) row.get("pid") > 0);
                assertTrue(((String) row.get("cmdline")).contains("fsops.py rewrite"), "writer's command line: " + row.get("cmdline"));
                assertEquals("close", row.get("reason"));
            }
            // The live file is readable through the mount and holds the last content.
            assertArrayEquals(payload("w", 5, 300000), Files.readAllBytes(m.file("job.gbw")));
        }
    }

    @Test
    void shorterRewriteHasNoStaleTail() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            fsops("write", m.file("job.gbw").toString(), "a long first version of the file");
            fsops("write", m.file("job.gbw").toString(), "short");
            fsops("truncate-path", m.file("job.gbw").toString(), "xy");
            m.settle();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            assertEquals(3, vs.size());
            assertEquals("a long first version of the file", TestSupport.read(vs.get(0)));
            assertEquals("short", TestSupport.read(vs.get(1)));
            assertEquals("xy", TestSupport.read(vs.get(2)), "truncate(2) by path then write: no stale tail");
        }
    }

    @Test
    void readWriteOpenThatOnlyReadsGivesNoVersion() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            fsops("write", m.file("job.gbw").toString(), "content");
            fsops("rdwr-read", m.file("job.gbw").toString());
            fsops("rdwr-read", m.file("job.gbw").toString());
            m.settle();
            assertEquals(1, versions(m.versions, "job", ".gbw").size());
        }
    }

    @Test
    void dupAndForkGiveOneVersionEach() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            fsops("dup", m.file("job.gbw").toString());
            m.settle();
            assertEquals(1, versions(m.versions, "job", ".gbw").size(), "dup'd descriptor: one version");
            fsops("fork", m.file("job.gbw").toString(), "from the parent");
            m.settle();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            assertEquals(2, vs.size(), "forked child closing its copy: still one version");
            assertEquals("first ", TestSupport.read(vs.get(0)));
            assertEquals("from the parent", TestSupport.read(vs.get(1)));
        }
    }

    @Test
    void twoProcessesWritingAlternatelyEachGetTheirVersions() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            for (int i = 1; i <= 6; i++) fsops("rewrite", m.file("job.gbw").toString(), i % 2 == 1 ? "A" : "B", "" + i, "1", "70000");
            m.settle();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            assertEquals(6, vs.size());
            Set<Object> pids = new HashSet<>();
            List<Map<String, Object>> rows = manifestVersions(m.versions);
            for (int i = 1; i <= 6; i++) {
                assertArrayEquals(payload(i % 2 == 1 ? "A" : "B", i, 70000), Files.readAllBytes(vs.get(i - 1)));
                pids.add(rows.get(i - 1).get("pid"));
            }
            assertEquals(6, pids.size(), "six writer processes recorded");
        }
    }

    /**
     * Two processes rewrite a large file as fast as they can, serialised by flock (so each rewrite
     * is whole). The next writer starts the instant the previous close() returns: a capture that
     * were not blocking, or a copy-on-write that leaked, would tear versions. Every version must
     * be exactly one complete rewrite, and none may be missing.
     */
    @Test
    void racingWritersNeverProduceATornOrMissingVersion() throws Exception {
        int size = 4 << 20, each = 25;
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            String f = m.file("job.gbw").toString();
            Process a = TestSupport.fsopsAsync("rewrite", f, "A", "1", "" + each, "" + size, "lock");
            Process b = TestSupport.fsopsAsync("rewrite", f, "B", "1", "" + each, "" + size, "lock");
            assertEquals(0, a.waitFor());
            assertEquals(0, b.waitFor());
            m.settle();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            Set<String> seen = new HashSet<>();
            for (Path v : vs) {
                byte[] got = Files.readAllBytes(v);
                String head = new String(got, 0, Math.min(got.length, 40), StandardCharsets.US_ASCII).split("\n")[0];
                String[] parts = head.split(":");
                assertEquals(3, parts.length, v + " starts with a header: " + head);
                byte[] expected = payload(parts[0], Integer.parseInt(parts[1]), size);
                assertArrayEquals(expected, got, v + " is exactly rewrite " + head + " (not torn)");
                assertTrue(seen.add(head), "each rewrite captured once: " + head);
            }
            assertEquals(2 * each, vs.size(), "no rewrite missed");
        }
    }

    /**
     * The copy-on-write invariant: modify the file in place right after close, many times; each
     * version must keep the content it had at its close.
     */
    @Test
    void versionNeverChangesAfterItsClose() throws Exception {
        int size = 8 << 20;
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            String f = m.file("job.gbw").toString();
            fsops("rewrite", f, "base", "1", "1", "" + size);
            List<byte[]> expected = new ArrayList<>();
            byte[] cur = payload("base", 1, size);
            expected.add(cur.clone());
            for (int i = 0; i < 12; i++) {
                String text = "edit-" + i;
                int off = 1000 + i * 500_000;
                fsops("overwrite-middle", f, text, "" + off);
                System.arraycopy(text.getBytes(StandardCharsets.US_ASCII), 0, cur, off, text.length());
                expected.add(cur.clone());
            }
            fsops("ftruncate", f, "100");
            expected.add(java.util.Arrays.copyOf(cur, 100));
            m.finish();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            assertEquals(expected.size(), vs.size());
            for (int i = 0; i < vs.size(); i++) assertArrayEquals(expected.get(i), Files.readAllBytes(vs.get(i)), "version " + (i + 1));
            // Hashes in the manifest were computed after the fact: they must match the files now.
            List<Map<String, Object>> rows = manifestVersions(m.versions);
            for (int i = 0; i < vs.size(); i++) assertEquals(sha256(expected.get(i)), rows.get(i).get("sha256"));
        }
    }

    /**
     * Full rewrites switch the eager background copy off (it would be thrown away); an in-place
     * edit after that must still copy first and leave every version as it was.
     */
    @Test
    void inPlaceEditAfterFullRewritesKeepsEveryVersion() throws Exception {
        int size = 2 << 20;
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            String f = m.file("job.gbw").toString();
            fsops("rewrite", f, "r", "1", "3", "" + size);
            fsops("overwrite-middle", f, "EDIT", "12345");
            fsops("rewrite", f, "r", "4", "1", "" + size);
            fsops("overwrite-middle", f, "EDIT", "54321");
            m.finish();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            assertEquals(6, vs.size());
            for (int i = 0; i < 3; i++) assertArrayEquals(payload("r", i + 1, size), Files.readAllBytes(vs.get(i)));
            byte[] edited = payload("r", 3, size);
            System.arraycopy("EDIT".getBytes(StandardCharsets.US_ASCII), 0, edited, 12345, 4);
            assertArrayEquals(edited, Files.readAllBytes(vs.get(3)));
            assertArrayEquals(payload("r", 4, size), Files.readAllBytes(vs.get(4)));
            byte[] edited2 = payload("r", 4, size);
            System.arraycopy("EDIT".getBytes(StandardCharsets.US_ASCII), 0, edited2, 54321, 4);
            assertArrayEquals(edited2, Files.readAllBytes(vs.get(5)));
            try (var s = Files.list(m.versions.resolve(".versionfs/live"))) {
                assertEquals(List.of("job.gbw"), s.map(p -> p.getFileName().toString()).toList(), "no temp copies left");
            }
        }
    }

    @Test
    void deleteAndRecreateContinuesTheSequence() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            String f = m.file("job.gbw").toString();
            fsops("write", f, "one");
            fsops("unlink", f);
            assertTrue(Files.notExists(m.file("job.gbw")));
            fsops("write", f, "two");
            m.settle();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            assertEquals(List.of("job.000001.gbw", "job.000002.gbw"), vs.stream().map(p -> p.getFileName().toString()).toList());
            assertEquals("two", TestSupport.read(vs.get(1)));
            assertTrue(TestSupport.read(m.versions.resolve("manifest.jsonl")).contains("\"event\":\"unlink\""));
        }
    }

    /**
     * The table knows a file by (dev, ino). Deleting a file that nothing holds open frees its
     * inode, and ext4 gives that number to the next new file at once; the deleted file's object
     * left the table only a moment later (it takes its own lock first). A file created in that
     * moment was taken for the deleted one: versioned as the deleted target (no name, so its next
     * copy-on-write swap left the saved version under the new file's name, and the rewrite after
     * that changed the version: NameRaceIT caught a version listed empty that held "b"). Here the
     * moment is held open by holding the deleted file's lock (its object then leaves the table in
     * the background, once the lock is free: the unlink itself does not wait for it).
     */
    @Test
    void aFileCreatedRightAfterADeleteIsNotTakenForTheDeletedOne() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            String f = m.file("job.gbw").toString();
            Files.createDirectories(m.file("sub"));
            String other = m.file("sub/other.dat").toString();
            fsops("write", f, "one");
            m.settle(); // independent of version 1, descriptor closed: only its name keeps the inode
            LiveFile deleted = m.fs.knownAt("job.gbw");
            assertTrue(deleted != null, "job.gbw is known to the file system");
            Process delete;
            Process create;
            Process again;
            deleted.lock().writeLock().lock();
            try {
                delete = TestSupport.fsopsAsync("unlink", f);
                // rm does not wait for the file's own lock (it once did, and while it waited an
                // open(O_CREAT) of the same name failed with ENOENT: the folder was the kernel's)
                assertTrue(delete.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), "the unlink returned while the lock is held");
                assertEquals(0, delete.exitValue(), "unlink");
                create = TestSupport.fsopsAsync("write", other, "two");
                again = TestSupport.fsopsAsync("write", f, "new"); // the deleted file's name, while its object waits for the lock
                create.waitFor(2, java.util.concurrent.TimeUnit.SECONDS); // before the pin, it waited for the lock
                again.waitFor(2, java.util.concurrent.TimeUnit.SECONDS);
            } finally {
                deleted.lock().writeLock().unlock();
            }
            assertEquals(0, create.waitFor(), "write two");
            assertEquals(0, again.waitFor(), "write job.gbw anew");
            fsops("write", other, "three");
            fsops("write", other, "four");
            m.settle();
            assertEquals("four", TestSupport.read(m.file("sub/other.dat")));
            List<String> contents = new ArrayList<>();
            for (Map<String, Object> row : manifestVersions(m.versions)) {
                byte[] b = Files.readAllBytes(m.versions.resolve((String) row.get("path")));
                assertEquals(row.get("sha256"), sha256(b), "version " + row.get("path") + " still holds what was saved");
                contents.add(new String(b, StandardCharsets.UTF_8));
            }
            assertEquals(List.of("one", "new"), contents, "sub/other.dat is not a target: no versions of it");
            assertEquals("new", TestSupport.read(m.file("job.gbw")));
        }
    }

    @Test
    void unclosedChangesAreSavedAtTheEndAndMarked() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            String f = m.file("job.gbw").toString();
            fsops("write", f, "closed");
            // truncate(2) by path with no writer close afterwards: only the final capture sees it
            fsops("truncate-only", f, "3");
            m.finish();
            List<Map<String, Object>> rows = manifestVersions(m.versions);
            assertEquals(2, rows.size());
            assertEquals("final-unclosed", rows.get(1).get("reason"));
            assertEquals("clo", TestSupport.read(versions(m.versions, "job", ".gbw").get(1)));
        }
    }

    @Test
    void versionsContinueNumberingAfterEarlierRuns() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            fsops("write", m.file("job.gbw").toString(), "run one");
        }
        Files.delete(tmp.resolve("versions/.versionfs/live/job.gbw"));
        try (MountFixture m = new MountFixture(tmp, "job.gbw")) {
            fsops("write", m.file("job.gbw").toString(), "run two");
            m.settle();
            List<Path> vs = versions(m.versions, "job", ".gbw");
            assertEquals(2, vs.size());
            assertEquals("run one", TestSupport.read(vs.get(0)));
            assertEquals("run two", TestSupport.read(vs.get(1)));
        }
    }

    @Test
    void otherFilesPassThroughUnversioned() throws Exception {
        try (MountFixture m = new MountFixture(tmp, "*.gbw")) {
            fsops("write", m.file("a.gbw").toString(), "A1");
            fsops("write", m.file("scratch.tmp").toString(), "not versioned");
            fsops("write", m.file("b.gbw").toString(), "B1");
            fsops("write", m.file("a.gbw").toString(), "A2");
            m.settle();
            assertEquals(2, versions(m.versions, "a", ".gbw").size());
            assertEquals(1, versions(m.versions, "b", ".gbw").size());
            assertEquals("not versioned", Files.readString(m.file("scratch.tmp")));
            assertEquals(3, manifestVersions(m.versions).size());
            try (var s = Files.list(m.mnt)) {
                assertEquals(Set.of("a.gbw", "b.gbw", "scratch.tmp"),
                        s.map(p -> p.getFileName().toString()).collect(java.util.stream.Collectors.toSet()));
            }
        }
    }
}
