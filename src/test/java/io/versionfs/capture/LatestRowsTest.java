package io.versionfs.capture;

import io.versionfs.text.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The streamed latest view is the in-memory one ({@link Manifest#latest}), row for row. */
class LatestRowsTest {
    @TempDir
    Path tmp;

    private record View(List<ManifestLine> rows, List<String> skipped) {}

    private View streamed() throws Exception {
        List<ManifestLine> rows = new ArrayList<>();
        List<String> skipped = new ArrayList<>();
        LatestRows.each(tmp, skipped::add, rows::add);
        return new View(rows, skipped);
    }

    private void assertSameAsInMemory() throws Exception {
        Manifest.Contents c = Manifest.readChecked(tmp);
        View v = streamed();
        assertEquals(c.skipped(), v.skipped());
        assertEquals(Manifest.latest(c.rows()), v.rows());
    }

    private static String line(long version, String file, String status) {
        return ManifestLine.version(version, file).path(status.equals("saved") ? VersionNaming.versionName(file, version) : null)
                .status(status).size(version).build().toJson() + "\n";
    }

    @Test
    void laterLinesAboutAVersionShowAtItsFirstPlaceEventsAndDamageAsTheyAre() throws Exception {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.write(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF}); // a byte-order mark on line 1
        b.write(line(1, "job.gbw", "saved").getBytes(StandardCharsets.UTF_8));
        b.write(line(1, "other.dat", "saved").getBytes(StandardCharsets.UTF_8)); // same number, another series
        b.write(line(2, "job.gbw", "saved").getBytes(StandardCharsets.UTF_8));
        b.write((ManifestLine.event("rename").from("job.gbw").to("x").build().toJson() + "\n").getBytes(StandardCharsets.UTF_8));
        b.write("not json\n\n".getBytes(StandardCharsets.UTF_8));
        b.write(line(2, "job.gbw", "lost").getBytes(StandardCharsets.UTF_8));
        b.write(line(3, "job.gbw", "saved").getBytes(StandardCharsets.UTF_8));
        b.write(line(1, "job.gbw", "pruned").getBytes(StandardCharsets.UTF_8));
        b.write(line(2, "job.gbw", "pruned").getBytes(StandardCharsets.UTF_8)); // third line about 2: the last counts
        b.write(("{\"version\":7,\"file\":\"" + "x".repeat(Manifest.MAX_LINE) + "\"}\n").getBytes(StandardCharsets.UTF_8));
        b.write(line(999_999_999L, "job.gbw", "saved").getBytes(StandardCharsets.UTF_8)); // far past the others
        b.write(line(-5, "job.gbw", "saved").getBytes(StandardCharsets.UTF_8)); // before the first number
        b.write(line(999_999_999L, "job.gbw", "pruned").getBytes(StandardCharsets.UTF_8));
        b.write(line(-5, "job.gbw", "lost").getBytes(StandardCharsets.UTF_8));
        b.write("{\"version\":2,\"file\":\"job.gbw\",\"status\":\"sa".getBytes(StandardCharsets.UTF_8)); // cut short
        Files.write(tmp.resolve(Manifest.FILE_NAME), b.toByteArray());

        View v = streamed();
        assertEquals(List.of("1 job.gbw pruned", "1 other.dat saved", "2 job.gbw pruned", "rename", "3 job.gbw saved",
                "999999999 job.gbw pruned", "-5 job.gbw lost"), v.rows().stream().map(r -> r.isVersion()
                ? r.version() + " " + r.file() + " " + r.status() : r.event()).toList());
        assertEquals(3, v.skipped().size(), v.skipped().toString());
        assertSameAsInMemory();
    }

    @Test
    void aLastLineWithoutItsNewlineIsStillRead() throws Exception {
        Files.writeString(tmp.resolve(Manifest.FILE_NAME), line(1, "job.gbw", "saved") + line(1, "job.gbw", "lost").strip());
        assertEquals(List.of("lost"), streamed().rows().stream().map(ManifestLine::status).toList());
        assertSameAsInMemory();
    }

    @Test
    void noManifestNoRows() throws Exception {
        assertEquals(new View(List.of(), List.of()), streamed());
    }

    @Test
    void manySeriesInAnyOrderMatchTheInMemoryView() throws Exception {
        Random rnd = new Random(42);
        StringBuilder sb = new StringBuilder();
        String[] status = {"saved", "saved", "lost", "pruned"};
        for (int i = 0; i < 5000; i++) {
            long n = rnd.nextInt(10) == 0 ? rnd.nextInt(1_000_000_000) : rnd.nextInt(1500); // mostly dense, some far off
            sb.append(line(n, "s" + rnd.nextInt(7) + ".dat", status[rnd.nextInt(status.length)]));
        }
        Files.writeString(tmp.resolve(Manifest.FILE_NAME), sb.toString());
        assertSameAsInMemory();
    }

    /** list --json prints each row's own JSON: what the whole list printed through maps did, byte for byte. */
    @Test
    void aRowsJsonIsWhatTheListOfMapsPrinted() {
        ManifestLine full = ManifestLine.version(3, "a \"b\"\n<c>.gbw").path("a.000003.gbw").size(12).sha256("ab")
                .sameAs(2).pid(7).cmdline("x é \u0001").reason("close").status("saved").error("e").dropped(false)
                .seconds(1.0E-4).exit(0).fromPid(9).into(List.of("x", "y")).build();
        ManifestLine event = ManifestLine.event("hook").seconds(12.0).exit(-1).build();
        // As read from a manifest someone wrote: escapes, a null in a list, numbers written otherwise.
        ManifestLine read = ManifestLine.parse("{\"event\":\"x\\u0041\\/\",\"into\":[\"a\",null],\"seconds\":1e3,\"exit\":-0,"
                + "\"pid\":2147483647,\"from_pid\":9007199254740993,\"v\":1}");
        for (ManifestLine r : List.of(full, event, read)) assertEquals(Json.write(List.of(r.toMap())), "[" + r.toJson() + "]");
    }

    @Test
    void versionTableKeepsDenseAndFarNumbersApart() {
        VersionTable t = new VersionTable();
        for (long n = 1; n <= 100_000; n++) t.put("a", n, (int) n);
        t.put("a", 5_000_000_000L, 7); // far: the map
        t.put("a", 0, 8); // before the first number: the map
        t.put("a", 450_000, 11); // too far past 100k held numbers: the map, for now
        for (long n = 100_001; n <= 600_000; n++) if (n != 450_000) t.put("a", n, 1); // the array grows over it
        assertEquals(11, t.get("a", 450_000));
        t.put("a", 450_000, 12);
        assertEquals(12, t.get("a", 450_000));
        assertEquals(1, t.get("a", 450_001));
        t.put("a", Long.MIN_VALUE, 9);
        t.put("b", 1, 10);
        assertEquals(100_000, t.get("a", 100_000));
        assertEquals(7, t.get("a", 5_000_000_000L));
        assertEquals(8, t.get("a", 0));
        assertEquals(9, t.get("a", Long.MIN_VALUE));
        assertEquals(10, t.get("b", 1));
        assertEquals(0, t.get("b", 2));
        assertEquals(0, t.get("c", 1));
        assertEquals(0, t.get("a", Long.MAX_VALUE));
    }
}
