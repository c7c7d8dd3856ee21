package io.versionfs.report;

import io.versionfs.text.Bytes;
import io.versionfs.text.Json;
import io.versionfs.capture.Version;
import io.versionfs.capture.VersionLog;
import io.versionfs.sys.ProcessCpu;

import java.io.PrintStream;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The end-of-job report: a header (command, status, wall time, Slurm ids), then per file its
 * versions folder and a table with one row per version. Human form on stderr, the same content as
 * one JSON document for {@code --json} on stdout.
 */
public final class Summary {
    public record FileReport(String file, String versionsDir, String manifest, VersionLog.Snapshot versions,
                             List<String> warnings) {
        static final VersionLog.Snapshot NONE = new VersionLog.Snapshot(List.of(), List.of(), 0, 0, List.of());

        public FileReport {
            if (versions == null) versions = NONE;
        }
    }

    private final Map<String, Object> header = new LinkedHashMap<>();
    private final List<FileReport> files = new ArrayList<>();
    private final List<String> warnings = new ArrayList<>();
    /** A job on several nodes: what each node's versionfs did (JSON only; the human form has a note per node). */
    private final List<Object> nodes = new ArrayList<>();
    private final Instant start;
    /** versionfs's own CPU time (the JVM, not the job); null where /proc could not be read. */
    private ProcessCpu.Usage cpu;
    /** Files that matched a target but could not be versioned at all. */
    private int unversionable;
    /** Targets whose saves could only be noticed after the fact: versioned by copy, writes between may be missed. */
    private int noticedAfterTheFact;

    public Summary(Instant start) {
        this.start = start;
    }

    public Summary put(String key, Object value) {
        header.put(key, value);
        return this;
    }

    public Summary add(FileReport f) {
        files.add(f);
        return this;
    }

    /** versionfs's own CPU time so far: a user who counts core-hours sees what the wrapper cost. */
    public Summary cpu(ProcessCpu.Usage usage) {
        cpu = usage;
        return this;
    }

    /** One node of a job on several nodes, for {@code --json}'s "nodes". */
    public Summary node(Map<String, Object> n) {
        nodes.add(n);
        return this;
    }

    /**
     * The run's targets that are a loss beyond lost versions (each said in its file's lines):
     * {@code unversionable} could not be versioned at all, {@code noticedAfterTheFact} had their
     * saves noticed only after the fact. For --json and --strict.
     */
    public Summary uncounted(int unversionable, int noticedAfterTheFact) {
        this.unversionable = unversionable;
        this.noticedAfterTheFact = noticedAfterTheFact;
        return this;
    }

    /** Whether anything was lost: a version, a target not versioned, or saves noticed only after the fact. */
    public boolean anyLoss() {
        return totalLost() > 0 || unversionable > 0 || noticedAfterTheFact > 0;
    }

    public Summary warn(String w) {
        warnings.add(w);
        return this;
    }

    public long totalVersions() {
        return files.stream().mapToLong(f -> f.versions.saved()).sum();
    }

    /** Versions attempted (saved or lost) over all files. */
    public long totalAttempted() {
        return files.stream().mapToLong(f -> f.versions.total()).sum();
    }

    public long totalLost() {
        return files.stream().mapToLong(f -> f.versions.lost()).sum();
    }

    public void printHuman(PrintStream out) {
        out.println("versionfs: ---- summary ----");
        for (Map.Entry<String, Object> e : header.entrySet()) {
            if (e.getValue() != null) out.printf("versionfs: %-9s %s%n", e.getKey() + ":", e.getValue());
        }
        if (cpu != null) out.printf("versionfs: %-9s %s%n", "cpu:", humanCpu(cpu));
        for (FileReport f : files) {
            VersionLog.Snapshot vs = f.versions;
            long saved = vs.saved(), lost = vs.lost();
            out.printf("versionfs: %s: %d version%s%s in %s%n", f.file, saved, saved == 1 ? "" : "s",
                    lost > 0 ? " (" + lost + " LOST)" : "", f.versionsDir);
            if (vs.total() > 0) {
                out.printf("  %6s  %9s  %10s  %-8s  %-28s  %s%n", "#", "after", "size", "sha256", "process", "reason");
                for (Version v : vs.head()) out.println(row(v));
                if (vs.elided() > 0) {
                    out.printf("  %6s  ... %d more versions, all in %s ...%n", "", vs.elided(), f.manifest);
                }
                for (Version v : vs.tail()) out.println(row(v));
                for (Version v : vs.lostOnes()) {
                    if (!vs.head().contains(v) && !vs.tail().contains(v)) out.println(row(v));
                }
            }
            for (String w : f.warnings) {
                // Lines that report what was done (a followed rename) are notes, not warnings.
                out.println(w.startsWith("followed") || w.startsWith("note: ") ? "versionfs: " + w : "versionfs: WARNING: " + w);
            }
        }
        for (String w : warnings) out.println("versionfs: WARNING: " + w);
        out.flush();
    }

