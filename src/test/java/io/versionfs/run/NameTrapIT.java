package io.versionfs.run;

import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Stream;

import static io.versionfs.run.EngineIT.sha256;
import static io.versionfs.run.EngineIT.verifyVersions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Symlink mode with the job's name calls held (seccomp user notification): rename, renameat,
 * renameat2, unlink, unlinkat, link, linkat and rmdir of the job are handled by versionfs before
 * they return, so a temp file renamed onto the target (atomic save) is a version (reason
 * {@code rename}), a rename away or delete followed at once by a re-create is versioned in the
 * same series, a hard link of the target is a regular file with its content, and the versions
 * folder, the files in it, the target's folder and the versions folder's ancestors cannot be
 * renamed or removed by the job (EBUSY, said once). {@code --no-trap} forces the after-the-fact
 * (inotify) following, which must still never give the job old content nor overwrite what it wrote.
 *
 * <p>Every writer (src/test/resources/trap/) logs each checkpoint it completed to a truth log
 * outside the versions folder ({@code TAG I SIZE SHA256}; the content is
 * {@link TestSupport#payload}); every version is compared byte for byte with that log, and every
 * version with its manifest sha256 ({@link EngineIT#verifyVersions}). The writers also check, while
 * they run, what they read back and (with {@code --names}) the state of the names right after each
 * rename or unlink, and print {@code mismatches=N}.
 */
class NameTrapIT {
    private static final Path TRAP = TestSupport.PROJECT.resolve("src/test/resources/trap");
    private static final Path WRITERS = TRAP.resolve("writers.py");
    private static final String W = "python3 " + WRITERS;
    private static final String BUSY = "Device or resource busy";
    private static final byte[] INITIAL = "initial content\n".getBytes(StandardCharsets.US_ASCII);

    /** The statically linked writer, built once; null when it could not be (see {@link #gccProblem}). */
    private static Path renamer;
    private static String gccProblem;
    private static boolean gccMissing;

    @TempDir
    static Path build;

    @TempDir
    Path dir;

    @BeforeAll
    static void compileTheStaticWriter() throws Exception {
        if (TestSupport.run(build, null, 30, "sh", "-c", "command -v gcc").exit() != 0) {
            gccMissing = true;
            return;
        }
        Path out = build.resolve("renamer");
        Result r = TestSupport.run(build, null, 120, "gcc", "-static", "-O2", "-Wall", "-o", out.toString(),
                TRAP.resolve("renamer.c").toString());
        if (r.exit() != 0) gccProblem = "gcc -static -O2 renamer.c failed (" + r.exit() + "): " + r.err();
        else renamer = out;
    }

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    // ---------------------------------------------------------------- helpers

    private Result vfs(String... args) throws Exception {
        return TestSupport.vfs(dir, 180, args);
    }

    /** {@code versionfs run ARGS... -- python3 writers.py WRITER...} in {@link #dir}. */
    private Result runWriter(List<String> runArgs, String... writer) throws Exception {
        List<String> all = new ArrayList<>(List.of("run"));
        all.addAll(runArgs);
        all.add("--");
        all.add("python3");
        all.add(WRITERS.toString());
        all.addAll(List.of(writer));
        return vfs(all.toArray(String[]::new));
    }

    /** One checkpoint a writer completed: payload(tag, i, size), with its sha256 ("-" when not logged). */
    record Checkpoint(String tag, int i, int size, String sha) {
        byte[] bytes() {
            return TestSupport.payload(tag, i, size);
        }

        @Override
        public String toString() {
            return tag + ":" + i;
        }
    }

    /** The writers' truth log, each line checked against the payload it names. */
    static List<Checkpoint> truth(Path log) throws Exception {
        assertTrue(Files.exists(log), "the writer logged its checkpoints to " + log);
        List<Checkpoint> out = new ArrayList<>();
        for (String line : Files.readAllLines(log)) {
            String[] f = line.trim().split(" ");
            assertEquals(4, f.length, "truth log line: " + line);
            Checkpoint c = new Checkpoint(f[0], Integer.parseInt(f[1]), Integer.parseInt(f[2]), f[3]);
            if (!c.sha().equals("-")) assertEquals(c.sha(), sha256(c.bytes()), "the writer's payload is TestSupport.payload: " + line);
            out.add(c);
        }
        return out;
    }

    /**
     * The versions in {@code vdir} are exactly {@code initial} (when not null, reason
     * {@code initial}) followed by every checkpoint of {@code log}, in order, byte for byte, each
     * with the reason {@code reason} gives it; all saved and matching their manifest sha256.
     */
    static List<Map<String, Object>> assertEveryCheckpointIsAVersion(Path vdir, byte[] initial, Path log,
                                                                     Function<Checkpoint, String> reason) throws Exception {
        List<Checkpoint> cks = truth(log);
        assertTrue(Files.isDirectory(vdir), vdir + " is there");
        List<Map<String, Object>> rows = verifyVersions(vdir);
        List<String> expected = new ArrayList<>();
        List<byte[]> content = new ArrayList<>();
        List<String> reasons = new ArrayList<>();
        if (initial != null) {
            expected.add("initial");
            content.add(initial);
            reasons.add("initial");
        }
        for (Checkpoint c : cks) {
            expected.add(c.toString());
            content.add(c.bytes());
            reasons.add(reason.apply(c));
        }
        String summary = describe(vdir, rows, cks, initial);
        assertEquals(expected.size(), rows.size(), "one version per checkpoint (" + expected.size() + "), got " + rows.size()
                + ":\n" + summary);
        for (int k = 0; k < rows.size(); k++) {
            Map<String, Object> row = rows.get(k);
            assertEquals("saved", row.get("status"), "version " + (k + 1) + " saved: " + row + "\n" + summary);
            byte[] got = Files.readAllBytes(vdir.resolve((String) row.get("path")));
            assertTrue(Arrays.equals(content.get(k), got), "version " + (k + 1) + " (" + row.get("path") + ") is checkpoint "
                    + expected.get(k) + " byte for byte\n" + summary);
            assertEquals(reasons.get(k), row.get("reason"), "reason of version " + (k + 1) + " (" + expected.get(k) + ")\n" + summary);
        }
        return rows;
    }

    /** Each version: number, reason, status, and which checkpoint it holds (or "?"). */
    private static String describe(Path vdir, List<Map<String, Object>> rows, List<Checkpoint> cks, byte[] initial) throws Exception {
        Map<String, String> bySha = new java.util.HashMap<>();
        if (initial != null) bySha.put(sha256(initial), "initial");
        for (Checkpoint c : cks) bySha.put(sha256(c.bytes()), c.toString());
        StringBuilder b = new StringBuilder();
        for (Map<String, Object> r : rows) {
            String holds = r.get("sha256") == null ? "-" : bySha.getOrDefault((String) r.get("sha256"), "?");
            b.append("  v").append(r.get("version")).append(' ').append(r.get("reason")).append(' ').append(r.get("status"))
                    .append(" = ").append(holds).append('\n');
        }
        return b.toString();
    }

    private static void assertRegular(Path p, byte[] content) throws Exception {
        assertTrue(Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS), p + " is a regular file (not a symlink)");
        byte[] got = Files.readAllBytes(p);
        assertTrue(Arrays.equals(content, got), p + " holds " + head(content) + " (" + content.length + " B), not "
                + head(got) + " (" + got.length + " B)");
    }

    private static String head(byte[] b) {
        String s = new String(b, 0, Math.min(b.length, 24), StandardCharsets.ISO_8859_1);
        return "'" + s.replace("\n", "\\n") + "'";
    }

    /** The job's writers ran with no mismatch (the job's exit code is passed through). */
    private static void assertWriterOk(Result r) {
        assertEquals(0, r.exit(), "the job (writer) succeeded\nstdout: " + r.out() + "\nstderr: " + r.err());
        // Several ranks print at once: their lines may run together, so count the tokens.
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("mismatches=(\\d+)").matcher(r.out());
        int found = 0;
        while (m.find()) {
            found++;
            assertEquals("0", m.group(1), r.out());
        }
        assertTrue(found > 0, r.out());
    }

    private static long linesMatching(String err, String regex) {
        return err.lines().filter(l -> l.toLowerCase(Locale.ROOT).matches(".*(" + regex + ").*")).count();
    }

    /** stderr says that the job's renames and deletes are held (and not that they are followed after the fact). */
    private static void assertHeldMode(String err) {
        assertTrue(linesMatching(err, "\\bheld\\b") >= 1, "stderr says the job's renames are held: " + err);
        assertEquals(0, linesMatching(err, "after the fact"), "not the fallback mode: " + err);
    }

    private static void assertAfterTheFactMode(String err) {
        assertTrue(linesMatching(err, "after the fact") >= 1, "stderr names the after-the-fact (fallback) mode: " + err);
    }

    /**
     * A refused rename or delete of the versions folder (or its ancestors, or a file in it) is said
     * on stderr, once: at least one line, and not one per attempt (each test makes 3 or more; the
     * summary may repeat the warning once).
     */
    private static void assertRefusalSaidOnce(String err) {
        long n = linesMatching(err, "refus|busy");
        assertTrue(n >= 1, "versionfs says it refused the rename/delete: " + err);
        assertTrue(n <= 2, "said once (plus at most once in the summary), not per attempt: " + n + " lines\n" + err);
    }

    private byte[] initialTarget(String name) throws Exception {
        Files.write(dir.resolve(name), INITIAL);
        return INITIAL;
    }

    // ---------------------------------------------------------------- 1. atomic save

    @Test
    void aLinkTheJobMakesToTheMountsFolderIsLeftAloneAndTheTargetIsPutBack() throws Exception {
        // The job links to the folder its target leads into; the end of the run took that link
        // for one to a file, moved the live folder onto it and failed ("Not a directory"),
        // leaving job.gbw a dangling symlink; every later run then failed to set up (exit 200).
        Files.writeString(dir.resolve("job.gbw"), "init\n");
        for (int run = 1; run <= 2; run++) {
            Result r = vfs("run", "--quiet", "--target", "job.gbw", "--", "sh", "-c",
                    "ln -sfn \"$(dirname \"$(readlink job.gbw)\")\" mroot && echo run" + run + " > job.gbw && cat mroot/job.gbw > seen");
            assertEquals(0, r.exit(), r.err());
            assertEquals("run" + run + "\n", Files.readString(dir.resolve("seen")), "the link led to the live file during the run");
            assertTrue(Files.isRegularFile(dir.resolve("job.gbw"), java.nio.file.LinkOption.NOFOLLOW_LINKS), r.err());
            assertEquals("run" + run + "\n", Files.readString(dir.resolve("job.gbw")));
            assertTrue(Files.isSymbolicLink(dir.resolve("mroot")), "the job's own link is left as it made it");
            assertFalse(r.err().contains("could not put"), r.err());
        }
        EngineIT.verifyVersions(dir.resolve("job.gbw.versions"));
    }

    @Test
    void atomicSavesEveryHalfSecondAreEachAVersionByteExact() throws Exception {
        byte[] initial = initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        Result r = runWriter(List.of("--target", "job.gbw"), "atomic", "job.gbw", "20", "0.5", log.toString(), "final", "--names");
        assertWriterOk(r);
        // 20 saves by rename, then one in-place write: the target stayed versioned after the renames
        List<Checkpoint> cks = truth(log);
        assertEquals(21, cks.size());
        assertEveryCheckpointIsAVersion(dir.resolve("job.gbw.versions"), initial, log, c -> c.i() < 20 ? "rename" : "close");
        assertRegular(dir.resolve("job.gbw"), cks.get(20).bytes());
        assertRegular(dir.resolve("job.gbw_prev"), cks.get(18).bytes()); // the target just before the last save
        assertFalse(Files.exists(dir.resolve("job.gbw.step"), LinkOption.NOFOLLOW_LINKS), "the step file was renamed");
        assertHeldMode(r.err());
    }

    // ---------------------------------------------------------------- 2. rotation

    @Test
    void rotationWithAnImmediateRecreateCapturesEveryCheckpoint() throws Exception {
        byte[] initial = initialTarget("X.restart");
        Path log = dir.resolve("truth.log");
        Result r = runWriter(List.of("--target", "X.restart"), "rotate", "X.restart", "60", log.toString(), "--names");
        assertWriterOk(r);
        List<Checkpoint> cks = truth(log);
        assertEquals(60, cks.size());
        assertEveryCheckpointIsAVersion(dir.resolve("X.restart.versions"), initial, log, c -> "close");
        assertRegular(dir.resolve("X.restart"), cks.get(59).bytes());
        assertRegular(dir.resolve("X.restart~"), cks.get(58).bytes());
        assertHeldMode(r.err());
    }

    // ---------------------------------------------------------------- 3. rename-onto loop with read-back

    @Test
    void renameLoopWithReadBackHeld() throws Exception {
        byte[] initial = initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        Result r = runWriter(List.of("--target", "job.gbw"), "loop", "job.gbw", "job.ges", "200", log.toString(), "--names");
        assertWriterOk(r);
        List<Checkpoint> cks = truth(log);
        assertEquals(201, cks.size());
        assertEveryCheckpointIsAVersion(dir.resolve("job.gbw.versions"), initial, log, c -> "close");
        assertRegular(dir.resolve("job.ges"), cks.get(199).bytes());
        assertRegular(dir.resolve("job.gbw"), cks.get(200).bytes());
        assertHeldMode(r.err());
    }

    @Test
    void renameLoopWithReadBackAfterTheFact() throws Exception {
        initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        Result r = runWriter(List.of("--no-trap", "--target", "job.gbw"), "loop", "job.gbw", "job.ges", "200", log.toString());
        // Never old content read back (the writer counts it), nothing the job wrote overwritten.
        assertWriterOk(r);
        List<Checkpoint> cks = truth(log);
        assertEquals(201, cks.size());
        assertRegular(dir.resolve("job.ges"), cks.get(199).bytes());
        assertRegular(dir.resolve("job.gbw"), cks.get(200).bytes());
        // Not every checkpoint can be caught after the fact; what was saved is intact.
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertFalse(rows.isEmpty(), "at least the starting content is a version");
        assertEquals("initial", rows.get(0).get("reason"));
        assertAfterTheFactMode(r.err());
    }

    // ---------------------------------------------------------------- 4. the target's folder

    @Test
    void renamingTheTargetsFolderIsRefusedAndNothingIsLost() throws Exception {
        Files.createDirectory(dir.resolve("d"));
        byte[] initial = initialTarget("d/job.gbw");
        Path log = dir.resolve("truth.log");
        String script = W + " ck d/job.gbw " + log + " dir 0 --names || exit 1\n"
                + "for k in 1 2 3; do\n"
                + "  mv d d2 2>>mv.err; echo $? >> mv.rc\n"
                + "  " + W + " ck d/job.gbw " + log + " dir $k --names || exit 1\n"
                + "done\n";
        Result r = vfs("run", "--target", "d/job.gbw", "--", "sh", "-c", script);
        String mvErr = Files.exists(dir.resolve("mv.err")) ? Files.readString(dir.resolve("mv.err")) : "";
        assertWriterOk(r);
        List<String> rcs = Files.readAllLines(dir.resolve("mv.rc"));
        assertEquals(3, rcs.size());
        for (String rc : rcs) assertNotEquals("0", rc.trim(), "mv d d2 is refused: " + mvErr);
        assertEquals(3, mvErr.lines().filter(l -> l.contains(BUSY)).count(), "each refused with EBUSY: " + mvErr);
        assertFalse(Files.exists(dir.resolve("d2"), LinkOption.NOFOLLOW_LINKS), "d2 was never made");
        assertRefusalSaidOnce(r.err());
        List<Checkpoint> cks = truth(log);
        assertEquals(4, cks.size());
        assertEveryCheckpointIsAVersion(dir.resolve("d/job.gbw.versions"), initial, log, c -> "close");
        assertRegular(dir.resolve("d/job.gbw"), cks.get(3).bytes());
        assertHeldMode(r.err());
    }

    // ---------------------------------------------------------------- 5. the versions folder

    @Test
    void movingTheVersionsFolderOrAFileInItIsRefusedAndWritesGoOn() throws Exception {
        byte[] initial = initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        String ck = W + " ck job.gbw " + log + " v ";
        String script = ck + "0 --names || exit 1\n"
                + "mv job.gbw.versions x 2>>op.err; echo \"mv-folder $?\" >> op.rc\n"
                + ck + "1 --names || exit 1\n"
                + "rm job.gbw.versions/job.000001.gbw 2>>op.err; echo \"rm-version $?\" >> op.rc\n"
                + ck + "2 --names || exit 1\n"
                + "mv job.gbw.versions/manifest.jsonl manifest.moved 2>>op.err; echo \"mv-manifest $?\" >> op.rc\n"
                + ck + "3 --names || exit 1\n"
                + "mv job.gbw.versions x 2>>op.err; echo \"mv-folder-again $?\" >> op.rc\n"
                + ck + "4 --names || exit 1\n";
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c", script);
        String opErr = Files.exists(dir.resolve("op.err")) ? Files.readString(dir.resolve("op.err")) : "";
        assertWriterOk(r);
        List<String> rcs = Files.readAllLines(dir.resolve("op.rc"));
        assertEquals(4, rcs.size(), rcs.toString());
        for (String rc : rcs) assertFalse(rc.endsWith(" 0"), "refused: " + rc + "\n" + opErr);
        assertEquals(4, opErr.lines().filter(l -> l.contains(BUSY)).count(), "each refused with EBUSY: " + opErr);
        assertRefusalSaidOnce(r.err());
        assertFalse(Files.exists(dir.resolve("x"), LinkOption.NOFOLLOW_LINKS), "the versions folder was not moved");
        assertFalse(Files.exists(dir.resolve("manifest.moved"), LinkOption.NOFOLLOW_LINKS), "the manifest was not moved");
        assertTrue(Files.isDirectory(dir.resolve("job.gbw.versions"), LinkOption.NOFOLLOW_LINKS));
        List<Checkpoint> cks = truth(log);
        assertEquals(5, cks.size());
        List<Map<String, Object>> rows = assertEveryCheckpointIsAVersion(dir.resolve("job.gbw.versions"), initial, log, c -> "close");
        assertEquals("job.000001.gbw", rows.get(0).get("path"), "version 1 is the one the job tried to delete");
        assertRegular(dir.resolve("job.gbw"), cks.get(4).bytes());
        assertHeldMode(r.err());
    }

    // ---------------------------------------------------------------- 6. unlink and re-create

    @Test
    void unlinkAndImmediateRecreateTwentyTimes() throws Exception {
        byte[] initial = initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        Result r = runWriter(List.of("--target", "job.gbw"), "unlink-recreate", "job.gbw", "20", log.toString(), "--names");
        assertWriterOk(r);
        List<Checkpoint> cks = truth(log);
        assertEquals(20, cks.size());
        assertEveryCheckpointIsAVersion(dir.resolve("job.gbw.versions"), initial, log, c -> "close");
        assertRegular(dir.resolve("job.gbw"), cks.get(19).bytes());
        assertHeldMode(r.err());
    }

    // ---------------------------------------------------------------- link

    @Test
    void aHardLinkOfTheTargetHoldsItsContent() throws Exception {
        byte[] initial = initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        Result r = runWriter(List.of("--target", "job.gbw"), "link", "job.gbw", "other", log.toString(), "--names");
        assertWriterOk(r);
        List<Checkpoint> cks = truth(log);
        assertEveryCheckpointIsAVersion(dir.resolve("job.gbw.versions"), initial, log, c -> "close");
        assertRegular(dir.resolve("other"), cks.get(0).bytes());
        assertRegular(dir.resolve("job.gbw"), cks.get(0).bytes());
        assertHeldMode(r.err());
    }

    @Test
    void aHardLinkIsTheSameFileUnderTwoNamesAndOutlivesTheTargetsReplacement() throws Exception {
        initialTarget("job.gbw");
        String py = "import os\n"
                + "os.link('job.gbw', 'job.bak')\n"
                + "with open('job.bak', 'ab') as f: f.write(b'via-link\\n')\n"
                + "assert open('job.gbw', 'rb').read().endswith(b'via-link\\n'), 'one file, two names'\n"
                + "open('job.tmp', 'wb').write(b'new\\n'); os.rename('job.tmp', 'job.gbw')\n"
                + "assert open('job.bak', 'rb').read().endswith(b'via-link\\n'), 'the link keeps the old file'\n";
        Result r = vfs("run", "--target", "job.gbw", "--", "python3", "-c", py);
        assertEquals(0, r.exit(), r.err());
        assertEquals("new\n", Files.readString(dir.resolve("job.gbw")));
        assertTrue(Files.readString(dir.resolve("job.bak")).endsWith("via-link\n"));
        assertTrue(Files.isRegularFile(dir.resolve("job.bak"), LinkOption.NOFOLLOW_LINKS), "a regular file at the end");
        verifyVersions(dir.resolve("job.gbw.versions"));
    }

    @Test
    void aHardLinkBackupRolledBackOntoTheTargetKeepsEverySave() throws Exception {
        initialTarget("job.gbw");
        String py = "import os\n"
                + "os.link('job.gbw', 'bak')\n"
                + "open('t', 'wb').write(b'step 1\\n'); os.rename('t', 'job.gbw')\n"
                + "os.rename('bak', 'job.gbw')\n"
                + "assert not os.path.lexists('bak'), 'the backup name is gone, as after rename(2)'\n"
                + "for i in range(3):\n"
                + "    open('t', 'wb').write(b'save %d\\n' % i); os.rename('t', 'job.gbw')\n"
                + "os.link('job.gbw', 'z'); os.rename('z', 'job.gbw')\n"
                + "assert os.path.exists('z'), 'two names of one file: rename(2) does nothing'\n";
        Result r = vfs("run", "--target", "job.gbw", "--", "python3", "-c", py);
        assertEquals(0, r.exit(), r.err());
        assertEquals("save 2\n", Files.readString(dir.resolve("job.gbw")));
        assertEquals("save 2\n", Files.readString(dir.resolve("z")));
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertEquals(List.of("initial", "rename", "rename", "rename", "rename", "rename"),
                rows.stream().map(m -> (String) m.get("reason")).toList(), "every save is a version, the rollback too: " + rows);
        assertFalse(r.err().contains("replaced job.gbw"), r.err());
    }

    @Test
    void aFileRenamedOntoTheTargetWhileStillOpenNeverChangesItsVersion() throws Exception {
        String py = "import os\n"
                + "fd = os.open('job.tmp', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
                + "os.write(fd, b'A' * 5000)\n"
                + "os.rename('job.tmp', 'job.gbw')\n"
                + "os.write(fd, b'B' * 5000)\n"
                + "os.close(fd)\n";
        Result r = vfs("run", "--target", "job.gbw", "--", "python3", "-c", py);
        assertEquals(0, r.exit(), r.err());
        assertEquals("A".repeat(5000) + "B".repeat(5000), Files.readString(dir.resolve("job.gbw")), "the job's writes after the rename landed");
        List<Map<String, Object>> rows = verifyVersions(dir.resolve("job.gbw.versions"));
        assertEquals("rename", rows.get(0).get("reason"));
        assertEquals(5000L, ((Number) rows.get(0).get("size")).longValue(), "the version is what was renamed: " + rows);
    }

    // ---------------------------------------------------------------- 7. statically linked writer

    @Test
    void aStaticallyLinkedWriterIsHeldToo() throws Exception {
        assumeTrue(!gccMissing, "skipped: gcc is not installed, so the static writer"
                + " cannot be built (bin/prereqs --test is to install gcc and libc6-dev)");
        assertNotNull(renamer, gccProblem);
        byte[] initial = initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        // 12 saves by rename/renameat/renameat2, 12 rotations, 6 unlink (unlink/unlinkat) + re-create
        Result r = vfs("run", "--target", "job.gbw", "--", renamer.toString(), "job.gbw", "12", "12", "6", log.toString(), "--names");
        assertWriterOk(r);
        List<Checkpoint> cks = truth(log);
        assertEquals(30, cks.size());
        assertEveryCheckpointIsAVersion(dir.resolve("job.gbw.versions"), initial, log, c -> c.tag().equals("csave") ? "rename" : "close");
        assertRegular(dir.resolve("job.gbw"), cks.get(29).bytes());
        assertRegular(dir.resolve("job.gbw~"), cks.get(22).bytes()); // crot 10: the last rotation's predecessor
        assertHeldMode(r.err());
    }

    // ---------------------------------------------------------------- 8. MPI-style tree

    @Test
    void anMpiStyleTreeSavesAtomicallyWhileOtherRanksRenameScratch() throws Exception {
        byte[] initial = initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        Result r = runWriter(List.of("--target", "job.gbw"), "mpi", "job.gbw", "4", "30", log.toString(), "--names");
        assertWriterOk(r);
        // Ranks print at once: their lines may run together, so count the tokens, not the lines.
        assertEquals(5, java.util.regex.Pattern.compile("mismatches=0").matcher(r.out()).results().count(), "launcher and 4 ranks: " + r.out());
        List<Checkpoint> cks = truth(log);
        assertEquals(30, cks.size());
        assertEveryCheckpointIsAVersion(dir.resolve("job.gbw.versions"), initial, log, c -> "rename");
        assertRegular(dir.resolve("job.gbw"), cks.get(29).bytes());
        for (int k = 1; k <= 3; k++) {
            int count = Integer.parseInt(Files.readString(dir.resolve("rank" + k + ".count")).trim());
            assertTrue(count >= 200, "rank " + k + " renamed its scratch file " + count + " times");
            // after an even number of renames the file is back at .a
            Path now = dir.resolve("scratch." + k + (count % 2 == 0 ? ".a" : ".b"));
            Path other = dir.resolve("scratch." + k + (count % 2 == 0 ? ".b" : ".a"));
            assertRegular(now, TestSupport.payload("scratch" + k, k, 5000 + k));
            assertFalse(Files.exists(other, LinkOption.NOFOLLOW_LINKS), other + " was renamed away");
            assertFalse(Files.exists(dir.resolve("scratch." + k + ".a.versions")), "scratch files are not versioned");
        }
        assertHeldMode(r.err());
    }

    // ---------------------------------------------------------------- 9. the fallback

    @Test
    void noTrapFollowsARenameAwayAndASlowRecreate() throws Exception {
        byte[] initial = initialTarget("job.gbw");
        Path log = dir.resolve("truth.log");
        Result r = runWriter(List.of("--no-trap", "--target", "job.gbw"), "away-later", "job.gbw", "job.ges", "0.5", log.toString());
        assertWriterOk(r);
        List<Checkpoint> cks = truth(log);
        assertEquals(2, cks.size());
        assertEveryCheckpointIsAVersion(dir.resolve("job.gbw.versions"), initial, log, c -> "close");
        assertRegular(dir.resolve("job.ges"), initial);
        assertRegular(dir.resolve("job.gbw"), cks.get(1).bytes());
        assertAfterTheFactMode(r.err());
    }

    // ---------------------------------------------------------------- 10. an ordinary user

    @Test
    void atomicSavesAsAnOrdinaryUser() throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/usr/sbin/runuser")) || Files.isExecutable(Path.of("/sbin/runuser")),
                "skipped: runuser (util-linux) is missing");
        String user = UnprivilegedIT.USER;
        Path base = TestSupport.worldReadableInstall(Path.of("/tmp"), "vfs-trap-");
        try (TestSupport.OrdinaryUser testUser = TestSupport.OrdinaryUser.create(user)) {
            Result pre = TestSupport.run(TestSupport.PROJECT, null, 600, TestSupport.PROJECT.resolve("bin/prereqs").toString());
            assertEquals(0, pre.exit(), "bin/prereqs: " + pre.err());
            Files.copy(WRITERS, base.resolve("writers.py"));
            Files.setPosixFilePermissions(base.resolve("writers.py"), PosixFilePermissions.fromString("rw-r--r--"));
            Path work = Files.createDirectory(base.resolve("work")), tmp = Files.createDirectory(base.resolve("tmp"));
            for (Path p : List.of(work, tmp)) Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
            Files.write(work.resolve("job.gbw"), INITIAL);
            testUser.own(work, tmp, work.resolve("job.gbw"));
            Path log = work.resolve("truth.log");
            Result r = TestSupport.run(base, null, 180, "runuser", "-u", user, "--", "env",
                    "VERSIONFS_JAR=" + base.resolve("versionfs.jar"), "TMPDIR=" + tmp, "HOME=/home/" + user,
                    "SLURM_JOB_ID=", "SLURM_JOB_NUM_NODES=", "SLURM_NNODES=", "SLURM_TMPDIR=",
                    "sh", "-c", "cd " + work + " && exec " + base.resolve("bin/versionfs") + " run --target job.gbw -- /usr/bin/python3 "
                            + base.resolve("writers.py") + " atomic job.gbw 10 0.05 " + log + " --names");
            try {
                assertWriterOk(r);
                List<Checkpoint> cks = truth(log);
                assertEquals(10, cks.size());
                assertEveryCheckpointIsAVersion(work.resolve("job.gbw.versions"), INITIAL, log, c -> "rename");
                assertRegular(work.resolve("job.gbw"), cks.get(9).bytes());
                assertEquals(testUser.uid, Files.getAttribute(work.resolve("job.gbw"), "unix:uid", LinkOption.NOFOLLOW_LINKS),
                        "the target still belongs to the user");
                assertHeldMode(r.err());
            } finally {
                List<String> left = TestSupport.versionfsMounts().stream().map(l -> l.split(" ")[1])
                        .filter(m -> m.startsWith(base.toString())).toList();
                for (String m : left) TestSupport.run(base, null, 30, "runuser", "-u", user, "--", "fusermount", "-u", "-z", m);
                assertEquals(List.of(), left, "FUSE mounts left behind");
            }
        } finally {
            try (Stream<Path> s = Files.walk(base)) {
                for (Path x : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(x);
            }
        }
    }

    // ---------------------------------------------------------------- 11. exit codes

    @Test
    void theJobsExitCodeIsPassedThroughAndStrictIsAccepted() throws Exception {
        Result r = vfs("run", "--target", "job.gbw", "--", "sh", "-c", "echo a > job.gbw; exit 3");
        assertEquals(3, r.exit(), r.err());
        assertRegular(dir.resolve("job.gbw"), "a\n".getBytes(StandardCharsets.US_ASCII));
        Result strict = vfs("run", "--strict", "--target", "job.gbw", "--", "sh", "-c", "echo b > job.gbw; exit 3");
        assertEquals(3, strict.exit(), "--strict is accepted and the job's code still comes through: " + strict.err());
        Result ok = vfs("run", "--strict", "--target", "job.gbw", "--", "sh", "-c", "echo c > job.gbw");
        assertEquals(0, ok.exit(), "--strict with nothing lost: " + ok.err());
        assertRegular(dir.resolve("job.gbw"), "c\n".getBytes(StandardCharsets.US_ASCII));
        // run 1: "a" (no target before); runs 2 and 3: the starting content, then their write
        List<String> contents = new ArrayList<>();
        Path v = dir.resolve("job.gbw.versions");
        for (Map<String, Object> row : verifyVersions(v)) contents.add(Files.readString(v.resolve((String) row.get("path"))));
        assertEquals(List.of("a\n", "a\n", "b\n", "b\n", "c\n"), contents, "every run's writes are versions");
    }

    @Test
    void aLostVersionGivesTheJobsCodeAnd207OnlyWithStrict() throws Exception {
        // As DiskFullIT: a 1 MiB file edited twice in place on a 2.5 MiB tmpfs; a version is lost.
        String py = "python3 " + TestSupport.FSOPS, f = "small/job.gbw";
        String script = py + " rewrite " + f + " big 1 1 1048576; " + py + " overwrite-middle " + f + " EDIT-ONE 1000; "
                + py + " overwrite-middle " + f + " EDIT-TWO 2000";
        for (boolean strict : List.of(false, true)) {
            Path sub = Files.createDirectory(dir.resolve(strict ? "strict" : "plain"));
            try (TestSupport.SmallDisk disk = TestSupport.smallDisk(sub.resolve("small"), "2560k")) {
                List<String> cmd = new ArrayList<>(List.of(TestSupport.LAUNCHER.toString(), "run"));
                if (strict) cmd.add("--strict");
                cmd.addAll(List.of("--target", f, "--", "sh", "-c", script));
                Result r = TestSupport.run(sub, EngineIT.NO_GUARD, 180, cmd.toArray(String[]::new));
                List<Map<String, Object>> rows = TestSupport.manifestVersions(sub.resolve("small/job.gbw.versions"));
                assertTrue(rows.stream().anyMatch(m -> "lost".equals(m.get("status"))), "a version was lost: " + rows);
                assertEquals(strict ? 207 : 0, r.exit(), (strict ? "--strict: 207" : "without --strict: the job's code (0)")
                        + " when a version was lost: " + r.err());
                byte[] last = Files.readAllBytes(sub.resolve(f));
                assertEquals("EDIT-TWO", new String(last, 2000, 8, StandardCharsets.US_ASCII), "the job's data is all there");
            }
        }
    }
}
