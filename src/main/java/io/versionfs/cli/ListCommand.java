package io.versionfs.cli;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.capture.Manifest;
import io.versionfs.report.Json;
import io.versionfs.report.Summary;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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
        List<Object> all = new ArrayList<>();
        for (Path d : dirs) {
            VersionsFolder.require(d);
            Manifest.Contents contents = Manifest.readChecked(d);
            for (String skip : contents.skipped()) {
                System.err.println("versionfs: warning: " + d.resolve(Manifest.FILE_NAME) + " " + skip + ": skipped");
            }
            List<Map<String, Object>> rows = Manifest.latest(contents.rows());
            if (json) {
                all.addAll(rows);
                continue;
            }
            System.out.println(d.toAbsolutePath().normalize() + ":");
            System.out.printf("  %-14s  %6s  %-23s  %10s  %-8s  %-7s  %-10s  %s%n",
                    "file", "#", "time (UTC)", "size", "sha256", "status", "reason", "process");
            for (Map<String, Object> r : rows) {
                if (r.containsKey("event")) {
                    System.out.printf("  %-14s  %6s  %-23s  event: %s%n", str(r.get("file"), r.get("from")), "",
                            str(r.get("time"), "").replace('T', ' ').replace("Z", ""), eventText(r));
                    continue;
                }
                Object size = r.get("size");
                String sha = r.get("sha256") instanceof String s ? s.substring(0, Math.min(8, s.length())) : "-";
                String proc = r.get("pid") instanceof Long pid && pid > 0 ? pid + " " + firstWord(str(r.get("cmdline"), "")) : "-";
                System.out.printf("  %-14s  %6s  %-23s  %10s  %-8s  %-7s  %-10s  %s%n", str(r.get("file"), ""),
                        r.get("version"), str(r.get("time"), "").replace('T', ' ').replace("Z", ""),
                        size instanceof Long n && n >= 0 ? Summary.bytes(n) : "-", sha,
                        r.get("same_as") != null ? "same:" + r.get("same_as") : str(r.get("status"), ""),
                        str(r.get("reason"), ""), proc + (r.get("error") != null ? "  (" + r.get("error") + ")" : ""));
            }
        }
        if (json) System.out.println(Json.write(all));
        else for (Path d : dirs) System.out.println(storage(d));
        return ExitCodes.OK;
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
        boolean last = false;
        while (true) {
            boolean running = Files.exists(open);
            if (Files.exists(m)) {
                try (var ch = java.nio.channels.FileChannel.open(m, java.nio.file.StandardOpenOption.READ)) {
                    long size = ch.size();
                    if (size > pos) {
                        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate((int) Math.min(size - pos, 1 << 24));
                        ch.read(b, pos);
                        String text = new String(b.array(), 0, b.position(), java.nio.charset.StandardCharsets.UTF_8);
                        int end = text.lastIndexOf('\n');
                        if (end >= 0) {
                            for (String line : text.substring(0, end).split("\n")) printFollowed(line);
                            pos += text.substring(0, end + 1).getBytes(java.nio.charset.StandardCharsets.UTF_8).length;
                        }
                    }
                }
            }
            System.out.flush();
            if (last) return ExitCodes.OK;
            if (!running) last = true; // one more read after the run ended: its last lines
            try {
                Thread.sleep(running ? 200 : 50);
            } catch (InterruptedException e) {
                return ExitCodes.OK;
            }
        }
    }

    private void printFollowed(String line) {
        Map<String, Object> r;
        try {
            r = Json.parseObject(line);
        } catch (RuntimeException e) {
            return; // a line cut short: skipped, as list does
        }
        if (r == null) return;
        if (json) {
            System.out.println(line);
            return;
        }
        if (r.containsKey("event")) {
            System.out.printf("  %-14s  %6s  %-23s  event: %s%n", str(r.get("file"), r.get("from")), "",
                    str(r.get("time"), "").replace('T', ' ').replace("Z", ""), eventText(r));
            return;
        }
        String sha = r.get("sha256") instanceof String s ? s.substring(0, Math.min(8, s.length())) : "-";
        System.out.printf("  %-14s  %6s  %-23s  %10s  %-8s  %-7s  %s%n", str(r.get("file"), ""), r.get("version"),
                str(r.get("time"), "").replace('T', ' ').replace("Z", ""),
                r.get("size") instanceof Long n && n >= 0 ? Summary.bytes(n) : "-", sha, str(r.get("status"), ""),
                str(r.get("reason"), ""));
    }

    /** What the version files take: content, on disk (identical versions and shared extents counted once), free space. */
    static String storage(Path d) {
        String u = io.versionfs.capture.VersionStore.usage(d, d.toAbsolutePath().normalize(), 0);
        return u != null ? u : d + ": cannot be listed";
    }

    private static String eventText(Map<String, Object> r) {
        StringBuilder sb = new StringBuilder(str(r.get("event"), ""));
        for (String k : List.of("from", "to", "detail")) if (r.get(k) != null) sb.append(' ').append(k).append('=').append(r.get(k));
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
