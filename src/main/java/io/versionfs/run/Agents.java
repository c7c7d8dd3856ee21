package io.versionfs.run;

import io.versionfs.fs.FuseSupport;
import io.versionfs.text.Json;
import io.versionfs.text.Log;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The batch node's side of a job on several nodes: one {@code versionfs agent} per other node, as
 * one Slurm step of the same job ({@code srun --overlap ... &}, as GekkoFS starts its daemons),
 * each under a small shell wrapper that, should the agent die, unmounts and puts a symlink to the
 * live folder at the mount point (the job goes on there, unversioned) and says so in a gone file.
 * Start waits for every node's ready file (with a deadline), then a probe step checks that the
 * target resolves on every node; stop is {@code scancel --signal=TERM JOB.STEP}, bounded.
 */
final class Agents {
    /** What became of the agent of one node. */
    enum NodeState { STARTING, READY, MISSING, NOT_VISIBLE, GONE, DONE }

    /** Why agents cannot be started here (one line), or the agents, not started yet. */
    record Decision(Agents agents, String whyNot) {}

    static final long READY_MILLIS = Long.getLong("versionfs.agentReadyMillis", 60_000);
    static final long STOP_MILLIS = Long.getLong("versionfs.agentStopMillis", 30_000);

    private final SlurmContext ctx;
    private final String jobId, batchNode, launcher;
    private final List<String> others;
    private final Map<String, NodeState> state = new LinkedHashMap<>();
    private final Map<String, String> said = new LinkedHashMap<>();
    private AgentPlan plan;
    private Process srun;
    private String step;

    private Agents(SlurmContext ctx, String launcher, List<String> others) {
        this.ctx = ctx;
        this.jobId = ctx.jobId();
        this.batchNode = ctx.nodeName();
        this.launcher = launcher;
        this.others = others;
        others.forEach(n -> state.put(n, NodeState.STARTING));
    }

    /** Agents for this allocation, or why not (no node list, no srun, this node not in the list...). */
    static Decision decide(SlurmContext ctx) {
        if (ctx.jobId() == null) return new Decision(null, "no SLURM_JOB_ID");
        if (FuseSupport.onPath("srun").isEmpty()) return new Decision(null, "srun is not on PATH");
        List<String> nodes = ctx.nodeNames();
        if (nodes.size() < 2) return new Decision(null, "the node list (SLURM_JOB_NODELIST) could not be read");
        String me = ctx.nodeName();
        if (!nodes.contains(me)) return new Decision(null, "this node (" + me + ") is not in the node list " + nodes);
        Optional<String> launcher = launcher();
        if (launcher.isEmpty()) return new Decision(null, "the versionfs launcher is not known (not on PATH)");
        List<String> others = nodes.stream().filter(n -> !n.equals(me)).toList();
        return new Decision(new Agents(ctx, launcher.get(), others), null);
    }

    private static Optional<String> launcher() {
        String p = System.getProperty("versionfs.launcher");
        if (p != null && Files.isExecutable(Path.of(p))) return Optional.of(p);
        return FuseSupport.onPath("versionfs").map(Path::toString);
    }

    String batchNode() {
        return batchNode;
    }

    /**
     * The folder for the mount points: the same path on every node, unique per job and user
     * ({@code BASE/versionfs-USER.JOBID}, BASE = --mount-dir, $SLURM_TMPDIR, $TMPDIR or /tmp), so
     * the symlink at the target resolves into each node's own mount.
     */
    Path mountDir(Path mountDir) throws IOException {
        Path base = mountDir != null ? mountDir : ctx.scratchDirs().stream().findFirst().orElse(Path.of("/tmp"));
        Path dir = base.toAbsolutePath().resolve("versionfs-" + ctx.user() + "." + jobId);
        if (!Files.isDirectory(dir)) {
            Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        }
        return dir;
    }

