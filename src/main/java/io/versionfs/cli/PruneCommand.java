package io.versionfs.cli;

import io.versionfs.text.Bytes;
import io.versionfs.capture.LatestRows;
import io.versionfs.capture.ManifestMerge;
import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.Manifest;
import io.versionfs.capture.Retention;
import io.versionfs.capture.VersionStore;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Json;
import io.versionfs.report.JsonArrayOut;
import io.versionfs.report.Out;
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
        for (Path d : dirs) VersionsFolder.require(d); // all first: a refusal never comes after a folder was pruned
        // Removals are printed as they are done (and the JSON array element by element), not held.
        try (Out out = new Out()) {
            JsonArrayOut array = json ? JsonArrayOut.begin(out) : null;
            long[] total = new long[2]; // versions, bytes
            for (Path d : dirs) {
                RunLock lock = Files.isDirectory(d.resolve(VersionStore.HIDDEN)) && !dryRun
                        ? RunLock.acquire(d.resolve(VersionStore.HIDDEN).resolve("lock"), "the versions folder " + d) : null;
                // A writer first merges node manifests a killed job on several nodes left (the readers show them
                // merged) and clears the number placeholders a job whose agent did not end cleanly kept.
                if (lock != null) ManifestMerge.recoverLeftovers(d);
                try (Manifest manifest = dryRun ? null : new Manifest(d)) {
                    for (Map.Entry<String, List<ManifestLine>> e : savedBySeries(d).entrySet()) {
                        for (Removal dec : decide(e.getValue(), p)) {
                            ManifestLine row = e.getValue().get(dec.index());
                            if (manifest != null) remove(d, row, dec.why(), manifest);
                            total[0]++;
                            total[1] += dec.entry().size();
                            report(out, array, d, row, dec);
                        }
                    }
                } finally {
                    if (lock != null) lock.close();
                }
            }
            if (json) array.end();
            else out.println((dryRun ? "would remove " : "removed ") + total[0] + " version(s), " + Bytes.of(total[1])
                    + (dryRun ? " would be freed (nothing was changed)" : " freed"));
        }
        return ExitCodes.OK;
    }

    /** The saved versions of each series (latest status), oldest first. */
    private static Map<String, List<ManifestLine>> savedBySeries(Path d) throws IOException {
        Map<String, List<ManifestLine>> bySeries = new LinkedHashMap<>();
        LatestRows.each(d, skipped -> {}, r -> {
            if (r.saved()) bySeries.computeIfAbsent(String.valueOf(r.file()), k -> new ArrayList<>()).add(r);
        });
        for (List<ManifestLine> rows : bySeries.values()) rows.sort((a, b) -> Long.compare(a.version(), b.version()));
        return bySeries;
    }

    /** A version the rules do not keep: its row's index in the series, and why. */
    private record Removal(int index, Retention.Entry entry, String why) {}

    private static List<Removal> decide(List<ManifestLine> rows, Retention.Policy p) {
        List<Retention.Entry> entries = new ArrayList<>(rows.size());
        // Decisions name versions by number: found again by number, not by a scan of the series
        // for each one (that was quadratic: 100k versions spent a minute there).
        Map<Long, Integer> index = new HashMap<>();
        for (ManifestLine r : rows) {
            Instant t = r.instant() != null ? r.instant() : Instant.EPOCH;
            index.put(r.version(), entries.size());
            entries.add(new Retention.Entry(r.version(), r.size() != null ? r.size() : 0, t));
        }
        List<Removal> out = new ArrayList<>();
        for (Retention.Decision dec : Retention.toPrune(entries, p)) {
            out.add(new Removal(index.get(dec.entry().number()), dec.entry(), dec.why()));
        }
        return out;
    }

    /** The file goes, and a line says why (the manifest is append-only: this line supersedes the saved one). */
    private static void remove(Path d, ManifestLine row, String why, Manifest manifest) throws IOException {
        Files.deleteIfExists(d.resolve(String.valueOf(row.path())));
        manifest.append(row.toBuilder().path(null).status("pruned").pruned(why).build());
    }

    private void report(Out out, JsonArrayOut array, Path d, ManifestLine row, Removal dec) {
        String path = String.valueOf(row.path());
        if (array != null) {
            array.add(Json.obj().put("dir", d.toString()).put("file", String.valueOf(row.file())).put("version", row.version())
                    .put("path", path).put("size", dec.entry().size()).put("why", dec.why()).put("removed", !dryRun));
        } else {
            out.printf("%s  %s  version %d  %s  %s: %s%n", dryRun ? "would remove" : "removed",
                    d.resolve(path), row.version(), Bytes.of(dec.entry().size()), row.file(), dec.why());
        }
    }
}
