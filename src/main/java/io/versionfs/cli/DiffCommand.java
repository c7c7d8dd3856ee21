package io.versionfs.cli;

import io.versionfs.capture.ManifestLine;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.report.Json;
import io.versionfs.report.Summary;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code versionfs diff DIR A B}: what changed between two versions. Text: a unified diff (by
 * diff(1)). Binary: the changed byte ranges and how many bytes changed, so a user sees "the
 * orbitals changed everywhere" apart from "a header changed".
 */
@Command(name = "diff", mixinStandardHelpOptions = true,
        description = {"Compare two versions: a unified diff for text, changed byte ranges for binary files.",
                "Example: versionfs diff job.gbw.versions 3 4"})
final class DiffCommand implements Callable<Integer> {
    private static final int MAX_RANGES = 20;

    @Parameters(index = "0", paramLabel = "DIR") Path dir;
    @Parameters(index = "1", paramLabel = "A", description = "Version number (or 'latest')") String a;
    @Parameters(index = "2", paramLabel = "B", description = "Version number (or 'latest')") String b;

    @Option(names = "--json", description = "Print the comparison as JSON (binary report; for text: whether it differs)")
    boolean json;

    @Override
    public Integer call() throws IOException {
        VersionsFolder.require(dir);
        List<ManifestLine> saved = VersionsFolder.saved(dir);
        Path pa = path(saved, a), pb = path(saved, b);
        byte[] x = Files.readAllBytes(pa), y = Files.readAllBytes(pb);
        if (!json && isText(x) && isText(y)) {
            Process p = new ProcessBuilder("diff", "-u", "--label", "version " + a, "--label", "version " + b,
                    pa.toString(), pb.toString()).inheritIO().start();
            try {
                int rc = p.waitFor();
                return rc <= 1 ? ExitCodes.OK : ExitCodes.INTERNAL;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return ExitCodes.INTERNAL;
            }
        }
        // Binary: changed ranges (differences closer than 64 bytes merged), bytes changed.
        List<long[]> ranges = new ArrayList<>();
        long changed = 0;
        int n = Math.min(x.length, y.length);
        long start = -1, lastDiff = -1;
        for (int i = 0; i < n; i++) {
            if (x[i] != y[i]) {
                changed++;
                if (start < 0 || i - lastDiff > 64) {
                    if (start >= 0) ranges.add(new long[] {start, lastDiff + 1});
                    start = i;
                }
                lastDiff = i;
            }
        }
        if (start >= 0) ranges.add(new long[] {start, lastDiff + 1});
        if (x.length != y.length) {
            ranges.add(new long[] {n, Math.max(x.length, y.length)});
            changed += Math.abs((long) x.length - y.length);
        }
        double pct = Math.max(x.length, y.length) == 0 ? 0 : 100.0 * changed / Math.max(x.length, y.length);
        if (json) {
            List<Object> rs = new ArrayList<>();
            for (long[] r : ranges) rs.add(List.of(r[0], r[1]));
            System.out.println(Json.obj().put("a", a).put("b", b).put("size_a", (long) x.length).put("size_b", (long) y.length)
                    .put("bytes_changed", changed).put("percent_changed", Math.round(pct * 100) / 100.0)
                    .put("ranges", rs).toString());
            return ExitCodes.OK;
        }
        System.out.printf("version %s: %s, version %s: %s; %s changed (%.2f%%) in %d range(s)%n", a, Summary.bytes(x.length),
                b, Summary.bytes(y.length), Summary.bytes(changed), pct, ranges.size());
        for (int i = 0; i < Math.min(MAX_RANGES, ranges.size()); i++) {
            long[] r = ranges.get(i);
            System.out.printf("  bytes %d-%d (%s)%n", r[0], r[1] - 1, Summary.bytes(r[1] - r[0]));
        }
        if (ranges.size() > MAX_RANGES) System.out.println("  ... " + (ranges.size() - MAX_RANGES) + " more range(s)");
        return ExitCodes.OK;
    }

    private Path path(List<ManifestLine> saved, String which) {
        ManifestLine row = VersionsFolder.pick(dir, saved, which);
        Path p = dir.resolve(String.valueOf(row.path()));
        if (!Files.isRegularFile(p)) throw new UserError(ExitCodes.VERSIONS_LOST, p + " is missing (see: versionfs verify " + dir + ")");
        return p;
    }

    private static boolean isText(byte[] b) {
        for (int i = 0; i < Math.min(b.length, 8192); i++) if (b[i] == 0) return false;
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(b, 0, Math.min(b.length, 1 << 20)));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }
}