    /** Starts the agents, waits until each is ready or the deadline passed, then probes every node. */
    void start(List<AgentPlan.Serve> serves, Path control) throws IOException {
        plan = new AgentPlan(jobId, batchNode, others, control, serves);
        plan.write();
        Log.info("this job spans " + (others.size() + 1) + " nodes: starting one versionfs agent on each other node ("
                + String.join(", ", others) + ")");
        srun = new ProcessBuilder(agentCommand()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectOutput(ProcessBuilder.Redirect.INHERIT).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        awaitReady(System.currentTimeMillis() + READY_MILLIS);
        probe(serves);
    }

    private List<String> agentCommand() {
        List<String> cmd = new ArrayList<>(List.of("srun", "--overlap", "--ntasks-per-node=1", "-N", Integer.toString(others.size()),
                "--exclude=" + batchNode, "--mem=0", "-c", "1", "-J", "versionfs-agent", "--kill-on-bad-exit=0",
                "sh", "-c", WRAPPER, launcher, plan.control().toString(),
                FuseSupport.fusermount().map(Path::toString).orElse("fusermount")));
        for (AgentPlan.Serve s : plan.serves()) cmd.addAll(List.of(s.mountPoint().toString(), s.liveDir().toString()));
        return cmd;
    }

    /**
     * The agent in the background of a shell that forwards TERM/INT to it; if the agent ends
     * with an error (killed, or could not mount), the mount points become symlinks to the live
     * folders (the job's opens there go straight to the live file, unversioned), a gone file says
     * so, and the shell waits for the stop to remove them. $0 launcher, $1 control folder,
     * $2 fusermount, then mount point and live folder pairs.
     */
    static final String WRAPPER = """
            ctl=$1; fm=$2; shift 2
            n=${SLURMD_NODENAME:-$(hostname)}
            stopping=0
            trap 'stopping=1; kill -TERM $p 2>/dev/null' TERM INT HUP
            "$0" agent --control "$ctl" & p=$!
            wait $p; rc=$?
            while kill -0 $p 2>/dev/null; do wait $p; rc=$?; done
            [ $rc -eq 0 ] && exit 0
            mps=""
            while [ $# -ge 2 ]; do
              mkdir -p -m 700 "$(dirname "$1")"; "$fm" -u -z "$1" 2>/dev/null; rmdir "$1" 2>/dev/null
              [ -e "$1" ] || ln -s "$2" "$1"; mps="$mps $1"; shift 2
            done
            printf '{"node":"%s","exit":%d,"at":"%s"}\\n' "$n" $rc "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$ctl/gone.$n.tmp"
            mv -f "$ctl/gone.$n.tmp" "$ctl/gone.$n"
            trap 'stopping=1' TERM INT HUP
            while [ $stopping = 0 ]; do sleep 1; done
            for mp in $mps; do [ -L "$mp" ] && rm -f "$mp"; rmdir "$(dirname "$mp")" 2>/dev/null; done
            exit 0
            """;

    /** Until every node is ready (or gave up), the agents' step ended, or the deadline. */
    private void awaitReady(long deadline) {
        while (System.currentTimeMillis() < deadline && srun.isAlive() && state.containsValue(NodeState.STARTING)) {
            look();
            sleep(100);
        }
        look();
        for (Map.Entry<String, NodeState> e : state.entrySet()) {
            if (e.getValue() == NodeState.READY) continue;
            e.setValue(NodeState.MISSING);
            String why = srun.isAlive() ? "did not come up within " + READY_MILLIS / 1000 + " s" : "did not start (srun exit "
                    + srun.exitValue() + ", see above)";
            say(e.getKey(), "the versionfs agent on " + e.getKey() + " " + why + ": the job runs on, but closes of the"
                    + " target on " + e.getKey() + " are not versioned");
        }
    }

    /** Reads the nodes' ready and gone files. */
    private void look() {
        for (Map.Entry<String, NodeState> e : state.entrySet()) {
            String n = e.getKey();
            if (e.getValue() == NodeState.STARTING && Files.exists(plan.file(AgentPlan.State.READY, n))) {
                e.setValue(NodeState.READY);
                if (step == null) step = stepOf(plan.file(AgentPlan.State.READY, n));
            }
            if (Files.exists(plan.file(AgentPlan.State.GONE, n))) e.setValue(NodeState.GONE);
        }
    }

    private static String stepOf(Path ready) {
        try {
            Object s = Json.parseObject(Files.readString(ready)).get("step");
            return s == null ? null : s.toString();
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /**
     * A new step on every node checks that each target resolves there: a node whose steps each
     * get their own mount namespace (the private-tmpdir SPANK plugin) cannot see a mount made by
     * another step, the agent's or the batch script's.
     */
    private void probe(List<AgentPlan.Serve> serves) {
        List<String> cmd = new ArrayList<>(List.of("srun", "--overlap", "--ntasks-per-node=1", "-N", Integer.toString(others.size() + 1),
                "--mem=0", "-c", "1", "-J", "versionfs-probe", "sh", "-c",
                "n=${SLURMD_NODENAME:-$(hostname)}; for t; do [ -e \"$t\" ] || echo \"NOT-VISIBLE $n $t\"; done", "sh"));
        serves.forEach(s -> cmd.add(s.target().toString()));
        String out = run(cmd, 60);
        if (out == null) {
            Log.warn("could not check that the target resolves on every node (srun of the probe step failed or hung)");
            return;
        }
        out.lines().filter(l -> l.startsWith("NOT-VISIBLE ")).forEach(this::notVisible);
    }

    private void notVisible(String line) {
        String[] f = line.split(" ", 3);
        if (f.length < 3) return;
        String node = f[1];
        if (state.get(node) == NodeState.READY) state.put(node, NodeState.NOT_VISIBLE);
        say(node, "on " + node + " " + f[2] + " leads nowhere from a new job step although versionfs mounted it there:"
                + " each job step on that node has its own mount namespace (likely the private-tmpdir SPANK plugin), so"
                + " closes there are not versioned and the job's opens there fail. Fix: ask the admins for"
                + " job_container/tmpfs (one namespace per job) instead, or keep the target's writers on " + batchNode);
    }

    private void say(String node, String msg) {
        said.put(node, msg);
        Log.warn(msg);
    }

    /**
     * Stops every agent (TERM to the step; KILL after the deadline) and waits for the step to end:
     * their last versions are written and their mounts gone when this returns.
     */
    void stop() {
        if (srun == null) return;
        if (srun.isAlive()) {
            if (step != null) run(List.of("scancel", "--signal=TERM", jobId + "." + step), 30);
            else srun.destroy();
            if (!waitFor(srun, STOP_MILLIS)) {
                Log.warn("the versionfs agents did not stop within " + STOP_MILLIS / 1000 + " s: killing them");
                if (step != null) run(List.of("scancel", jobId + "." + step), 30);
                srun.destroyForcibly();
                waitFor(srun, 10_000);
            }
        }
        look();
        for (Map.Entry<String, NodeState> e : state.entrySet()) {
            if (e.getValue() == NodeState.READY && Files.exists(plan.file(AgentPlan.State.DONE, e.getKey()))) e.setValue(NodeState.DONE);
            if (e.getValue() == NodeState.GONE) said.put(e.getKey(), gone(e.getKey()));
        }
        removeControl();
    }

    /** The control folder goes once every agent ended (the nodes' manifests stay for the merge). */
    private void removeControl() {
        try (var files = Files.list(plan.control())) {
            for (Path p : files.toList()) Files.deleteIfExists(p);
            Files.deleteIfExists(plan.control());
        } catch (IOException e) {
            Log.debug("leaving " + plan.control() + ": " + e.getMessage());
        }
    }

    /** One line per node whose closes were not (all) versioned, for the summary. */
    List<String> problems() {
        List<String> out = new ArrayList<>();
        for (String n : state.keySet()) if (said.containsKey(n)) out.add(said.get(n));
        return out;
    }

    private String gone(String node) {
        String exit = "?", at = "?";
        try {
            Map<String, Object> g = Json.parseObject(Files.readString(plan.file(AgentPlan.State.GONE, node)));
            exit = String.valueOf(g.get("exit"));
            at = String.valueOf(g.get("at"));
        } catch (IOException | RuntimeException e) {
            // said without the details
        }
        return "the versionfs agent on " + node + " ended early (exit " + exit + ", at " + at + "): closes of the target on "
                + node + " after that were not versioned (the job there wrote the live file directly)";
    }

    /** The agents' states, by node (for tests and the summary). */
    Map<String, NodeState> states() {
        return Map.copyOf(state);
    }

    /** Runs a short Slurm command; its output, or null if it failed or hung. */
    private static String run(List<String> cmd, int seconds) {
        try {
            List<String> bounded = new ArrayList<>(List.of("timeout", "-k", "5", Integer.toString(seconds)));
            bounded.addAll(cmd);
            Process p = new ProcessBuilder(bounded).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectErrorStream(true).start();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(seconds + 10L, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return null;
            }
            if (p.exitValue() != 0) Log.debug(String.join(" ", cmd) + ": exit " + p.exitValue() + ": " + new String(out, StandardCharsets.UTF_8).strip());
            return p.exitValue() == 0 ? new String(out, StandardCharsets.UTF_8) : null;
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    private static boolean waitFor(Process p, long millis) {
        try {
            return p.waitFor(millis, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
