package io.versionfs.run;

import io.versionfs.text.Bytes;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import io.versionfs.capture.Manifest;
import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.VersionNaming;
import io.versionfs.text.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedWriter;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Folders of many versions (issue 20, item 5): list, verify and prune read the manifest as a
 * stream, in the launcher's default heap. No timing is asserted (shared machines); the times are
 * in bench/README.md.
 */
class BigFolderIT {
    private static final Instant T0 = Instant.parse("2026-01-01T00:00:00Z");

    @TempDir
    Path dir;

    /** The launcher as a user runs it: its own default heap, whatever this environment sets. */
    private static final Map<String, String> DEFAULT_HEAP = new java.util.HashMap<>();

    static {
        DEFAULT_HEAP.put("VERSIONFS_HEAP", null);
        DEFAULT_HEAP.put("VERSIONFS_JAVA_OPTS", null);
    }

    private static ProcessBuilder launcher(Path cwd, String... args) {
        ProcessBuilder pb = new ProcessBuilder(TestSupport.launcher(args)).directory(cwd.toFile());
        DEFAULT_HEAP.keySet().forEach(pb.environment()::remove);
        return pb;
    }

    private Result vfs(String... args) throws Exception {
        return TestSupport.run(dir, DEFAULT_HEAP, 900, TestSupport.launcher(args));
    }

    private static String versionLine(long n, String path, long size, String sha) {
        return ManifestLine.version(n, "job.gbw").path(path).size(size).sha256(sha).time(T0.plusMillis(n)).pid(4242)
                .cmdline("./solver --input job.in").reason("close").status("saved").build().toJson();
    }

    @Test
    void listJsonOfAMillionVersionsStreamsInTheDefaultHeap() throws Exception {
        int n = 1_000_000;
        Path v = dir.resolve("job.gbw.versions");
        Files.createDirectory(v);
        String sha = "ab".repeat(32);
        // A million saved versions (files need not exist for list); an event among them; version
        // 500000 given up just after it was saved, every 100000th pruned at the end: later lines
        // about a version show at its first place.
        try (BufferedWriter w = Files.newBufferedWriter(v.resolve(Manifest.FILE_NAME))) {
            for (long i = 1; i <= n; i++) {
                w.write(versionLine(i, VersionNaming.versionName("job.gbw", i), 10, sha));
                w.newLine();
                if (i == 500_000) {
                    w.write(ManifestLine.version(i, "job.gbw").status("lost").reason("close").build().toJson());
                    w.newLine();
                    w.write(ManifestLine.event("rename").from("job.gbw").to("job.old").build().toJson());
                    w.newLine();
                }
            }
            for (long i = 100_000; i <= n; i += 100_000) {
                w.write(ManifestLine.version(i, "job.gbw").status("pruned").pruned("not kept by --keep-last 1").build().toJson());
                w.newLine();
            }
        }
        Path out = dir.resolve("list.json"), err = dir.resolve("list.err");
        Process p = launcher(dir, "list", "--json", v.toString()).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertTrue(p.waitFor(600, TimeUnit.SECONDS), "list --json ends");
        String errText = Files.readString(err);
        assertEquals(0, p.exitValue(), errText);
        assertEquals("", errText, "nothing on stderr: no OutOfMemoryError, no warning");

        // Read back as a stream, strictly: one array, one element per version and event, in order.
        long versions = 0, events = 0, expect = 1;
        List<String> odd = new ArrayList<>();
        try (Reader r = Files.newBufferedReader(out, StandardCharsets.UTF_8); JsonReader j = new JsonReader(r)) {
            j.setStrictness(com.google.gson.Strictness.STRICT);
            j.beginArray();
            while (j.hasNext()) {
                Map<String, Object> e = element(j);
                if (e.containsKey("event")) {
                    events++;
                    assertEquals(500_000L, versions, "the event in its place");
                    continue;
                }
                assertEquals(expect++, e.get("version"), "versions in manifest order, each once");
                versions++;
                if (!"saved".equals(e.get("status"))) odd.add(e.get("version") + " " + e.get("status"));
            }
            j.endArray();
            assertEquals(JsonToken.END_DOCUMENT, j.peek(), "nothing after the array");
        }
        assertEquals(n, versions);
        assertEquals(1, events);
        List<String> expected = new ArrayList<>(List.of("100000 pruned", "200000 pruned", "300000 pruned", "400000 pruned",
                "500000 pruned", "600000 pruned", "700000 pruned", "800000 pruned", "900000 pruned", "1000000 pruned"));
        assertEquals(expected, odd, "a version's last line counts (500000: saved, lost, then pruned)");
    }

