package io.versionfs.cli;

import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.Manifest;
import io.versionfs.capture.Retention;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.report.Json;
import io.versionfs.report.Summary;
import io.versionfs.run.RunLock;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code versionfs prune DIR...}: the keep rules of {@code run}, applied after the fact to every
 * version in a versions folder (all runs), like restic's {@code forget --prune}. Each removed
 * version gets a manifest line saying why; {@code --dry-run} only says what would go.
 */
@Command(name = "prune", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Remove versions that the keep rules do not keep (each one recorded in the manifest).",
                "A version is kept if any rule keeps it; --max-size then thins the oldest; the newest is always kept.",
                "Refused (exit 209) while a run uses the folder.",
                "",
                "Example: versionfs prune --keep-last 10 --keep-every 50 --dry-run job.gbw.versions"})
final class PruneCommand implements Callable<Integer> {
    @Parameters(paramLabel = "DIR", arity = "1..*", description = "Versions folder(s), e.g. job.gbw.versions")
    List<Path> dirs;

    @Mixin
    KeepRuleOptions keep = new KeepRuleOptions();

    @Option(names = "--dry-run", description = "Only print what would be removed and how many bytes it frees.")
    boolean dryRun;

    @Option(names = "--json", description = "Print the removed (or, with --dry-run, removable) versions as JSON on stdout.")
    boolean json;

    @Override
    public Integer call() throws IOException {
        Retention.Policy p = keep.policy();
        if (p.keepsAll()) {
            throw new UserError(ExitCodes.USAGE, "no keep rule given: prune keeps everything without one"
                    + " (e.g. --keep-last 10, --max-size 50G)");
        }
        List<Object> out = new ArrayList<>();
        long freed = 0, count = 0;
        for (Path d : dirs) {
            VersionsFolder.require(d);
            RunLock lock = Files.isDirectory(d.resolve(VersionStore.HIDDEN)) && !dryRun
                    ? RunLock.acquire(d.resolve(VersionStore.HIDDEN).resolve("lock"), "the versions folder " + d) : null;
            try (Manifest manifest = dryRun ? null : new Manifest(d)) {
                Map<String, List<ManifestLine>> bySeries = new LinkedHashMap<>();
                for (ManifestLine r : Manifest.read(d)) {
                    if (r.saved()) bySeries.computeIfAbsent(String.valueOf(r.file()), k -> new ArrayList<>()).add(r);
                }
                for (Map.Entry<String, List<ManifestLine>> e : bySeries.entrySet()) {
                    List<ManifestLine> rows = new ArrayList<>(e.getValue());
                    rows.sort((a, b) -> Long.compare(a.version(), b.version()));
                    List<Retention.Entry> entries = new ArrayList<>();
                    // Decisions name versions by number: found again by number, not by a scan of
                    // the series for each one (that was quadratic: 100k versions took minutes).
                    Map<Long, ManifestLine> byNumber = new HashMap<>();
                    for (ManifestLine r : rows) {
                        Instant t = r.instant() != null ? r.instant() : Instant.EPOCH;
                        entries.add(new Retention.Entry(r.version(), r.size() != null ? r.size() : 0, t));
                        byNumber.put(r.version(), r);
                    }
                    for (Retention.Decision dec : Retention.toPrune(entries, p)) {
                        ManifestLine row = byNumber.get(dec.entry().number());
                        String path = String.valueOf(row.path());
                        freed += dec.entry().size();
                        count++;
                        if (!dryRun) {
                            Files.deleteIfExists(d.resolve(path));
                            manifest.append(row.toBuilder().path(null).status("pruned").pruned(dec.why()).build());
                        }
                        out.add(Json.obj().put("dir", d.toString()).put("file", e.getKey()).put("version", dec.entry().number())
                                .put("path", path).put("size", dec.entry().size()).put("why", dec.why()).put("removed", !dryRun));
                        if (!json) {
                            System.out.printf("%s  %s  version %d  %s  %s: %s%n", dryRun ? "would remove" : "removed",
                                    d.resolve(path), dec.entry().number(), Summary.bytes(dec.entry().size()), e.getKey(), dec.why());
                        }
                    }
                }
            } finally {
                if (lock != null) lock.close();
            }
        }
        if (json) System.out.println(Json.write(out));
        else System.out.println((dryRun ? "would remove " : "removed ") + count + " version(s), " + Summary.bytes(freed)
                + (dryRun ? " would be freed (nothing was changed)" : " freed"));
        return ExitCodes.OK;
    }
}
