package io.versionfs.run;

import io.versionfs.Await;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import io.versionfs.capture.Manifest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The capture engine against what a hostile user (or an unusual program) does: renames, hard
 * links and unlinks of open files, 80 processes at once, a full versions disk, a file where a
 * folder should be, a FIFO, chmod, sparse files, tens of thousands of versions. Real mounts, real
 * processes, through the real launcher; every test checks every saved version against the sha256
 * its manifest records.
 */
class EngineIT {
    private static final String PY = "python3 " + TestSupport.FSOPS;
    /** For tests of what happens when the disk fills anyway (as if another process filled it). */
    static final Map<String, String> NO_GUARD = Map.of("VERSIONFS_JAVA_OPTS", "-Dversionfs.noHeadroomGuard=true");

    @TempDir
    Path dir;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    private Result vfs(long timeoutSec, String... args) throws Exception {
        return TestSupport.vfs(dir, timeoutSec, args);
    }

    static String sha256(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    }

    /**
     * Every saved version in {@code vdir} exists and has the bytes its manifest line hashes to;
     * every version file in the folder is in the manifest. Returns the version lines in order.
     */
    static List<Map<String, Object>> verifyVersions(Path vdir) throws Exception {
        List<Map<String, Object>> rows = TestSupport.manifestVersions(vdir);
        List<String> listed = new ArrayList<>();
        for (Map<String, Object> r : rows) {
            if (!"saved".equals(r.get("status"))) continue;
            Path f = vdir.resolve((String) r.get("path"));
            assertTrue(Files.isRegularFile(f), "version file of " + r + " exists");
            assertNotNull(r.get("sha256"), "hashed: " + r);
            assertEquals(r.get("sha256"), sha256(Files.readAllBytes(f)), "content of " + f + " matches its manifest sha256");
            assertEquals(((Number) r.get("size")).longValue(), Files.size(f), "size of " + f);
            listed.add((String) r.get("path"));
        }
        try (Stream<Path> s = Files.list(vdir)) {
            for (Path p : s.toList()) {
                String n = p.getFileName().toString();
                if (n.equals(Manifest.FILE_NAME) || n.startsWith(".")) continue;
                if (n.matches(".*\\.\\d{6,9}(\\..*)?")) assertTrue(listed.contains(n), n + " is accounted for in the manifest");
            }
        }
        return rows;
    }

    private static List<String> contents(Path vdir, List<Map<String, Object>> rows) throws Exception {
        List<String> out = new ArrayList<>();
        for (Map<String, Object> r : rows) {
            out.add("saved".equals(r.get("status")) ? Files.readString(vdir.resolve((String) r.get("path"))) : "LOST");
        }
        return out;
    }

    /**
     * Write-only opens go direct_io (no copy into the mount's page cache): a reader that keeps the
     * file open, with its pages cached, must still read each rewrite, never the old pages; so must
     * a new open (the mount keeps its cache across opens: kernel_cache).
     */
    @Test
    void aReaderNeverSeesOldContentAfterARewrite() throws Exception {
        for (String mode : List.of("symlink", "dir")) {
            Files.deleteIfExists(dir.resolve("c.dat"));
            Result r = vfs(120, "run", "--mode", mode, "--target", "c.dat", "--", "sh", "-c", PY + " reread c.dat 20");
            assertEquals(0, r.exit(), mode + " mode: " + r.out() + r.err());
            verifyVersions(dir.resolve("c.dat.versions"));
        }
    }

    @Test
    void renameWhileOpenNeverChangesAVersionNorDropsAWrite() throws Exception {
        // open a.xyz, write AAAAAAAA, rename to b.xyz, pwrite ZZ at 0 on the same fd, close;
        // then edit b.xyz in place by name.
        Result r = vfs(120, "run", "--mode", "dir", "--target", "*.xyz", "--", "sh", "-c",
                PY + " rename-while-open a.xyz b.xyz && " + PY + " overwrite-middle b.xyz Y 7");
        assertEquals(0, r.exit(), r.err());
        assertEquals("ZZAAAAAY", Files.readString(dir.resolve("b.xyz")), "every write of the program is in the file");
        assertFalse(Files.exists(dir.resolve("a.xyz")));
        Path vb = dir.resolve("b.xyz.versions");
        List<Map<String, Object>> rows = verifyVersions(vb);
        assertEquals(List.of("AAAAAAAA", "ZZAAAAAA", "ZZAAAAAY"), contents(vb, rows),
                "the version taken at the rename keeps what the file held then");
        assertEquals(List.of("rename", "close", "close"), rows.stream().map(m -> m.get("reason")).toList());
        // a.xyz's own folder records that it moved.
        assertTrue(Manifest.read(dir.resolve("a.xyz.versions")).stream().anyMatch(m -> "rename".equals(m.event())));
    }

