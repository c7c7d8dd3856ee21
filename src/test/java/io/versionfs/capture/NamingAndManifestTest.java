package io.versionfs.capture;

import io.versionfs.text.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NamingAndManifestTest {
    @TempDir
    Path tmp;

    @Test
    void versionNamesKeepTheExtensionAndSortInCaptureOrder() {
        assertEquals("job.000001.gbw", VersionNaming.versionName("job.gbw", 1));
        assertEquals("state.000012.cpt", VersionNaming.versionName("state.cpt", 12));
        assertEquals("a.b.000003.xyz", VersionNaming.versionName("a.b.xyz", 3));
        assertEquals("README.000002", VersionNaming.versionName("README", 2));
        assertEquals(".hidden.000002", VersionNaming.versionName(".hidden", 2));
        List<String> names = new java.util.ArrayList<>();
        for (int i : new int[] {10, 2, 999_999, 1, 100}) names.add(VersionNaming.versionName("job.gbw", i));
        List<String> sorted = names.stream().sorted().toList();
        assertEquals(List.of("job.000001.gbw", "job.000002.gbw", "job.000010.gbw", "job.000100.gbw", "job.999999.gbw"), sorted);
    }

    @Test
    void taggedNamesHaveTheSeriesShapeAndAreNeverVersions() {
        assertEquals("job.final.gbw", VersionNaming.taggedName("job.gbw", "final"));
        assertEquals("sub/x.recovered-17.dat", VersionNaming.taggedName("sub/x.dat", "recovered-17"));
        assertEquals(".hidden.final", VersionNaming.taggedName(".hidden", "final"));
        assertFalse(VersionNaming.isVersionFileName("job.final.gbw"));
        assertEquals("job.gbw.versions", VersionNaming.versionsFolderOf("job.gbw"));
    }

    @Test
    void parsesOnlyVersionsOfTheSameFile() {
        assertEquals(OptionalLong.of(7), VersionNaming.parse("job.gbw", "job.000007.gbw"));
        assertFalse(VersionNaming.parse("job.gbw", "job.000007.ges").isPresent());
        assertFalse(VersionNaming.parse("job.gbw", "myjob.000007.gbw").isPresent());
        assertFalse(VersionNaming.parse("job.gbw", "job.gbw").isPresent());
        assertFalse(VersionNaming.parse("job.gbw", "job.0000x7.gbw").isPresent());
        assertEquals(OptionalLong.of(123456789), VersionNaming.parse("job.gbw", "job.123456789.gbw"));
        // A stray name with a digit run we would never give is not ours (no overflow, no jump).
        assertFalse(VersionNaming.parse("job.gbw", "job.99999999999.gbw").isPresent());
        assertFalse(VersionNaming.parse("job.gbw", "job.99999999999999999999999.gbw").isPresent());
    }

    @Test
    void seriesInASubfolderKeepItsFolder() {
        assertEquals("sub/x.000003.dat", VersionNaming.versionName("sub/x.dat", 3));
        assertEquals(OptionalLong.of(3), VersionNaming.parse("sub/x.dat", "x.000003.dat"));
    }

    @Test
    void strayHugeNumberDoesNotBreakNumbering() throws Exception {
        Files.writeString(tmp.resolve("job.99999999999.gbw"), "stray");
        Files.writeString(tmp.resolve("job.000002.gbw"), "old");
        try (VersionStore s = VersionStore.open(tmp, java.time.Instant.now())) {
            Files.writeString(tmp.resolve("src"), "new");
            int fd = io.versionfs.sys.Posix.openDir(tmp.toString());
            VersionStore.Captured c = s.captureAt(fd, "src", "job.gbw", "close");
            io.versionfs.sys.Posix.C.close(fd);
            assertEquals(3, c.version().number);
            s.drain();
            assertEquals("stray", Files.readString(tmp.resolve("job.99999999999.gbw")));
        }
    }

    @Test
    void globsAndNames() {
        TargetMatcher m = new TargetMatcher(List.of("job.gbw", "*.xyz"));
        assertTrue(m.matches("job.gbw"));
        assertTrue(m.matches("traj.xyz"));
        assertFalse(m.matches("job.ges"));
        assertFalse(m.matches("sub/traj.xyz"), "globs do not cross folders");
        assertFalse(m.matches("."));
    }

    @Test
    void manifestLinesRoundTripAndSurviveAHalfWrittenLine() throws Exception {
        try (Manifest man = new Manifest(tmp)) {
            man.append(ManifestLine.version(1, "job.gbw").cmdline("orca \"job\".inp\n\tx").sha256(null).build());
            man.append(ManifestLine.event("rename").from("job.gbw").to("job.ges").build());
        }
        Files.writeString(tmp.resolve(Manifest.FILE_NAME), "{\"version\":2,\"fi", java.nio.file.StandardOpenOption.APPEND);
        List<ManifestLine> rows = Manifest.read(tmp);
        assertEquals(2, rows.size(), "the cut line is skipped, the others kept");
        assertEquals(1L, rows.get(0).version());
        assertEquals("orca \"job\".inp\n\tx", rows.get(0).cmdline());
        assertEquals("job.ges", rows.get(1).to());
        assertEquals(ManifestLine.FORMAT, rows.get(1).v(), "each line says its format");
        // The documented format: field names as written, nulls left out.
        String text = Files.readString(tmp.resolve(Manifest.FILE_NAME));
        assertTrue(text.startsWith("{\"v\":1,\"version\":1,\"file\":\"job.gbw\",\"time\":\""), text);
        assertFalse(text.contains("null"), text);
    }

    @Test
    void storeContinuesAfterExistingVersions() throws Exception {
        Files.writeString(tmp.resolve("job.000041.gbw"), "old");
        try (VersionStore s = VersionStore.open(tmp, java.time.Instant.now())) {
            Files.writeString(tmp.resolve("src"), "new");
            int fd = io.versionfs.sys.Posix.openDir(tmp.toString());
            VersionStore.Captured c = s.captureAt(fd, "src", "job.gbw", "close");
            io.versionfs.sys.Posix.C.close(fd);
            assertEquals(42, c.version().number);
            assertTrue(c.linked(), "same filesystem: captured by hard link");
            s.drain();
            assertTrue(Files.notExists(tmp.resolve("job.000042.gbw")), "not published while it shares the source's inode");
            Files.delete(tmp.resolve("src"));
            s.publish(c.version());
            s.drain();
            assertEquals("new", Files.readString(tmp.resolve("job.000042.gbw")));
            assertTrue(Files.getPosixFilePermissions(tmp.resolve("job.000042.gbw")).stream().noneMatch(p -> p.name().contains("WRITE")),
                    "published read-only");
        }
    }

    @Test
    void aDamagedManifestIsReadLineByLineAndTheDamageReported() throws Exception {
        byte[] bad = {'{', '"', 'x', '"', ':', '"', (byte) 0xff, '"', '}', '\n'};
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        b.write("{\"version\":1,\"file\":\"job.gbw\"}\n".getBytes());
        b.write("null\n".getBytes());
        b.write(bad);
        b.write(("[".repeat(100_000) + "\n").getBytes());
        b.write("{\"version\":2,\"file\":\"job.gbw\"}\n".getBytes());
        b.write("{\"version\":3,\"fi".getBytes()); // torn: the run was killed mid-append
        Files.write(tmp.resolve(Manifest.FILE_NAME), b.toByteArray());
        Manifest.Contents c = Manifest.readChecked(tmp);
        assertEquals(List.of(1L, 2L), c.rows().stream().map(ManifestLine::version).toList());
        assertEquals(4, c.skipped().size(), c.skipped().toString());
        assertTrue(c.skipped().get(0).startsWith("line 2"), c.skipped().toString());
        assertTrue(c.skipped().get(3).startsWith("line 6") && c.skipped().get(3).contains("cut short"), c.skipped().toString());
        // The next run appends on a fresh line: its first line is not glued to the fragment.
        try (Manifest m = new Manifest(tmp)) {
            m.append(ManifestLine.version(4L, "job.gbw").build());
        }
        assertEquals(List.of(1L, 2L, 4L), Manifest.read(tmp).stream().map(ManifestLine::version).toList());
        // versionfs list shows what it can and names the skipped lines, exit 0, no stack trace.
        java.io.PrintStream oldErr = System.err, oldOut = System.out;
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream(), out = new java.io.ByteArrayOutputStream();
        int rc;
        try {
            System.setErr(new java.io.PrintStream(err, true));
            System.setOut(new java.io.PrintStream(out, true));
            rc = io.versionfs.cli.Main.execute("list", tmp.toString());
        } finally {
            System.setErr(oldErr);
            System.setOut(oldOut);
        }
        assertEquals(0, rc, err.toString());
        assertTrue(err.toString().contains("line 2: not a JSON object: skipped"), err.toString());
        assertFalse(err.toString().contains("Exception"), err.toString());
        assertEquals(3, out.toString().lines().filter(l -> l.contains("job.gbw")).count(), out.toString());
    }
}
