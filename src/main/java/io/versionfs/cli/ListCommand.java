package io.versionfs.cli;

import io.versionfs.text.Bytes;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.capture.LatestRows;
import io.versionfs.capture.Manifest;
import io.versionfs.capture.ManifestLine;
import io.versionfs.report.JsonArrayOut;
import io.versionfs.report.Out;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code versionfs list DIR}: the versions recorded in a versions folder's manifest, as a table
 * (or JSON lines), like restic's {@code snapshots}. Works on folders of finished or running jobs.
 */
@Command(name = "list", mixinStandardHelpOptions = true,
        description = {"List the versions recorded in versions folders (their manifest.jsonl).",
                "Example: versionfs list job.gbw.versions"})
final class ListCommand implements Callable<Integer> {
    @Parameters(paramLabel = "DIR", arity = "1..*", description = "Versions folder(s), e.g. job.gbw.versions")
    List<Path> dirs;

    @Option(names = "--json", description = "Print the manifest's lines (versions and events) as one JSON array on stdout"
            + " (with --follow: one JSON object per line, as they come).")
    boolean json;

    @Option(names = {"-f", "--follow"}, description = {"Keep printing versions as they are captured (like tail -f); ends",
            "when the run using the folder ends (or at once if none does). One folder."})
    boolean follow;

    @Override
    public Integer call() throws IOException {
        if (follow) return follow();
        for (Path d : dirs) VersionsFolder.require(d); // all first: a refusal never comes after half an output
        // Streamed (constant memory): a folder of a million versions is listed in the launcher's small heap.
        try (Out out = new Out()) {
            JsonArrayOut array = json ? JsonArrayOut.begin(out) : null;
            for (Path d : dirs) {
                if (!json) {
                    out.println(d.toAbsolutePath().normalize() + ":");
                    out.printf("  %-14s  %6s  %-23s  %10s  %-8s  %-7s  %-10s  %s%n",
                            "file", "#", "time (UTC)", "size", "sha256", "status", "reason", "process");
                }
                LatestRows.each(d, skip -> warnSkipped(out, d, skip), r -> {
                    if (json) array.addJson(r.toJson());
                    else printRow(out, r);
                });
            }
            if (json) array.end();
            else for (Path d : dirs) out.println(storage(d));
        }
        return ExitCodes.OK;
    }

    /** Said on stderr, in its place among the lines printed so far. */
    private static void warnSkipped(Out out, Path d, String skip) {
        out.flush();
        System.err.println("versionfs: warning: " + d.resolve(Manifest.FILE_NAME) + " " + skip + ": skipped");
    }

    private static void printRow(Out out, ManifestLine r) {
        if (r.event() != null || r.version() == null) {
            out.printf("  %-14s  %6s  %-23s  event: %s%n", str(r.file(), r.from()), "", when(r), eventText(r));
            return;
        }
        String proc = r.pid() != null && r.pid() > 0 ? r.pid() + " " + firstWord(str(r.cmdline(), "")) : "-";
        out.printf("  %-14s  %6s  %-23s  %10s  %-8s  %-7s  %-10s  %s%n", str(r.file(), ""),
                r.version(), when(r), size(r), sha(r), r.same_as() != null ? "same:" + r.same_as() : str(r.status(), ""),
                str(r.reason(), ""), proc + (r.error() != null ? "  (" + r.error() + ")" : ""));
    }

    /**
     * --follow: prints every manifest line as it is appended (whole lines only), and ends when
     * no run has the folder open any more (the run's marker .versionfs/open is gone).
     */
    private int follow() throws IOException {
        if (dirs.size() != 1) throw new UserError(ExitCodes.USAGE, "--follow takes one versions folder");
        Path d = dirs.get(0), m = d.resolve(Manifest.FILE_NAME), open = d.resolve(".versionfs").resolve("open");
        if (!Files.isDirectory(d)) throw new UserError(ExitCodes.VERSIONS_DIR, d + " is not a versions folder");
        long pos = 0;
        if (!json) System.out.printf("  %-14s  %6s  %-23s  %10s  %-8s  %-7s  %s%n", "file", "#", "time (UTC)", "size", "sha256", "status", "reason");
        // Bytes are fed as they come; the reader keeps a partial last line until its newline.
        Manifest.LineReader lines = new Manifest.LineReader(1, r -> printFollowed(m, r));
        boolean last = false;
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(1 << 20);
        while (true) {
            boolean running = Files.exists(open);
            if (Files.exists(m)) {
                try (var ch = java.nio.channels.FileChannel.open(m, java.nio.file.StandardOpenOption.READ)) {
                    for (int n; (n = ch.read(b.clear(), pos)) > 0; pos += n) lines.feed(b.array(), 0, n);
                }
            }
            System.out.flush();
            if (last) {
                lines.end(); // a last line cut short (the run was killed mid-append): said, like list
                System.out.flush();
                return ExitCodes.OK;
            }
            if (!running) last = true; // one more read after the run ended: its last lines
            try {
                Thread.sleep(running ? 200 : 50);
            } catch (InterruptedException e) {
                return ExitCodes.OK;
            }
        }
    }

    private void printFollowed(Path manifest, Manifest.Parsed p) {
        ManifestLine r = p.line();
        if (r == null) {
            System.err.println("versionfs: warning: " + manifest + " line " + p.lineNo() + ": " + p.skipped() + ": skipped");
            return;
        }
        if (json) {
            System.out.println(r.toJson());
            return;
        }
        if (r.event() != null || r.version() == null) {
            System.out.printf("  %-14s  %6s  %-23s  event: %s%n", str(r.file(), r.from()), "", when(r), eventText(r));
            return;
        }
        System.out.printf("  %-14s  %6s  %-23s  %10s  %-8s  %-7s  %s%n", str(r.file(), ""), r.version(), when(r), size(r),
                sha(r), str(r.status(), ""), str(r.reason(), ""));
    }

    private static String when(ManifestLine r) {
        return str(r.time(), "").replace('T', ' ').replace("Z", "");
    }

    private static String size(ManifestLine r) {
        return r.size() != null && r.size() >= 0 ? Bytes.of(r.size()) : "-";
    }

    private static String sha(ManifestLine r) {
        return r.sha256() != null ? r.sha256().substring(0, Math.min(8, r.sha256().length())) : "-";
    }

    /** What the version files take: content, on disk (identical versions and shared extents counted once), free space. */
    static String storage(Path d) {
        String u = io.versionfs.capture.Usage.of(d, d.toAbsolutePath().normalize(), 0);
        return u != null ? u : d + ": cannot be listed";
    }

    private static String eventText(ManifestLine r) {
        StringBuilder sb = new StringBuilder(str(r.event(), ""));
        if (r.from() != null) sb.append(" from=").append(r.from());
        if (r.to() != null) sb.append(" to=").append(r.to());
        if (r.detail() != null) sb.append(" detail=").append(r.detail());
        return sb.toString();
    }

    private static String firstWord(String cmd) {
        String first = cmd.split(" ", 2)[0];
        return first.substring(first.lastIndexOf('/') + 1);
    }

    private static String str(Object o, Object fallback) {
        return o == null ? String.valueOf(fallback) : o.toString();
    }
}
