package io.versionfs.cli;

import io.versionfs.sys.Sha256;
import io.versionfs.text.Bytes;
import io.versionfs.capture.LatestRows;
import io.versionfs.capture.ListedNames;
import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.NodeNumbering;
import io.versionfs.errors.ExitCodes;
import io.versionfs.text.Json;
import io.versionfs.report.JsonArrayOut;
import io.versionfs.report.Out;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code versionfs verify DIR...}: re-reads every saved version and checks it against the sha256
 * its manifest line recorded (like restic's {@code check --read-data}); reports versions that are
 * missing or damaged, and version files the manifest does not account for. Exit 0 only when all
 * is intact. Safe while a job runs (it only reads).
 */
@Command(name = "verify", mixinStandardHelpOptions = true,
        description = {"Re-hash every version against its manifest: missing, damaged, unlisted files are reported.",
                "Exit 0 only when everything is intact (then it is safe to archive or delete the job's scratch).",
                "Example: versionfs verify job.gbw.versions"})
final class VerifyCommand implements Callable<Integer> {
    /** Exit code when something is missing or damaged: a versions folder that cannot be trusted. */
    static final int DAMAGED = ExitCodes.VERSIONS_LOST;

    @Parameters(paramLabel = "DIR", arity = "1..*", description = "Versions folder(s), e.g. job.gbw.versions")
    List<Path> dirs;

    @Option(names = "--json", description = "Print one JSON object per problem, and a total, on stdout.")
    boolean json;

    @Override
    public Integer call() throws IOException {
        for (Path d : dirs) VersionsFolder.require(d); // all first: a refusal never comes after half an output
        // Streamed (constant memory): each problem is printed as it is found, a row at a time is read.
        try (Out out = new Out()) {
            Report report = new Report(out, json);
            for (Path d : dirs) check(d, report);
            report.end();
            if (!json) {
                out.println((report.problems == 0 ? "intact: " : report.problems + " problem(s); ") + report.versions
                        + " version(s) checked, " + Bytes.of(report.bytes) + " read");
            }
            return report.problems == 0 ? ExitCodes.OK : DAMAGED;
        }
    }

    private static void check(Path d, Report report) throws IOException {
        ListedNames listed = new ListedNames();
        LatestRows.each(d, skip -> report.problem(d, "unreadable-line", null, skip), r -> {
            if (r.path() != null) listed.add(r.path());
            if (!"saved".equals(r.status())) return;
            try {
                checkVersion(d, r, report);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        try (var ds = Files.newDirectoryStream(d)) {
            for (Path p : ds) {
                String n = p.getFileName().toString();
                if (io.versionfs.capture.VersionNaming.isVersionFileName(n) && Files.isRegularFile(p) && !listed.contains(n)
                        && !NodeNumbering.isTombstone(d, p)) { // a lost version's number, held on a job of several nodes
                    report.problem(d, "unlisted", n, "a version file the manifest does not account for");
                }
            }
        }
    }

    private static void checkVersion(Path d, ManifestLine r, Report report) throws IOException {
        String path = String.valueOf(r.path());
        Path f = d.resolve(path);
        report.versions++;
        if (!Files.isRegularFile(f)) {
            report.problem(d, "missing", path, "version " + r.version() + " of " + r.file());
            return;
        }
        String want = r.sha256();
        String got = sha256(f);
        report.bytes += Files.size(f);
        if (want == null) {
            report.problem(d, "unhashed", path, "the manifest has no sha256 for it (a run killed while hashing)");
        } else if (!want.equals(got)) {
            report.problem(d, "damaged", path, "sha256 " + got + ", the manifest says " + want);
        }
    }

    /** What was checked, and the problems, printed as they are found: a line each, or the elements of one JSON array. */
    private static final class Report {
        final Out out;
        final JsonArrayOut array;
        long problems, versions, bytes;

        Report(Out out, boolean json) {
            this.out = out;
            this.array = json ? JsonArrayOut.begin(out) : null;
        }

        void problem(Path dir, String what, String path, String detail) {
            problems++;
            if (array != null) array.add(asJson(dir, what, path, detail));
            else out.println(what + ": " + dir + (path != null ? "/" + path : "") + " (" + detail + ")");
        }

        void end() {
            if (array != null) array.end();
        }
    }

    private static Json.Obj asJson(Path dir, String what, String path, String detail) {
        return Json.obj().put("dir", dir.toString()).put("problem", what).put("path", path).put("detail", detail);
    }

    static String sha256(Path f) throws IOException {
        return Sha256.of(f);
    }
}
