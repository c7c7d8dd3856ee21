package io.versionfs.cli;

import io.versionfs.errors.ExitCodes;
import io.versionfs.text.Json;
import io.versionfs.run.Doctor;
import io.versionfs.run.SlurmContext;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code versionfs doctor}: can a run work here, as this user? What a user sends to their admins. */
@Command(name = "doctor", mixinStandardHelpOptions = true, sortOptions = false,
        description = {
                "Check, as you, everything 'versionfs run' needs on this node, and say what to fix.",
                "",
                "Run it where your jobs run: on a compute node (srun --pty versionfs doctor, or as a",
                "line of a batch script), in the folder the job runs in. It checks:",
                "  java                 Java 17 or newer",
                "  /dev/fuse            exists, readable and writable by you",
                "  fusermount           present under the name libfuse2 runs (fusermount), setuid root",
                "  libfuse2             libfuse.so.2 loads (jnr-fuse needs it)",
                "  test mount           a real mount of an empty folder, with run's own code and options,",
                "                       in the folder run would use ($SLURM_TMPDIR, $TMPDIR or /tmp, or",
                "                       --mount-dir); a file is written and read through it, then it is",
                "                       unmounted and removed (40 s deadline; nothing is left behind)",
                "  versions filesystem  type, node-local or not; hard links (O(1) versions), reflinks",
                "                       (cheap copies), free space: of --versions-dir, or of this folder",
                "  slurm                the job, the mount folder, the number of nodes (a mount exists only",
                "                       on the node that made it)",
                "  node NAME            inside a job on several nodes: all the checks above on every node of",
                "                       the job (one step: srun --overlap, one task per node), one line per",
                "                       node: ok, or what fails there and the fix",
                "",
                "Output: a table on stdout (check, status, result, fix), or one JSON document with --json",
                "(with 'nodes': each node's exit code and its failed or warned checks);",
                "diagnostics (e.g. what libfuse printed) on stderr. If a check fails, send the whole",
                "output to your admins: each FAIL line names what they have to change.",
                "",
                "Exit: 0 if a run would work here (warnings allowed), else the code a run would exit with:",
                "  204 FUSE not available (/dev/fuse, fusermount, libfuse2)   205 the test mount failed",
                "  203 versions folder not writable   208 no space   200 Java older than 17",
                "",
                "Examples:",
                "  versionfs doctor",
                "  srun -N1 --pty versionfs doctor --versions-dir /project/me/versions",
                "  versionfs doctor --json | jq '.checks[] | select(.status == \"FAIL\")'",
        })
final class DoctorCommand implements Callable<Integer> {
    @Option(names = "--versions-dir", paramLabel = "DIR",
            description = "Check the filesystem of this versions folder (default: the current folder, where TARGET.versions goes).")
    Path versionsDir;

    @Option(names = "--mount-dir", paramLabel = "DIR",
            description = "Make the test mount here, as 'run --mount-dir DIR' would (default: $SLURM_TMPDIR, $TMPDIR, /tmp).")
    Path mountDir;

    @Option(names = "--json", description = "Print one JSON document instead of the table.")
    boolean json;

    /** Set on the per-node doctors a doctor in a job on several nodes starts: check this node only. */
    @Option(names = "--this-node", hidden = true)
    boolean thisNode;

    @Override
    public Integer call() {
        SlurmContext ctx = SlurmContext.current();
        Doctor doctor = new Doctor(versionsDir, mountDir, ctx, !thisNode);
        List<Doctor.Check> checks = doctor.run();
        int code = Doctor.exitCode(checks);
        PrintStream out = System.out;
        if (json) {
            Json.Obj doc = Json.obj().put("ok", code == 0).put("exit", code).put("user", System.getProperty("user.name"))
                    .put("host", host()).put("node", ctx.nodeName()).put("checks", rows(checks));
            if (!doctor.nodes().isEmpty()) {
                List<Object> nodes = new ArrayList<>();
                for (Doctor.NodeAnswer n : doctor.nodes()) {
                    nodes.add(Json.obj().put("node", n.node()).put("ok", n.exit() == 0).put("exit", n.exit())
                            .put("problems", rows(n.problems())));
                }
                doc.put("nodes", nodes);
            }
            out.println(doc);
        } else {
            out.print(table(checks, code));
        }
        out.flush();
        // A node's doctor step answers in its JSON; exiting 0 keeps srun from treating the first
        // node with a problem as a failed task while the others still write their answers.
        return thisNode ? 0 : code;
    }

    private static List<Object> rows(List<Doctor.Check> checks) {
        List<Object> rows = new ArrayList<>();
        for (Doctor.Check c : checks) {
            rows.add(Json.obj().put("check", c.name()).put("status", c.status().name()).put("result", c.result())
                    .put("fix", c.fix()).put("exit", c.status() == Doctor.Status.FAIL ? c.code() : null));
        }
        return rows;
    }

    static String table(List<Doctor.Check> checks, int code) {
        int w = "check".length();
        for (Doctor.Check c : checks) w = Math.max(w, c.name().length());
        StringBuilder sb = new StringBuilder();
        sb.append("versionfs doctor: user ").append(System.getProperty("user.name")).append(" on ").append(host()).append('\n');
        String fmt = "%-" + w + "s  %-6s %s%n";
        sb.append(String.format(fmt, "check", "status", "result / fix"));
        for (Doctor.Check c : checks) {
            sb.append(String.format(fmt, c.name(), c.status().name().toLowerCase(java.util.Locale.ROOT).equals("fail") ? "FAIL"
                    : c.status() == Doctor.Status.WARN ? "WARN" : c.status().name().toLowerCase(java.util.Locale.ROOT), c.result()));
            if (c.fix() != null) sb.append(String.format(fmt, "", "", "fix: " + c.fix()));
        }
        sb.append(code == 0 ? "verdict: a versionfs run would work here (exit 0)\n"
                : "verdict: a versionfs run would fail here with exit " + code + " (" + ExitCodes.describe(code)
                  + "): fix the FAIL lines (send this output to your admins)\n");
        return sb.toString();
    }

    private static String host() {
        return java.util.Objects.requireNonNullElse(SlurmContext.host(), "?");
    }
}