    @Test
    void aHardLinkOntoATargetIsAVersionAndWritesThroughTheOldNameAreKept() throws Exception {
        // write tmp.dat (not a target), link it to job.dat while open, write more, close, unlink tmp.dat
        Result r = vfs(120, "run", "--mode", "dir", "--target", "job.dat", "--", "sh", "-c", PY + " link-onto tmp.dat job.dat");
        assertEquals(0, r.exit(), r.err());
        assertEquals("linked-more", Files.readString(dir.resolve("job.dat")));
        assertFalse(Files.exists(dir.resolve("tmp.dat")));
        Path v = dir.resolve("job.dat.versions");
        List<Map<String, Object>> rows = verifyVersions(v);
        assertEquals(List.of("linked-", "linked-more"), contents(v, rows));
        assertEquals(List.of("link", "close"), rows.stream().map(m -> m.get("reason")).toList());
    }

    @Test
    void programHardLinksStayLinkedAcrossVersions() throws Exception {
        // link(job.dat, other) then edit by one name: both names still show the same content,
        // and the version taken before the edit does not change.
        Result r = vfs(120, "run", "--mode", "dir", "--target", "job.dat", "--", "sh", "-c",
                PY + " write job.dat one && ln job.dat other && " + PY + " overwrite-middle other X 0 && cat job.dat > seen");
        assertEquals(0, r.exit(), r.err());
        assertEquals("Xne", Files.readString(dir.resolve("seen")), "the edit through the other name is the file's");
        assertEquals("Xne", Files.readString(dir.resolve("job.dat")));
        assertEquals("Xne", Files.readString(dir.resolve("other")));
        assertEquals(Files.getAttribute(dir.resolve("job.dat"), "unix:ino"), Files.getAttribute(dir.resolve("other"), "unix:ino"),
                "still one file with two names");
        Path v = dir.resolve("job.dat.versions");
        assertEquals(List.of("one", "Xne"), contents(v, verifyVersions(v)));
    }

    @Test
    void aLinkFromOneTargetOntoAnotherIsAVersionOfTheNewName() throws Exception {
        Result r = vfs(120, "run", "--mode", "dir", "--target", "*.xyz", "--", "python3", TestSupport.FSOPS.toString(),
                "link-onto", "c.xyz", "d.xyz");
        assertEquals(0, r.exit(), r.err());
        assertEquals("linked-more", Files.readString(dir.resolve("d.xyz")));
        Path vd = dir.resolve("d.xyz.versions");
        List<Map<String, Object>> rows = verifyVersions(vd);
        assertEquals(List.of("linked-"), contents(vd, rows));
        assertEquals("link", rows.get(0).get("reason"));
        Path vc = dir.resolve("c.xyz.versions");
        assertEquals(List.of("linked-more"), contents(vc, verifyVersions(vc)));
    }

    @Test
    void writesToAFileReplacedWhileOpenAreMarkedAndTheLatestVersionIsTheFile() throws Exception {
        // b.xyz open and written; c.tmp renamed over it; the old descriptor writes on and closes.
        Result r = vfs(120, "run", "--mode", "dir", "--target", "b.xyz", "--", "python3", TestSupport.FSOPS.toString(),
                "rename-over-open", "b.xyz", "c.tmp");
        assertEquals(0, r.exit(), r.err());
        assertEquals("NEW", Files.readString(dir.resolve("b.xyz")));
        Path v = dir.resolve("b.xyz.versions");
        List<Map<String, Object>> rows = verifyVersions(v);
        assertEquals(List.of("NEW", "ORPHAN"), contents(v, rows));
        assertEquals(List.of("rename", "close-unlinked"), rows.stream().map(m -> m.get("reason")).toList());
        assertTrue(io.versionfs.capture.Manifest.read(v).stream().anyMatch(m -> "replaced".equals(m.event())));
    }

