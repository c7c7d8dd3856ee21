package io.versionfs.capture;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ManifestTailTest {
    @TempDir
    Path dir;

    private static String line(long n, String file) {
        return ManifestLine.version(n, file).build().toJson() + "\n";
    }

    @Test
    void theHighestNumberOfEachSeriesAmongTheNewestLines() throws Exception {
        Path m = dir.resolve("manifest.jsonl");
        Files.writeString(m, line(1, "a.gbw") + line(2, "a.gbw") + line(1, "b.gbw") + line(3, "a.gbw")
                + "{not json\n" + ManifestLine.event("start").build().toJson() + "\n" + line(2, "b.gbw"));
        assertEquals(Map.of("a.gbw", 3L, "b.gbw", 2L), ManifestTail.highestNumbers(m));
    }

    @Test
    void aLineBeingWrittenAndALineCutByTheTailAreLeftOut() throws Exception {
        Path m = dir.resolve("manifest.jsonl");
        StringBuilder sb = new StringBuilder();
        for (int i = 1; sb.length() < 3 * ManifestTail.TAIL; i++) sb.append(line(i, "a.gbw"));
        long last = ManifestTail.highestNumbers(write(m, sb.toString())).get("a.gbw");
        String partial = line(last + 1, "a.gbw");
        Map<String, Long> h = ManifestTail.highestNumbers(write(m, sb + partial.substring(0, partial.length() / 2)));
        assertEquals(last, h.get("a.gbw"), "the unfinished line names no number yet");
        assertTrue(last > 100, "the tail of a long manifest: " + last);
    }

    @Test
    void noManifestNoNumbers() throws Exception {
        assertTrue(ManifestTail.highestNumbers(dir.resolve("manifest.jsonl")).isEmpty());
    }

    private static Path write(Path p, String s) throws Exception {
        return Files.writeString(p, s);
    }
}
