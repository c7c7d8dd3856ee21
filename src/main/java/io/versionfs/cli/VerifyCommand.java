package io.versionfs.cli;

import io.versionfs.capture.Manifest;
import io.versionfs.capture.ManifestLine;
import io.versionfs.errors.ExitCodes;
import io.versionfs.report.Json;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
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
        List<Object> problems = new ArrayList<>();
        long checked = 0, bytes = 0;
        for (Path d : dirs) {
            VersionsFolder.require(d);
            Manifest.Contents contents = Manifest.readChecked(d);
            for (String skip : contents.skipped()) problems.add(problem(d, "unreadable-line", null, skip));
            Set<String> listed = new HashSet<>();
            for (ManifestLine r : Manifest.latest(contents.rows())) {
                if (r.path() != null) listed.add(r.path());
                if (!"saved".equals(r.status())) continue;
                String path = String.valueOf(r.path());
                Path f = d.resolve(path);
                checked++;
                if (!Files.isRegularFile(f)) {
                    problems.add(problem(d, "missing", path, "version " + r.version() + " of " + r.file()));
                    continue;
                }
                String want = r.sha256();
                String got = sha256(f);
                bytes += Files.size(f);
                if (want == null) {
                    problems.add(problem(d, "unhashed", path, "the manifest has no sha256 for it (a run killed while hashing)"));
                } else if (!want.equals(got)) {
                    problems.add(problem(d, "damaged", path, "sha256 " + got + ", the manifest says " + want));
                }
            }
            try (var ds = Files.newDirectoryStream(d)) {
                for (Path p : ds) {
                    String n = p.getFileName().toString();
                    if (io.versionfs.capture.VersionNaming.isVersionFileName(n) && Files.isRegularFile(p) && !listed.contains(n)) {
                        problems.add(problem(d, "unlisted", n, "a version file the manifest does not account for"));
                    }
                }
            }
        }
        if (json) {
            System.out.println(Json.write(problems));
        } else {
            for (Object o : problems) {
                @SuppressWarnings("unchecked") Map<String, Object> m = ((Json.Obj) o).asMap();
                System.out.println(m.get("problem") + ": " + m.get("dir") + (m.get("path") != null ? "/" + m.get("path") : "")
                        + " (" + m.get("detail") + ")");
            }
            System.out.println((problems.isEmpty() ? "intact: " : problems.size() + " problem(s); ") + checked
                    + " version(s) checked, " + io.versionfs.report.Summary.bytes(bytes) + " read");
        }
        return problems.isEmpty() ? ExitCodes.OK : DAMAGED;
    }

    private static Json.Obj problem(Path dir, String what, String path, String detail) {
        return Json.obj().put("dir", dir.toString()).put("problem", what).put("path", path).put("detail", detail);
    }

    static String sha256(Path f) throws IOException {
        try (InputStream in = Files.newInputStream(f)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 20];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
