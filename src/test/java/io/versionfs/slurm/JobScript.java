package io.versionfs.slurm;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.regex.Pattern;

/**
 * A batch script built from one of the user templates in {@code slurm/}, changed only where a
 * test must: the program on the {@code exec versionfs run} line (ORCA becomes examples/blackbox.sh)
 * and a few {@code #SBATCH} directives (resources this one-node cluster has, shorter limits).
 * Everything else - comments, {@code set} options, the exec line itself - is the template as users
 * copy it, so the tests exercise what the templates really do.
 */
final class JobScript {
    private final String templateName;
    private String text;

    private JobScript(String templateName, String text) {
        this.templateName = templateName;
        this.text = text;
    }

    static JobScript fromTemplate(Path projectRoot, String name) {
        Path p = projectRoot.resolve("slurm").resolve(name);
        try {
            JobScript s = new JobScript(name, Files.readString(p));
            s.execLine(); // fail early if the template lost its exec line
            return s;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read template " + p, e);
        }
    }

    /** Replaces {@code literal}, which must occur exactly once (so template drift fails loudly). */
    JobScript replace(String literal, String replacement) {
        int at = text.indexOf(literal);
        if (at < 0 || text.indexOf(literal, at + 1) >= 0) {
            throw new IllegalStateException("template " + templateName + ": expected exactly one '" + literal + "'");
        }
        text = text.substring(0, at) + replacement + text.substring(at + literal.length());
        return this;
    }

    /** Sets {@code #SBATCH option=value}: replaces the template's line for it, or adds one. */
    JobScript directive(String option, String value) {
        String line = "#SBATCH " + option + "=" + value;
        List<String> lines = new ArrayList<>(text.lines().toList());
        int lastDirective = -1;
        boolean replaced = false;
        for (int i = 0; i < lines.size(); i++) {
            if (isDirective(lines.get(i), option)) {
                lines.set(i, line);
                replaced = true;
            }
            if (lines.get(i).startsWith("#SBATCH")) lastDirective = i;
        }
        if (!replaced) {
            if (lastDirective < 0) throw new IllegalStateException("template " + templateName + " has no #SBATCH lines");
            lines.add(lastDirective + 1, line);
        }
        text = String.join("\n", lines) + "\n";
        return this;
    }

    /** Removes the template's {@code #SBATCH option} line (which must exist). */
    JobScript withoutDirective(String option) {
        List<String> lines = new ArrayList<>(text.lines().toList());
        if (!lines.removeIf(l -> isDirective(l, option))) {
            throw new IllegalStateException("template " + templateName + " has no #SBATCH " + option);
        }
        text = String.join("\n", lines) + "\n";
        return this;
    }

    private static boolean isDirective(String line, String option) {
        return Pattern.compile("^#SBATCH\\s+" + Pattern.quote(option) + "(=|\\s|$).*").matcher(line).matches();
    }

    /** The one line that starts {@code exec versionfs run}. */
    String execLine() {
        List<String> exec = text.lines().filter(l -> l.startsWith("exec versionfs run ")).toList();
        if (exec.size() != 1) {
            throw new IllegalStateException("template " + templateName + ": expected one 'exec versionfs run' line, found "
                    + exec.size());
        }
        return exec.get(0);
    }

    String text() {
        return text;
    }

    /** A job that ended: its id, its final record, its Slurm output ({@code job-ID.out} in its folder; empty if none). */
    record Ended(String id, LocalSlurm.JobInfo end, String out) {}

    /**
     * The one way the cluster tests run a job to its end: {@code sbatch --parsable
     * --output=job-%j.out OPTIONS [SCRIPT]} in {@code dir} with exactly {@code env}; once it runs,
     * {@code whileRunning} (if not null) gets its id; then a bounded wait for its end, and its output.
     *
     * @param script the batch script, or null when {@code options} has {@code --wrap}
     */
    static Ended submitAndWait(LocalSlurm slurm, Path dir, Map<String, String> env, Path script, Duration wait,
                               Consumer<String> whileRunning, String... options) {
        List<String> cmd = new ArrayList<>(List.of("sbatch", "--parsable", "--output=job-%j.out"));
        cmd.addAll(List.of(options));
        if (script != null) cmd.add(script.toString());
        LocalSlurm.Result r = LocalSlurm.run(cmd, dir, env, true, Duration.ofSeconds(60));
        if (r.rc() != 0) throw new AssertionError("sbatch failed (exit " + r.rc() + "): " + r.err() + r.out());
        String id = r.out().strip().split(";")[0];
        if (whileRunning != null) {
            slurm.waitRunning(id, Duration.ofSeconds(60));
            whileRunning.accept(id);
        }
        LocalSlurm.JobInfo end = slurm.waitFinal(id, wait).get(0);
        String out;
        try {
            out = Files.readString(dir.resolve("job-" + id + ".out"));
        } catch (IOException e) {
            out = "";
        }
        return new Ended(id, end, out);
    }

    Path writeTo(Path dir, String fileName) {
        Path p = dir.resolve(fileName);
        try {
            Files.writeString(p, text);
            Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return p;
    }
}
