package io.versionfs.run;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a program can do to its open file besides read and write (issue 20, item 4). Each family
 * of operations is done by {@code src/test/resources/fileops.py}, first on a plain file, then on
 * a target of {@code versionfs run} in symlink mode and in directory mode. Through the mount every
 * outcome must be the plain file's but for the differences each test lists (the README table
 * says the same); every close after a write must be a version with that close's content, user.*
 * attributes and flags (so no saved version ever changed); the final file must have every write
 * and be a version itself.
 *
 * <p>Shared setup, to keep the suite short: one {@code versionfs run} per mode does every family,
 * each on its own target ({@code job-FAMILY.gbw}); the tests then check their family.
 */
class FileOpsIT {
    private static final Path FILEOPS = TestSupport.PROJECT.resolve("src/test/resources/fileops.py");
    private static final List<String> FAMILIES = List.of("copy", "clone", "ioctl", "seek", "xattr", "io");
    private static final List<String> MODES = List.of("symlink", "dir");
    /** The edits the attributes target gets: in place (a copy-on-write copy), then from scratch (a fresh empty inode). */
    private static final String EDITS = "echo more >> job-attrs.gbw; echo again >> job-attrs.gbw; echo new > job-attrs.gbw;"
            + " echo last >> job-attrs.gbw";

    /** The working folders, one per mode (the mount covers it in directory mode). */
    @TempDir
    static Path work;
    /** Never mounted, same file system: the plain runs, helper files "outside", results. */
    @TempDir
    static Path outside;

    private static final Map<String, Map<String, String>> plain = new HashMap<>();
    private static final Map<String, Result> runs = new HashMap<>();
    private static boolean attrFlags;

    @BeforeAll
    static void runEveryFamilyOnAPlainFileAndThroughBothModes() throws Exception {
        Path helpers = Files.createDirectories(outside.resolve("helpers"));
        for (String f : FAMILIES) {
            Path plainDir = Files.createDirectories(outside.resolve("plain-" + f));
            Files.writeString(plainDir.resolve("job.gbw"), "initial\n");
            Path json = outside.resolve("plain-" + f + ".json");
            Result r = TestSupport.run(plainDir, null, 120, "python3", FILEOPS.toString(), f, "job.gbw", helpers.toString(), json.toString());
            assertEquals(0, r.exit(), f + " on a plain file: " + r.err());
            plain.put(f, results(json));
        }
        StringBuilder script = new StringBuilder(EDITS);
        for (String f : FAMILIES) {
            script.append("; python3 ").append(FILEOPS).append(' ').append(f).append(" job-").append(f).append(".gbw ").append(helpers)
                    .append(" \"$OUT-").append(f).append(".json\" 2> \"$OUT-").append(f).append(".err\"; echo $? > \"$OUT-").append(f).append(".rc\"");
        }
        for (String mode : MODES) {
            Path dir = Files.createDirectories(work.resolve(mode));
            for (String f : FAMILIES) Files.writeString(dir.resolve("job-" + f + ".gbw"), "initial\n");
            Path attrs = dir.resolve("job-attrs.gbw");
            Files.writeString(attrs, "initial\n");
            Files.getFileAttributeView(attrs, UserDefinedFileAttributeView.class).write("keep", ByteBuffer.wrap("yes".getBytes()));
            attrFlags = TestSupport.run(dir, null, 30, "chattr", "+d", "job-attrs.gbw").exit() == 0;
            Map<String, String> env = Map.of("TMPDIR", Files.createDirectories(dir.resolve("tmp")).toString(),
                    "OUT", outside.resolve(mode).toString());
            runs.put(mode, TestSupport.run(dir, env, 300, TestSupport.launcher("run", "--mode", mode, "--target", "job-*.gbw", "--",
                    "sh", "-c", script.toString())));
        }
    }

