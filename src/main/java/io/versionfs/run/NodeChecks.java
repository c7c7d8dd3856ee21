package io.versionfs.run;

import io.versionfs.errors.ExitCodes;
import io.versionfs.fs.FuseSupport;
import io.versionfs.text.Json;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * {@code versionfs doctor} inside an allocation of several nodes: the same checks on every node,
 * as one Slurm step ({@code srun --overlap -N N --ntasks-per-node=1 versionfs doctor --this-node
 * --json}), each node's answer read back as one JSON line. What a run needs on the other nodes is
 * what its agents need there: FUSE, a test mount in the same folder, the versions filesystem.
 */
final class NodeChecks {
    /** One node's answer: its exit code and its checks that did not pass (FAIL and WARN). */
    record NodeResult(String node, int exit, List<Doctor.Check> problems) {
        boolean ok() {
            return exit == ExitCodes.OK;
        }
    }

    /** The step's deadline: each node's test mount has 40 s; the JVMs start in parallel. */
    static final long STEP_SECONDS = Long.getLong("versionfs.doctorNodesSeconds", 150);

    private NodeChecks() {}

    /** Every node's answer, in the allocation's node order; a node that did not answer is a FAIL. */
    static List<NodeResult> run(SlurmContext ctx, Path versionsDir, Path mountDir) {
        List<String> nodes = ctx.nodeNames();
        Optional<String> launcher = Agents.launcher();
        if (FuseSupport.onPath("srun").isEmpty() || launcher.isEmpty()) {
            String why = launcher.isEmpty() ? "the versionfs launcher is not on PATH" : "srun is not on PATH";
            return List.of(unanswered(nodes.isEmpty() ? "other nodes" : String.join(",", nodes), why));
        }
        List<String> cmd = new ArrayList<>(List.of("timeout", "-k", "5", Long.toString(STEP_SECONDS), "srun", "--overlap",
                "--ntasks-per-node=1", "-N", Integer.toString(ctx.nodes()), "--mem=0", "-c", "1", "-J", "versionfs-doctor",
                launcher.get(), "doctor", "--this-node", "--json"));
        if (versionsDir != null) cmd.addAll(List.of("--versions-dir", versionsDir.toAbsolutePath().toString()));
        if (mountDir != null) cmd.addAll(List.of("--mount-dir", mountDir.toAbsolutePath().toString()));
        Map<String, NodeResult> byNode = new LinkedHashMap<>();
        nodes.forEach(n -> byNode.put(n, null));
        Asked a = ask(cmd, byNode);
        // srun passes the tasks' output on in pieces: two nodes answering at once can cut each
        // other's line (both unreadable). Asked once more, they rarely finish together again.
        if (a.rc() != 124 && byNode.containsValue(null)) a = ask(cmd, byNode);
        List<NodeResult> out = new ArrayList<>();
        for (Map.Entry<String, NodeResult> e : byNode.entrySet()) {
            out.add(e.getValue() != null ? e.getValue() : unanswered(e.getKey(), (a.rc() == 124 ? "no answer within "
                    + STEP_SECONDS + " s" : "no answer (srun exit " + a.rc() + ")") + (a.said() == null ? "" : ": " + a.said())));
        }
        return out;
    }

    /** What one doctor step ended with: srun's exit code and its last error line (null: none). */
    private record Asked(int rc, String said) {}

    /** Runs the doctor step once; each node's answer (a JSON line on srun's stdout) goes into {@code byNode}. */
    private static Asked ask(List<String> cmd, Map<String, NodeResult> byNode) {
        String said;
        int rc;
        try {
            Process p = io.versionfs.sys.Spawns.start(new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))));
            // stderr (libfuse's lines, srun's errors) on a thread, so a full pipe never stalls the step
            StepOutput err = StepOutput.pump(p.getErrorStream(), System.err);
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(STEP_SECONDS + 15, TimeUnit.SECONDS)) p.destroyForcibly();
            err.drain(2_000);
            rc = p.isAlive() ? -1 : p.exitValue();
            said = err.lastError();
            for (String line : out.lines().filter(l -> l.startsWith("{")).toList()) {
                NodeResult r = parse(line);
                if (r != null) byNode.put(r.node(), r);
            }
        } catch (IOException e) {
            rc = -1;
            said = e.getMessage();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            rc = -1;
            said = "interrupted";
        }
        return new Asked(rc, said);
    }

    private static NodeResult unanswered(String node, String why) {
        return new NodeResult(node, ExitCodes.STEP_REFUSED, List.of(new Doctor.Check("doctor step", Doctor.Status.FAIL,
                "could not run the checks there: " + why, "run 'srun --overlap -N1 -w NODE versionfs doctor' to see what"
                + " fails on that node", ExitCodes.STEP_REFUSED)));
    }

    @SuppressWarnings("unchecked")
    private static NodeResult parse(String line) {
        try {
            Map<String, Object> m = Json.parseObject(line);
            String node = (String) m.get("node");
            if (node == null) return null;
            List<Doctor.Check> problems = new ArrayList<>();
            for (Object o : (List<Object>) m.get("checks")) {
                Map<String, Object> c = (Map<String, Object>) o;
                Doctor.Status s = Doctor.Status.valueOf((String) c.get("status"));
                if (s != Doctor.Status.FAIL && s != Doctor.Status.WARN) continue;
                Object exit = c.get("exit");
                problems.add(new Doctor.Check((String) c.get("check"), s, (String) c.get("result"), (String) c.get("fix"),
                        exit instanceof Number n ? n.intValue() : 0));
            }
            return new NodeResult(node, ((Number) m.get("exit")).intValue(), problems);
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The one row of the doctor's table for a node: ok, or its first failure (else warning) and fix. */
    static Doctor.Check row(NodeResult r) {
        String name = "node " + r.node();
        Doctor.Check first = r.problems().stream().filter(c -> c.status() == Doctor.Status.FAIL).findFirst()
                .orElse(r.problems().isEmpty() ? null : r.problems().get(0));
        if (r.ok() && first == null) return new Doctor.Check(name, Doctor.Status.OK, "every check passed there", null, 0);
        if (r.ok()) return new Doctor.Check(name, Doctor.Status.WARN, first.name() + ": " + first.result(), first.fix(), 0);
        String more = r.problems().stream().filter(c -> c.status() == Doctor.Status.FAIL).count() > 1 ? " (and more: see --json)" : "";
        return new Doctor.Check(name, Doctor.Status.FAIL, first == null ? "exit " + r.exit() : first.name() + ": " + first.result()
                + more, first == null ? null : first.fix(), r.exit());
    }
}
