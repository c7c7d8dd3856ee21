package io.versionfs.cli;

import io.versionfs.text.Bytes;
import io.versionfs.capture.ManifestLine;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Json;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
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
    private static final int MAX_RANGES = 20, MAX_JSON_RANGES = 10_000;

    @Parameters(index = "0", paramLabel = "DIR") Path dir;
    @Parameters(index = "1", paramLabel = "A", description = "Version number (or 'latest')") String a;
    @Parameters(index = "2", paramLabel = "B", description = "Version number (or 'latest')") String b;

    @Option(names = "--json", description = "Print the comparison as JSON (binary report; for text: whether it differs)")
    boolean json;

    @Override
    public Integer call() throws IOException {
        VersionsFolder.require(dir);
        Path pa = path(a), pb = path(b);
        if (!json && isText(head(pa)) && isText(head(pb))) return unifiedDiff(pa, pb);
        Changes c = Changes.between(pa, pb, json ? MAX_JSON_RANGES : MAX_RANGES);
        if (json) {
            List<Object> rs = new ArrayList<>();
            for (long[] r : c.ranges) rs.add(List.of(r[0], r[1]));
            System.out.println(Json.obj().put("a", a).put("b", b).put("size_a", c.sizeA).put("size_b", c.sizeB)
                    .put("bytes_changed", c.changed).put("percent_changed", Math.round(c.percent() * 100) / 100.0)
                    .put("ranges", rs).put("range_count", c.rangeCount).toString());
            return ExitCodes.OK;
        }
        System.out.printf("version %s: %s, version %s: %s; %s changed (%.2f%%) in %d range(s)%n", a, Bytes.of(c.sizeA),
                b, Bytes.of(c.sizeB), Bytes.of(c.changed), c.percent(), c.rangeCount);
        for (long[] r : c.ranges) System.out.printf("  bytes %d-%d (%s)%n", r[0], r[1] - 1, Bytes.of(r[1] - r[0]));
        if (c.rangeCount > c.ranges.size()) System.out.println("  ... " + (c.rangeCount - c.ranges.size()) + " more range(s)");
        return ExitCodes.OK;
    }

    private int unifiedDiff(Path pa, Path pb) throws IOException {
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

    /**
     * The changed byte ranges of two files, read side by side in chunks (constant memory: versions
     * of tens of GiB are compared in the launcher's small heap). Differences closer than 64 bytes
     * are one range; only the first {@code keep} ranges are kept, all are counted.
     */
    static final class Changes {
        private static final int CHUNK = 1 << 20, MERGE = 64;
        final List<long[]> ranges = new ArrayList<>();
        long sizeA, sizeB, changed, rangeCount;
        private long start = -1, lastDiff = -1;
        private final int keep;

        private Changes(int keep) {
            this.keep = keep;
        }

        static Changes between(Path pa, Path pb, int keep) throws IOException {
            Changes c = new Changes(keep);
            try (FileChannel x = FileChannel.open(pa); FileChannel y = FileChannel.open(pb)) {
                c.sizeA = x.size();
                c.sizeB = y.size();
                ByteBuffer bx = ByteBuffer.allocate(CHUNK), by = ByteBuffer.allocate(CHUNK);
                long common = Math.min(c.sizeA, c.sizeB);
                for (long off = 0; off < common; off += CHUNK) {
                    int n = (int) Math.min(CHUNK, common - off);
                    readFully(x, bx, off, n);
                    readFully(y, by, off, n);
                    c.compare(bx.array(), by.array(), off, n);
                }
                c.close();
                if (c.sizeA != c.sizeB) c.add(common, Math.max(c.sizeA, c.sizeB));
                c.changed += Math.abs(c.sizeA - c.sizeB);
            }
            return c;
        }

        private void compare(byte[] x, byte[] y, long off, int n) {
            for (int i = 0; i < n; i++) {
                if (x[i] == y[i]) continue;
                long at = off + i;
                changed++;
                if (start < 0 || at - lastDiff > MERGE) {
                    close();
                    start = at;
                }
                lastDiff = at;
            }
        }

        private void close() {
            if (start >= 0) add(start, lastDiff + 1);
            start = -1;
        }

        private void add(long from, long to) {
            rangeCount++;
            if (ranges.size() < keep) ranges.add(new long[] {from, to});
        }

        double percent() {
            long max = Math.max(sizeA, sizeB);
            return max == 0 ? 0 : 100.0 * changed / max;
        }

        private static void readFully(FileChannel ch, ByteBuffer b, long off, int n) throws IOException {
            b.clear().limit(n);
            while (b.hasRemaining()) {
                if (ch.read(b, off + b.position()) < 0) throw new IOException("a version got shorter while being read");
            }
        }
    }

    private Path path(String which) throws IOException {
        ManifestLine row = VersionsFolder.pick(dir, which);
        Path p = dir.resolve(String.valueOf(row.path()));
        if (!Files.isRegularFile(p)) throw new UserError(ExitCodes.VERSIONS_LOST, p + " is missing (see: versionfs verify " + dir + ")");
        return p;
    }

    /** The first MiB: enough to tell text from binary. */
    private static byte[] head(Path p) throws IOException {
        try (InputStream in = Files.newInputStream(p)) {
            return in.readNBytes(1 << 20);
        }
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