    @AfterAll
    static void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(work);
    }

    private static Map<String, String> results(Path json) throws Exception {
        Map<String, String> out = new TreeMap<>();
        JsonObject r = JsonParser.parseString(Files.readString(json)).getAsJsonObject().getAsJsonObject("results");
        r.entrySet().forEach(e -> out.put(e.getKey(), e.getValue().getAsString()));
        return out;
    }

    /**
     * Checks {@code family}'s target in both modes (the run, the final file, every version) and
     * returns the outcomes that differ from the plain file's: mode, then name to "plain -> mount".
     */
    private static Map<String, Map<String, String>> family(String family) throws Exception {
        Map<String, String> want = plain.get(family);
        want.forEach((k, v) -> assertFalse(v.contains("MISMATCH"), "plain file, " + k + ": " + v));
        Map<String, Map<String, String>> differences = new TreeMap<>();
        for (String mode : MODES) {
            Result run = runs.get(mode);
            assertEquals(0, run.exit(), mode + ": " + run.err());
            String out = outside.resolve(mode) + "-" + family;
            assertEquals("0", Files.readString(Path.of(out + ".rc")).trim(), mode + ": " + Files.readString(Path.of(out + ".err")));
            Path json = Path.of(out + ".json");
            JsonObject res = JsonParser.parseString(Files.readString(json)).getAsJsonObject();
            Path dir = work.resolve(mode), job = dir.resolve("job-" + family + ".gbw");
            assertFalse(Files.isSymbolicLink(job), mode + ": a regular file again");
            assertEquals(res.get("final").getAsString(), EngineIT.sha256(Files.readAllBytes(job)),
                    mode + ": the final file has every write the program made");
            Path vdir = dir.resolve("job-" + family + ".gbw.versions");
            EngineIT.verifyVersions(vdir);
            Result check = TestSupport.run(dir, null, 60, "python3", FILEOPS.toString(), "check", vdir.toString(), json.toString());
            assertEquals(0, check.exit(), mode + ": every close is a version with its content, attributes and flags:\n"
                    + check.out() + check.err());
            Map<String, String> got = results(json);
            assertEquals(want.keySet(), got.keySet(), mode + ": the same calls were made");
            Map<String, String> diff = new TreeMap<>();
            got.forEach((k, v) -> {
                if (!v.equals(want.get(k))) diff.put(k, want.get(k) + " -> " + v);
            });
            differences.put(mode, diff);
        }
        return differences;
    }

    /** Every difference from the plain file is one of {@code allowed}: a name and what it may be through the mount. */
    private static void onlyThese(Map<String, String> diff, String mode, Map<String, Set<String>> allowed) {
        diff.forEach((k, v) -> {
            Set<String> ok = allowed.get(k);
            String mount = v.substring(v.indexOf(" -> ") + 4);
            assertTrue(ok != null && ok.contains(mount), mode + ": " + k + " is " + v + " (plain -> mount); allowed here: " + ok
                    + "\nall differences: " + diff);
        });
    }

    @Test
    void copyFileRangeSendfileAndCpIntoAndOutOfTheTarget() throws Exception {
        Map<String, Map<String, String>> d = family("copy");
        // The kernel copies between two files only within one file system: in symlink mode the
        // target is on the mount and everything else is not; in directory mode the neighbours
        // are on it too (no FUSE copy_file_range in libfuse2: the kernel splices through our
        // write path). cp and sendfile work everywhere.
        Set<String> exdev = Set.of("EXDEV");
        onlyThese(d.get("symlink"), "symlink", Map.of("cfr_in_inside", exdev, "cfr_in_outside", exdev, "cfr_out_inside", exdev,
                "cfr_out_outside", exdev));
        onlyThese(d.get("dir"), "dir", Map.of("cfr_in_outside", exdev, "cfr_out_outside", exdev));
        assertEquals(Set.of("cfr_in_inside", "cfr_in_outside", "cfr_out_inside", "cfr_out_outside"), d.get("symlink").keySet(),
                "symlink mode: " + d);
        assertEquals(Set.of("cfr_in_outside", "cfr_out_outside"), d.get("dir").keySet(), "directory mode: " + d);
    }

    @Test
    void ficloneOntoTheTargetIsRefusedAndChangesNothing() throws Exception {
        Map<String, Map<String, String>> d = family("clone");
        // FUSE has no reflinks: EXDEV from another file system, EOPNOTSUPP within the mount
        // (what ext4 and tmpfs say too; XFS and btrfs would clone a plain file).
        Set<String> refused = Set.of("EXDEV", "ENOTSUP");
        Map<String, Set<String>> allowed = Map.of("ficlone_inside", refused, "ficlone_outside", refused, "ficlone_self", refused,
                "ficlonerange_inside", refused, "ficlonerange_outside", refused);
        for (String mode : MODES) onlyThese(d.get(mode), mode, allowed);
    }

    @Test
    void inodeFlagsWorkButNeverAppendOnlyOrImmutableAndOtherIoctlsAnswerAsAPlainFile() throws Exception {
        Map<String, Map<String, String>> d = family("ioctl");
        // chattr +a/+i: refused (a version is a hard link, the copy-on-write swap a rename);
        // FIEMAP: the kernel's answer for a FUSE file.
        Map<String, Set<String>> allowed = Map.of("setflags_append", Set.of("EPERM"), "setflags_immutable", Set.of("EPERM"),
                "fssetxattr_append", Set.of("EPERM"), "fiemap", Set.of("ENOTSUP"));
        for (String mode : MODES) onlyThese(d.get(mode), mode, allowed);
    }

    @Test
    void seekDataAndSeekHoleSeeNoHolesThroughTheMountAndNoWrongData() throws Exception {
        Map<String, Map<String, String>> d = family("seek");
        // libfuse2 has no lseek: the kernel's generic answer, all data up to the end.
        Map<String, Set<String>> allowed = Map.of("seek_hole_0", Set.of("ok:1048576"), "seek_hole_524288", Set.of("ok:1048576"),
                "seek_data_8192", Set.of("ok:8192"), "seek_data_600000", Set.of("ok:600000"));
        for (String mode : MODES) onlyThese(d.get(mode), mode, allowed);
    }

    @Test
    void extendedAttributesWorkAndNeverReachASavedVersion() throws Exception {
        Map<String, Map<String, String>> d = family("xattr");
        // In symlink mode the target's name is a symlink: lsetxattr sets the symlink's own
        // attributes, and user.* is not allowed on a symlink.
        onlyThese(d.get("symlink"), "symlink", Map.of("lset", Set.of("EPERM")));
        onlyThese(d.get("dir"), "dir", Map.of());
    }

    @Test
    void locksAppendDirectIoAndMmapWritesAllEndUpInVersionsOrTheFinalFile() throws Exception {
        Map<String, Map<String, String>> d = family("io");
        for (String mode : MODES) onlyThese(d.get(mode), mode, Map.of());
    }

    /** A user's attributes and chattr flags on the target before the run are on the final file and every version. */
    @Test
    void theTargetKeepsItsAttributesAndFlagsThroughCopyOnWrite() throws Exception {
        for (String mode : MODES) {
            assertEquals(0, runs.get(mode).exit(), mode + ": " + runs.get(mode).err());
            Path dir = work.resolve(mode), job = dir.resolve("job-attrs.gbw");
            assertEquals("new\nlast\n", Files.readString(job), mode);
            assertEquals(List.of("keep"), userAttributes(job), mode + ": the final file keeps its attributes");
            if (attrFlags) {
                Result ls = TestSupport.run(dir, null, 30, "lsattr", job.toString());
                assertTrue(ls.out().split(" ")[0].contains("d"), mode + ": the final file keeps chattr +d: " + ls.out());
            }
            Path vdir = dir.resolve("job-attrs.gbw.versions");
            List<Map<String, Object>> rows = EngineIT.verifyVersions(vdir);
            assertEquals(5, rows.size(), mode + ": initial + 4 closes: " + rows);
            for (Map<String, Object> row : rows) {
                assertEquals(List.of("keep"), userAttributes(vdir.resolve((String) row.get("path"))), mode + ": " + row);
            }
        }
    }

    private static List<String> userAttributes(Path p) throws Exception {
        UserDefinedFileAttributeView v = Files.getFileAttributeView(p, UserDefinedFileAttributeView.class);
        for (String n : v.list()) {
            ByteBuffer b = ByteBuffer.allocate(v.size(n));
            v.read(n, b);
            assertEquals("yes", new String(b.array(), StandardCharsets.UTF_8), p + ": " + n);
        }
        return v.list();
    }
}