    private String row(Version v) {
        String after = elapsed(Duration.between(start, v.time));
        String size = v.lost() && v.size < 0 ? "-" : Bytes.of(v.size);
        String sha = v.sha256() == null ? (v.lost() ? "LOST" : "?") : v.sha256().substring(0, 8);
        String proc = v.pid > 0 ? v.pid + " " + shortCmd(v.command) : "-";
        if (proc.length() > 28) proc = proc.substring(0, 27) + "…";
        String reason = v.lost() ? v.reason + " LOST: " + v.error : v.reason;
        return String.format("  %6d  %9s  %10s  %-8s  %-28s  %s", v.number, after, size, sha, proc, reason);
    }

    static String shortCmd(String cmd) {
        if (cmd == null || cmd.isEmpty()) return "";
        cmd = cmd.replaceAll("\\s+", " ").trim();
        String first = cmd.split(" ", 2)[0];
        String rest = cmd.length() > first.length() ? cmd.substring(first.length()) : "";
        int slash = first.lastIndexOf('/');
        return (slash >= 0 ? first.substring(slash + 1) : first) + rest;
    }

    public static String elapsed(Duration d) {
        long ms = Math.max(0, d.toMillis());
        if (ms < 60_000) return String.format(java.util.Locale.ROOT, "+%.2fs", ms / 1000.0);
        if (ms < 3_600_000) return String.format("+%dm%02ds", ms / 60_000, (ms / 1000) % 60);
        return String.format("+%dh%02dm", ms / 3_600_000, (ms / 60_000) % 60);
    }

    /** "0.95s by versionfs itself (user 0.81s, sys 0.14s; jit 0.70s, main 0.20s, fuse 0.05s)": the three largest groups. */
    static String humanCpu(ProcessCpu.Usage u) {
        StringBuilder b = new StringBuilder(seconds(u.totalMillis()) + " by versionfs itself (user " + seconds(u.userMillis())
                + ", sys " + seconds(u.sysMillis()));
        String sep = "; ";
        List<Map.Entry<ProcessCpu.Group, Long>> top = new ArrayList<>(u.byGroup().entrySet());
        top.sort(Map.Entry.<ProcessCpu.Group, Long>comparingByValue().reversed());
        for (Map.Entry<ProcessCpu.Group, Long> e : top.subList(0, Math.min(3, top.size()))) {
            if (e.getValue() == 0) break;
            b.append(sep).append(e.getKey().key).append(' ').append(seconds(e.getValue()));
            sep = ", ";
        }
        return b.append(')').toString();
    }

    private static String seconds(long millis) {
        return String.format(java.util.Locale.ROOT, "%.2fs", millis / 1000.0);
    }

    /** {"user_ms":..,"sys_ms":..,"total_ms":..,"threads_ms":{"main":..,"jit":..,...}}. */
    private static Json.Obj cpuJson(ProcessCpu.Usage u) {
        Json.Obj threads = Json.obj();
        u.byGroup().forEach((g, ms) -> threads.put(g.key, ms));
        return Json.obj().put("user_ms", u.userMillis()).put("sys_ms", u.sysMillis()).put("total_ms", u.totalMillis())
                .put("threads_ms", threads);
    }

    public String toJson() {
        Json.Obj o = Json.obj();
        for (Map.Entry<String, Object> e : header.entrySet()) o.put(e.getKey(), e.getValue());
        if (cpu != null) o.put("daemon_cpu", cpuJson(cpu));
        List<Object> fs = new ArrayList<>();
        for (FileReport f : files) {
            List<Object> vs = new ArrayList<>();
            for (Version v : f.versions.shown()) {
                Map<String, Object> m = v.toLine().build().toMap();
                m.put("after_ms", Duration.between(start, v.time).toMillis());
                vs.add(m);
            }
            List<Object> lostOnes = new ArrayList<>();
            for (Version v : f.versions.lostOnes()) lostOnes.add(v.toLine().build().toMap());
            fs.add(Json.obj().put("file", f.file).put("versions_dir", f.versionsDir).put("manifest", f.manifest)
                    .put("saved", f.versions.saved()).put("lost", f.versions.lost())
                    .put("elided", f.versions.elided())
                    .put("warnings", f.warnings).put("versions", vs).put("lost_versions", lostOnes));
        }
        o.put("files", fs);
        o.put("unversionable", unversionable);
        o.put("noticed_after_the_fact", noticedAfterTheFact);
        if (!nodes.isEmpty()) o.put("nodes", nodes);
        o.put("warnings", warnings);
        return o.toString();
    }
}