    /** The fields this test looks at, of one element (the others skipped: the test's heap does not hold a million maps). */
    private static Map<String, Object> element(JsonReader j) throws Exception {
        Map<String, Object> m = new java.util.HashMap<>();
        j.beginObject();
        while (j.hasNext()) {
            String name = j.nextName();
            switch (name) {
                case "version" -> m.put(name, j.nextLong());
                case "status", "event" -> m.put(name, j.nextString());
                default -> j.skipValue();
            }
        }
        j.endObject();
        return m;
    }

    @Test
    void pruneOfAHundredThousandVersionsLeavesWhatTheRulesSay() throws Exception {
        int n = 100_000;
        Path v = dir.resolve("job.gbw.versions");
        Files.createDirectory(v);
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (BufferedWriter w = Files.newBufferedWriter(v.resolve(Manifest.FILE_NAME))) {
            for (long i = 1; i <= n; i++) {
                byte[] body = ("version " + i + "\n").getBytes(StandardCharsets.US_ASCII);
                String name = VersionNaming.versionName("job.gbw", i);
                Files.write(v.resolve(name), body);
                w.write(versionLine(i, name, body.length, HexFormat.of().formatHex(md.digest(body))));
                w.newLine();
            }
        }
        Result pruned = vfs("prune", "--keep-last", "10", "--keep-every", "25000", v.toString());
        assertEquals(0, pruned.exit(), pruned.err());
        List<Long> kept = LongStream.concat(LongStream.of(1, 25_000, 50_000, 75_000), LongStream.rangeClosed(99_991, 100_000))
                .boxed().toList();
        assertTrue(pruned.out().strip().endsWith("removed " + (n - kept.size()) + " version(s), "
                + Bytes.of(bytesOfAllBut(kept, n)) + " freed"), tail(pruned.out()));
        assertFalse(pruned.err().contains("Exception") || pruned.err().contains("Error"), pruned.err());

        // Exactly the kept files are left, the manifest says so, and verify agrees.
        TreeSet<Long> left = new TreeSet<>();
        try (Stream<Path> s = Files.list(v)) {
            s.map(f -> f.getFileName().toString()).filter(VersionNaming::isVersionFileName)
                    .forEach(f -> left.add(VersionNaming.parse("job.gbw", f).orElseThrow()));
        }
        assertEquals(kept, List.copyOf(left));
        Result list = vfs("list", "--json", v.toString());
        assertEquals(0, list.exit(), list.err());
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> rows = (List<Map<String, Object>>) Json.parse(list.out().strip());
        assertEquals(n, rows.size(), "one row per version, its latest line");
        assertEquals(kept, rows.stream().filter(m -> "saved".equals(m.get("status"))).map(m -> (Long) m.get("version")).toList());
        assertTrue(rows.stream().filter(m -> !"saved".equals(m.get("status")))
                .allMatch(m -> "pruned".equals(m.get("status")) && m.get("path") == null), "the others say pruned, without a file");
        Result verify = vfs("verify", v.toString());
        assertEquals(0, verify.exit(), verify.out() + verify.err());
        assertTrue(verify.out().contains("intact: " + kept.size() + " version(s) checked"), verify.out());
    }

    /** Bytes of the versions 1..n not in {@code kept} ("version N\n" each). */
    private static long bytesOfAllBut(List<Long> kept, int n) {
        long sum = 0;
        for (long i = 1; i <= n; i++) if (!kept.contains(i)) sum += ("version " + i + "\n").length();
        return sum;
    }

    private static String tail(String s) {
        return s.length() > 2000 ? "..." + s.substring(s.length() - 2000) : s;
    }
}