    @Test
    void hardLinksMadeBeforeTheRunStayLinkedAndVersionOneNeverChanges() throws Exception {
        for (String mode : List.of("dir", "symlink")) {
            Path d = Files.createDirectory(dir.resolve(mode));
            Files.writeString(d.resolve("k.xyz"), "ORIGINAL");
            Files.createLink(d.resolve("alias.dat"), d.resolve("k.xyz"));
            Result r = TestSupport.run(d, null, 120, TestSupport.LAUNCHER.toString(), "run", "--mode", mode, "--target", "k.xyz",
                    "--", "sh", "-c", PY + " overwrite-middle alias.dat ALI 0 && " + PY + " overwrite-middle k.xyz T 7 && "
                            + PY + " overwrite-middle alias.dat L 2");
            assertEquals(0, r.exit(), mode + ": " + r.err());
            assertEquals("ALLGINAT", Files.readString(d.resolve("k.xyz")), mode);
            assertEquals(Files.getAttribute(d.resolve("k.xyz"), "unix:ino"), Files.getAttribute(d.resolve("alias.dat"), "unix:ino"),
                    mode + ": still one file with two names");
            Path v = d.resolve("k.xyz.versions");
            List<Map<String, Object>> rows = verifyVersions(v);
            assertEquals("ORIGINAL", contents(v, rows).get(0), mode + ": version 1 is the content before the run");
        }
    }

    @Test
    void aLogOpenedBeforeTheMountThatMatchesTheGlobKeepsEverything() throws Exception {
        // Slurm opens slurm-JOB.out before the job starts; in --mode dir with '*.out' it is a target.
        Result r = vfs(120, "run", "--mode", "dir", "--target", "*.out", "--", "sh", "-c", "echo data > res.out");
        assertEquals(0, r.exit(), r.err());
        Result outer = TestSupport.run(dir, null, 120, "sh", "-c", TestSupport.LAUNCHER + " run --mode dir --target '*.out' -- sh -c"
                + " 'echo program-line; echo data2 > res.out' > slurm-1.out 2>&1");
        assertEquals(0, outer.exit(), outer.err());
        String log = Files.readString(dir.resolve("slurm-1.out"));
        assertTrue(log.contains("program-line") && log.contains("summary"), "the job's and versionfs's lines are there: " + log);
        verifyVersions(dir.resolve("slurm-1.out.versions"));
        verifyVersions(dir.resolve("res.out.versions"));
    }

    @Test
    void namesThatAreNotUtf8AreRefusedNeverConfused() throws Exception {
        String py = "import os, errno\n"
                + "open(b'a.txt','wb').write(b'PLAIN')\n"
                + "for n in (b'a\\xff', b'a\\xfe'):\n"
                + "    try:\n"
                + "        open(n,'wb').write(n)\n"
                + "        print('created', n)\n"
                + "    except OSError as e:\n"
                + "        print('refused', e.errno == errno.EILSEQ)\n";
        Files.writeString(dir.resolve("names.py"), py);
        Result r = vfs(120, "run", "--mode", "dir", "--target", "*.xyz", "--", "python3", "names.py");
        assertEquals(0, r.exit(), r.err());
        assertEquals("refused True\nrefused True\n", r.out(), r.err());
        assertEquals("PLAIN", Files.readString(dir.resolve("a.txt")));
        try (Stream<Path> s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().contains("\uFFFD")), "no mangled name created");
        }
    }

    @Test
    void unlinkWhileOpenIsARealUnlinkAndItsWritesAreVersioned() throws Exception {
        // fsops checks, inside the mount, that the file reads back whole and that no
        // .fuse_hidden file appeared.
        Result r = vfs(120, "run", "--mode", "dir", "--target", "x.dat", "--", PY.split(" ")[0], TestSupport.FSOPS.toString(),
                "unlink-while-open", "x.dat");
        assertEquals(0, r.exit(), r.err() + r.out());
        assertFalse(Files.exists(dir.resolve("x.dat")));
        try (Stream<Path> s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith(".fuse_hidden")), "no .fuse_hidden left");
        }
        Path v = dir.resolve("x.dat.versions");
        assertEquals(List.of("before after"), contents(v, verifyVersions(v)));
        assertTrue(Manifest.read(v).stream().anyMatch(m -> "unlink".equals(m.event())));
    }

    @Test
    void sameFileNameInTwoFoldersSharingAVersionsFolderIsRefusedUpFront() throws Exception {
        Files.createDirectories(dir.resolve("a"));
        Files.createDirectories(dir.resolve("b"));
        Files.writeString(dir.resolve("a/job.gbw"), "A0");
        Files.writeString(dir.resolve("b/job.gbw"), "B0");
        String job = "cat a/job.gbw b/job.gbw > seen; echo A1 > a/job.gbw; echo B1 > b/job.gbw";
        Result r = vfs(60, "run", "--versions-dir", "V", "--target", "a/job.gbw", "--target", "b/job.gbw", "--", "sh", "-c", job);
        assertEquals(202, r.exit(), r.err());
        assertTrue(r.err().contains("same file name"), r.err());
        assertEquals("A0", Files.readString(dir.resolve("a/job.gbw")), "nothing touched");
        assertEquals("B0", Files.readString(dir.resolve("b/job.gbw")));
        assertFalse(Files.exists(dir.resolve("seen")), "the job did not run");
        // Without a shared folder each gets its own: both work.
        r = vfs(60, "run", "--target", "a/job.gbw", "--target", "b/job.gbw", "--", "sh", "-c", job);
        assertEquals(0, r.exit(), r.err());
        assertEquals("A0B0", Files.readString(dir.resolve("seen")));
        assertEquals("A1\n", Files.readString(dir.resolve("a/job.gbw")));
        assertEquals("B1\n", Files.readString(dir.resolve("b/job.gbw")));
        assertEquals(List.of("A0", "A1\n"), contents(dir.resolve("a/job.gbw.versions"), verifyVersions(dir.resolve("a/job.gbw.versions"))));
        assertEquals(List.of("B0", "B1\n"), contents(dir.resolve("b/job.gbw.versions"), verifyVersions(dir.resolve("b/job.gbw.versions"))));
    }

    @Test
    void eightyProcessesClosingAtOnceThenEditingInPlaceAreNeverHung() throws Exception {
        // 80 processes write 2-6 MiB each, close at the same moment (80 captures: more eager
        // copies than the copier takes), then edit in place (each must wait for a copy). The
        // deadline is generous: only a hang misses it.
        int n = 80;
        Result r = vfs(900, "run", "--mode", "dir", "--target", "f*.dat", "--", PY.split(" ")[0], TestSupport.FSOPS.toString(),
                "burst", ".", String.valueOf(n), "2", "6");
        assertEquals(0, r.exit(), r.err() + r.out());
        for (int k = 0; k < n; k++) {
            String name = String.format("f%02d.dat", k);
            int size = (2 + (k * 7) % 5) << 20;
            byte[] first = TestSupport.payload("b" + k, 1, size);
            byte[] edited = first.clone();
            byte[] edit = String.format("EDIT%02d", k).getBytes();
            System.arraycopy(edit, 0, edited, size / 2, edit.length);
            assertArrayEquals(edited, Files.readAllBytes(dir.resolve(name)), name + " has every write");
            Path v = dir.resolve(name + ".versions");
            List<Map<String, Object>> rows = verifyVersions(v);
            assertEquals(2, rows.size(), name + ": " + rows);
            assertArrayEquals(first, Files.readAllBytes(v.resolve((String) rows.get(0).get("path"))), name + " version 1");
            assertArrayEquals(edited, Files.readAllBytes(v.resolve((String) rows.get(1).get("path"))), name + " version 2");
        }
    }

    @Test
    void termWhileManyWritersWaitForCopiesEndsTheRunWithinItsGrace() throws Exception {
        // 12 processes edit 24 MiB files in place in a loop: every close is a version, every next
        // edit waits for a copy. TERM to versionfs must end it all: the job killed after --grace,
        // no writer left blocked in a FUSE call, no mount left, every saved version intact.
        String[] cmd = {TestSupport.LAUNCHER.toString(), "run", "--grace", "2", "--mode", "dir", "--target", "e*.dat", "--",
                "python3", TestSupport.FSOPS.toString(), "edit-loop", ".", "12", "24"};
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("out.txt").toFile()).start();
        Await.until(java.time.Duration.ofSeconds(120), java.time.Duration.ofMillis(200), "24 versions: the writers got going",
                () -> countVersions() >= 24, () -> Files.readString(dir.resolve("out.txt")));
        List<ProcessHandle> writers = p.descendants()
                .filter(h -> h.info().commandLine().map(c -> c.contains("edit-loop")).orElse(false)).toList();
        assertEquals(13, writers.size(), "the job and its 12 writers");
        TestSupport.run(dir, null, 10, "kill", "-TERM", String.valueOf(p.pid()));
        assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS), "versionfs ended after TERM (generous deadline)");
        for (ProcessHandle w : writers) assertFalse(TestSupport.isRunning(w.pid()), "writer " + w.pid() + " is gone");
        assertEquals(143, p.exitValue(), Files.readString(dir.resolve("out.txt")));
        for (int k = 0; k < 12; k++) {
            Path v = dir.resolve(String.format("e%02d.dat.versions", k));
            if (Files.isDirectory(v)) verifyVersions(v);
        }
    }

    private long countVersions() throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            long n = 0;
            for (Path v : s.filter(p -> p.getFileName().toString().endsWith(".versions")).toList()) {
                n += TestSupport.manifestVersions(v).size();
            }
            return n;
        }
    }

    @Test
    void aFileWhereTheVersionsFolderShouldBeLeavesTheJobsWritesAlone() throws Exception {
        Files.writeString(dir.resolve("x.dat.versions"), "someone's file");
        Result r = vfs(60, "run", "--strict", "--mode", "dir", "--target", "x.dat", "--", "sh", "-c", "echo hello > x.dat");
        assertEquals("hello\n", Files.readString(dir.resolve("x.dat")), "the job's write succeeded: " + r.err());
        assertEquals("someone's file", Files.readString(dir.resolve("x.dat.versions")));
        assertEquals(207, r.exit(), "the job succeeded but nothing could be versioned: " + r.err());
        assertTrue(r.err().contains("x.dat is NOT versioned") && r.err().contains("is not a folder"), r.err());
        assertFalse(r.err().contains("Exception"), r.err());
        // Without --strict the run answers with the job's own exit code; the loss is still said.
        Files.delete(dir.resolve("x.dat"));
        Result lenient = vfs(60, "run", "--mode", "dir", "--target", "x.dat", "--", "sh", "-c", "echo hello > x.dat");
        assertEquals(0, lenient.exit(), lenient.err());
        assertTrue(lenient.err().contains("x.dat is NOT versioned"), lenient.err());
    }

    @Test
    void aFullVersionsDiskCostsVersionsNeverTheJobsWrites() throws Exception {
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(dir.resolve("small"), "4m")) {
            Path small = disk.path();
            // 10 rewrites of 3 MiB; the versions folder (on the 4 MiB tmpfs) holds one of them.
            Result r = TestSupport.run(dir, NO_GUARD, 300, TestSupport.LAUNCHER.toString(), "run", "--strict", "--versions-dir",
                    small.resolve("v").toString(), "--target", "job.gbw", "--",
                    PY.split(" ")[0], TestSupport.FSOPS.toString(), "rewrite", "job.gbw", "r", "1", "10", "3145728");
            assertEquals(207, r.exit(), "the job succeeded, versions were lost: " + r.err());
            assertArrayEquals(TestSupport.payload("r", 10, 3145728), Files.readAllBytes(dir.resolve("job.gbw")),
                    "the job's last write is the file's content");
            List<Map<String, Object>> rows = verifyVersions(small.resolve("v"));
            assertEquals(10, rows.size(), rows.toString());
            assertTrue(rows.stream().allMatch(m -> "close".equals(m.get("reason")) || "dropped".equals(m.get("reason"))),
                    "every close is a version (or one given up later), none 'final-unclosed': " + rows);
            assertTrue(rows.stream().filter(m -> "saved".equals(m.get("status"))).allMatch(m -> ((Number) m.get("size")).longValue() == 3145728),
                    "no partial version is marked saved");
            long lost = rows.stream().filter(m -> "lost".equals(m.get("status"))).count();
            assertTrue(lost >= 8, "the versions that did not fit are recorded lost: " + rows);
            assertEquals("saved", rows.get(9).get("status"), "older versions give way to the newest: " + rows);
            assertTrue(r.err().contains("LOST"), r.err());
            assertFalse(Files.exists(dir.resolve(TargetLink.LIVE_BESIDE)), "the live folder beside the target is removed");
        }
    }

    @Test
    void aFullDiskOfTheJobItselfCostsVersionsNeverTheJobsWrites() throws Exception {
        // Versions beside the target, on the job's own 8 MiB disk: without versionfs the job fits.
        // With it, old versions give way (oldest first, recorded) so every write succeeds.
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(dir.resolve("small"), "8m")) {
            Path small = disk.path();
            Result r = TestSupport.run(small, NO_GUARD, 300, TestSupport.LAUNCHER.toString(), "run", "--strict", "--target", "out.dat", "--",
                    "python3", TestSupport.FSOPS.toString(), "rewrite", "out.dat", "r", "1", "20", "3145728");
            assertEquals(207, r.exit(), "the job succeeded, versions gave way: " + r.err());
            assertArrayEquals(TestSupport.payload("r", 20, 3145728), Files.readAllBytes(small.resolve("out.dat")));
            List<Map<String, Object>> rows = verifyVersions(small.resolve("out.dat.versions"));
            assertEquals(20, rows.size(), rows.toString());
            assertTrue(rows.stream().anyMatch(m -> "lost".equals(m.get("status")) && String.valueOf(m.get("error")).contains("job's own writes")),
                    rows.toString());
            assertEquals("saved", rows.get(19).get("status"), "the newest version is kept");

            // Directory mode, in-place edits of a 2 MiB file: each edit needs a copy; old copies give way.
            assertEquals(0, TestSupport.run(small, null, 30, "rm", "-rf", "out.dat", "out.dat.versions").exit());
            Path work = Files.createDirectory(small.resolve("work"));
            String edits = PY + " rewrite big.dat b 1 1 2097152 || exit 8; for i in $(seq 1 12); do " + PY
                    + " overwrite-middle big.dat E$i $((i*4096)) || exit 9; done";
            r = TestSupport.run(work, NO_GUARD, 300, TestSupport.LAUNCHER.toString(), "run", "--strict", "--mode", "dir", "--target", "big.dat",
                    "--", "sh", "-c", edits);
            assertEquals(207, r.exit(), r.err());
            byte[] expected = TestSupport.payload("b", 1, 2097152);
            for (int i = 1; i <= 12; i++) {
                byte[] e = ("E" + i).getBytes();
                System.arraycopy(e, 0, expected, i * 4096, e.length);
            }
            assertArrayEquals(expected, Files.readAllBytes(work.resolve("big.dat")), "every edit is in the file");
            List<Map<String, Object>> rows2 = verifyVersions(work.resolve("big.dat.versions"));
            assertEquals(13, rows2.size(), rows2.toString());
            assertEquals("saved", rows2.get(12).get("status"), "the newest version is kept: " + rows2);
        }
    }

    @Test
    void theHeadroomGuardSkipsVersionsBeforeTheJobsDiskFills() throws Exception {
        // 64 MiB disk, the job rewrites its own 20 MiB file 6 times: versions are kept while
        // there is room for them and for the next rewrite, then skipped (and said); the job never
        // sees ENOSPC, and nothing is lost: exit 0.
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(dir.resolve("small"), "64m")) {
            Path small = disk.path();
            Result r = TestSupport.run(small, null, 300, TestSupport.LAUNCHER.toString(), "run", "--target", "out.dat", "--",
                    "python3", TestSupport.FSOPS.toString(), "rewrite", "out.dat", "g", "1", "6", "20000000");
            assertEquals(0, r.exit(), r.err());
            assertArrayEquals(TestSupport.payload("g", 6, 20_000_000), Files.readAllBytes(small.resolve("out.dat")));
            List<Map<String, Object>> rows = verifyVersions(small.resolve("out.dat.versions"));
            assertTrue(rows.stream().allMatch(m -> "saved".equals(m.get("status"))), rows.toString());
            long skipped = io.versionfs.capture.Manifest.readChecked(small.resolve("out.dat.versions")).rows().stream()
                    .filter(m -> "skipped".equals(m.event())).count();
            assertTrue(skipped >= 1 && rows.size() + skipped == 6, rows.size() + " kept, " + skipped + " skipped");
            assertTrue(r.err().contains("not kept as versions: low space"), r.err());
        }
    }

    @Test
    void aFullJobDiskGivesUpEvenTheInitialVersionRatherThanTheJobsWrite() throws Exception {
        // 16 MiB disk, a 7 MB target: its initial version is a copy (7 MB). The job then writes
        // 10 MB: without versionfs it fits, so the content before the run gives way, last.
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(dir.resolve("small"), "16m")) {
            Path small = disk.path();
            Files.write(small.resolve("job.gbw"), TestSupport.payload("orig", 0, 7_000_000));
            Result r = TestSupport.run(small, NO_GUARD, 120, TestSupport.LAUNCHER.toString(), "run", "--strict", "--target", "job.gbw", "--",
                    "python3", TestSupport.FSOPS.toString(), "rewrite", "job.gbw", "big", "1", "1", "10000000");
            assertEquals(207, r.exit(), r.err());
            assertArrayEquals(TestSupport.payload("big", 1, 10_000_000), Files.readAllBytes(small.resolve("job.gbw")));
            List<Map<String, Object>> rows = verifyVersions(small.resolve("job.gbw.versions"));
            assertEquals("initial", rows.get(0).get("reason"));
            assertEquals("lost", rows.get(0).get("status"), "the content before the run gave way: " + rows);
            assertTrue(r.err().contains("content before the run") && r.err().contains("given up"), r.err());
        }
    }

    @Test
    void appendsThroughTwoNamesOfOneFileLoseNothing() throws Exception {
        // libfuse2's path API gives each hard link its own kernel inode: O_APPEND must still
        // append at the real end, and a read through one name must see a write through the other.
        String py = "import os\n"
                + "open('c.xyz','wb').close(); fa=os.open('c.xyz',os.O_WRONLY|os.O_APPEND); os.link('c.xyz','e.xyz')\n"
                + "fb=os.open('e.xyz',os.O_WRONLY|os.O_APPEND)\n"
                + "os.write(fa,b'AAAA\\n'); os.write(fb,b'BBBB\\n'); os.write(fa,b'CCCC\\n')\n"
                + "open('log.txt','ab').write(b'1\\n')\n"
                + "r=os.open('e.xyz',os.O_RDONLY); w=os.open('c.xyz',os.O_WRONLY); os.pwrite(w,b'aaaa',0)\n"
                + "print(os.pread(r,4,0).decode())\n";
        Files.writeString(dir.resolve("app.py"), py);
        Files.writeString(dir.resolve("log.txt"), "base\n");
        Files.createLink(dir.resolve("log2.txt"), dir.resolve("log.txt"));
        Result r = vfs(120, "run", "--mode", "dir", "--target", "*.xyz", "--", "sh", "-c",
                "echo 2 >> log2.txt; python3 app.py; echo 3 >> log2.txt");
        assertEquals(0, r.exit(), r.err());
        assertEquals("aaaa\n", r.out(), "a read through e.xyz sees the write through c.xyz");
        assertEquals("aaaa\nBBBB\nCCCC\n", Files.readString(dir.resolve("c.xyz")));
        assertEquals("base\n2\n1\n3\n", Files.readString(dir.resolve("log.txt")), "appends through both names");
        verifyVersions(dir.resolve("c.xyz.versions"));
    }

    @Test
    void aSymlinkWhereATargetShouldBeIsSaid() throws Exception {
        Files.createDirectories(dir.resolve("else"));
        Files.createSymbolicLink(dir.resolve("job.xyz"), Path.of("else/real.xyz"));
        Result r = vfs(60, "run", "--strict", "--mode", "dir", "--target", "*.xyz", "--", "sh", "-c", "echo new1 > job.xyz");
        assertEquals(207, r.exit(), r.err());
        assertTrue(r.err().contains("job.xyz is a symlink"), r.err());
        assertEquals("new1\n", Files.readString(dir.resolve("else/real.xyz")), "the job's write went where it should");
        r = vfs(60, "run", "--mode", "dir", "--target", "job.xyz", "--", "true");
        assertEquals(202, r.exit(), r.err());
    }

    @Test
    void aFifoAsTargetIsRefusedUpFront() throws Exception {
        assertEquals(0, TestSupport.run(dir, null, 10, "mkfifo", "job.gbw").exit());
        Result r = vfs(60, "run", "--target", "job.gbw", "--", "true");
        assertEquals(202, r.exit(), r.err());
        assertTrue(r.err().contains("FIFO"), r.err());
        assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
        r = vfs(60, "run", "--mode", "dir", "--target", "job.gbw", "--", "true");
        assertEquals(202, r.exit(), r.err());
        assertTrue(Files.exists(dir.resolve("job.gbw"), LinkOption.NOFOLLOW_LINKS));
    }

    @Test
    void chmodThroughTheMountNeverChangesASavedVersion() throws Exception {
        Result r = vfs(60, "run", "--mode", "dir", "--target", "x.dat", "--", "sh", "-c",
                "umask 022; " + PY + " write x.dat one && " + PY + " chmod x.dat 600 && " + PY + " overwrite-middle x.dat O 0");
        assertEquals(0, r.exit(), r.err());
        Path v = dir.resolve("x.dat.versions");
        List<Map<String, Object>> rows = verifyVersions(v);
        assertEquals(List.of("one", "One"), contents(v, rows));
        assertEquals("r--r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(v.resolve((String) rows.get(0).get("path")))),
                "the version keeps the mode it was saved with, read-only");
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("x.dat"))));
        // and the versions folder itself cannot be changed through the mount
        r = vfs(60, "run", "--mode", "dir", "--target", "x.dat", "--", "sh", "-c",
                "echo evil > x.dat.versions/" + rows.get(0).get("path") + "; chmod 777 x.dat.versions/" + rows.get(0).get("path")
                        + "; rm -f x.dat.versions/" + rows.get(0).get("path") + "; echo done");
        assertEquals(0, r.exit(), r.err());
        assertEquals(List.of("one", "One", "One"), contents(v, verifyVersions(v)), "the second run's initial version, nothing else");
        assertTrue(r.err().contains("read-only"), r.err());
    }

    @Test
    void sparseFilesStaySparseInCopies() throws Exception {
        // 1 GiB with 8 KiB of data; an in-place edit after its version forces a copy-on-write copy.
        Result r = vfs(300, "run", "--mode", "dir", "--target", "x.dat", "--", "sh", "-c",
                PY + " sparse x.dat 1 && " + PY + " overwrite-middle x.dat EDIT 100");
        assertEquals(0, r.exit(), r.err());
        assertEquals(1L << 30, Files.size(dir.resolve("x.dat")));
        long allocated = Long.parseLong(TestSupport.run(dir, null, 10, "du", "--block-size=1", "x.dat").out().split("\\s+")[0]);
        assertTrue(allocated < (4L << 20), "the copy stays sparse: " + allocated + " bytes allocated");
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("x.dat.versions"));
        assertEquals(2, rows.size());
    }

    @Test
    void twentyThousandVersionsInBoundedMemory() throws Exception {
        // The job reads the daemon's resident memory (its parent is the versionfs JVM) after
        // 2,000 and after 20,000 versions: per-version memory must not accumulate.
        String rss = "grep VmRSS /proc/$PPID/status | tr -s ' ' | cut -d' ' -f2";
        Result r = vfs(900, "run", "--target", "n.txt", "--", "sh", "-c",
                PY + " rewrite-many n.txt 2000 && " + rss + " > rss1 && " + PY + " rewrite-many n.txt 18000 && " + rss + " > rss2");
        assertEquals(0, r.exit(), r.err());
        long rss1 = Long.parseLong(Files.readString(dir.resolve("rss1")).strip());
        long rss2 = Long.parseLong(Files.readString(dir.resolve("rss2")).strip());
        System.out.printf("[EngineIT] daemon RSS after 2,000 versions: %d KiB, after 20,000: %d KiB%n", rss1, rss2);
        assertTrue(rss2 - rss1 < 64 * 1024, "memory grows by less than 64 MiB over 18,000 versions: " + rss1 + " -> " + rss2 + " KiB");
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("n.txt.versions"));
        assertEquals(20000, rows.size());
        assertEquals("17999\n", Files.readString(dir.resolve("n.txt")), "the second loop's last write");
    }
}
