package io.versionfs.run;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
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
 * target resolves on every node; a node that fails either ends the run before the job starts
 * (one line, exit 210-212: the job's ranks there could neither open nor version the target).
 * Stop is a stop file in the control folder that the agents poll (their step then ends quietly,
 * nothing in the job's output); {@code scancel --signal=TERM JOB.STEP} only after a deadline.
 */
final class Agents {
    /** What became of the agent of one node. */
    enum NodeState { STARTING, READY, MISSING, NOT_VISIBLE, GONE, DONE }

    /** Why agents cannot be started here (one line), or the agents, not started yet. */
    record Decision(Agents agents, String whyNot) {}

    /** The variable that sets how long the agents get to say they are ready, in seconds. */
    static final String DEADLINE_VAR = "VERSIONFS_AGENT_DEADLINE";
    static final long STOP_MILLIS = Long.getLong("versionfs.agentStopMillis", 30_000);
    /**
     * How long the agents get to see the stop file before they are signalled: they look every
     * 200 ms, but NFS may cache a folder's "no such file" for up to acdirmax (60 s by default).
     */
    static final long STOP_FILE_MILLIS = Long.getLong("versionfs.agentStopFileMillis", 10_000);

    private final SlurmContext ctx;
    private final String jobId, batchNode, launcher;
    private final long readyMillis;
    private final List<String> others;
    private final Map<String, NodeState> state = new LinkedHashMap<>();
    private final Map<String, String> said = new LinkedHashMap<>();
    private AgentPlan plan;
    private Process srun;
    private StepOutput srunErr;
    private String step;

    private Agents(SlurmContext ctx, String launcher, List<String> others, long readyMillis) {
        this.ctx = ctx;
        this.jobId = ctx.jobId();
        this.batchNode = ctx.nodeName();
        this.launcher = launcher;
        this.others = others;
        this.readyMillis = readyMillis;
        others.forEach(n -> state.put(n, NodeState.STARTING));
    }

    /**
     * Agents for this allocation, or why not (no node list, this node not in the list...). In an
     * allocation (its node list set) without srun no agent can start: that is an error (exit 212),
     * since the job's processes on the other nodes could not open the target.
     */
    static Decision decide(SlurmContext ctx) {
        if (ctx.jobId() == null) return new Decision(null, "no SLURM_JOB_ID");
        long readyMillis = readyMillis(ctx);
        if (ctx.nodeList() == null) return new Decision(null, "SLURM_JOB_NODELIST is not set");
        if (FuseSupport.onPath("srun").isEmpty()) {
            throw new UserError(ExitCodes.STEP_REFUSED, "this job spans " + ctx.nodes() + " nodes but srun is not on"
                    + " PATH, so versionfs cannot start its agents on the other nodes (their processes could not open"
                    + " the target); the job was not started and the target is unchanged. Fix: put Slurm's commands on"
                    + " PATH in the batch script (module load slurm), or keep the job on one node (#SBATCH --nodes=1)");
        }
        List<String> nodes = ctx.nodeNames();
        if (nodes.size() < 2) return new Decision(null, "the node list (SLURM_JOB_NODELIST) could not be read");
        String me = ctx.nodeName();
        if (!nodes.contains(me)) return new Decision(null, "this node (" + me + ") is not in the node list " + nodes);
        Optional<String> launcher = launcher();
        if (launcher.isEmpty()) return new Decision(null, "the versionfs launcher is not known (not on PATH)");
        List<String> others = nodes.stream().filter(n -> !n.equals(me)).toList();
        return new Decision(new Agents(ctx, launcher.get(), others, readyMillis), null);
    }

    /** The agents' deadline: $VERSIONFS_AGENT_DEADLINE seconds, else 60 s. */
    static long readyMillis(SlurmContext ctx) {
        String v = ctx.get(DEADLINE_VAR);
        if (v == null) return Long.getLong("versionfs.agentReadyMillis", 60_000);
        try {
            long s = Long.parseLong(v.trim());
            if (s >= 1 && s <= 86_400) return s * 1000;
        } catch (NumberFormatException e) {
            // said below
        }
        throw new UserError(ExitCodes.USAGE, DEADLINE_VAR + " must be a number of seconds between 1 and 86400, not '"
                + v + "' (how long the versionfs agents on the other nodes get to start; unset it for 60)");
    }

    static Optional<String> launcher() {
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
        clearStale();
        long t0 = System.nanoTime();
        srun = io.versionfs.sys.Spawns.start(new ProcessBuilder(agentCommand()).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectOutput(ProcessBuilder.Redirect.INHERIT));
        srunErr = StepOutput.pump(srun.getErrorStream(), System.err);
        try {
            awaitReady(System.currentTimeMillis() + readyMillis);
        } catch (UserError e) {
            srunErr.discard();
            throw e;
        }
        srunErr.release();
        probe(serves);
        // Said once they are up: a run that cannot start them says only its one error line.
        Log.info("this job spans " + (others.size() + 1) + " nodes: one versionfs agent on each other node ("
                + String.join(", ", others) + "), up and checked in " + (System.nanoTime() - t0) / 100_000_000 / 10.0 + " s");
    }

    /**
     * A run earlier in the same job (a second 'versionfs run' line of the batch script) removes its
     * control files at its end; should that have failed, its stop file would end the new agents at
     * once and its ready files would pass for theirs.
     */
    private void clearStale() throws IOException {
        Files.deleteIfExists(plan.stopFile());
        for (String n : others) {
            for (AgentPlan.State k : AgentPlan.State.values()) Files.deleteIfExists(plan.file(k, n));
        }
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
     * so, and the shell waits for the stop (the stop file, or TERM) to remove them. Its waits are
     * silenced: sh reports a killed child as "Killed" on stderr, which is the job's output.
     * $0 launcher, $1 control folder, $2 fusermount, then mount point and live folder pairs.
     */
    static final String WRAPPER = """
            ctl=$1; fm=$2; shift 2
            n=${SLURMD_NODENAME:-$(hostname)}
            stopping=0
            trap 'stopping=1; kill -TERM $p 2>/dev/null' TERM INT HUP
            "$0" agent --control "$ctl" & p=$!
            { wait $p; rc=$?; } 2>/dev/null
            while kill -0 $p 2>/dev/null; do { wait $p; rc=$?; } 2>/dev/null; done
            [ $rc -eq 0 ] && exit 0
            mps=""
            while [ $# -ge 2 ]; do
              mkdir -p -m 700 "$(dirname "$1")"; "$fm" -u -z "$1" 2>/dev/null; rmdir "$1" 2>/dev/null
              [ -e "$1" ] || ln -s "$2" "$1"; mps="$mps $1"; shift 2
            done
            printf '{"node":"%s","exit":%d,"at":"%s"}\\n' "$n" $rc "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$ctl/gone.$n.tmp"
            mv -f "$ctl/gone.$n.tmp" "$ctl/gone.$n"
            trap 'stopping=1' TERM INT HUP
            while [ $stopping = 0 ] && [ ! -e "$ctl/stop" ]; do sleep 0.5; done
            for mp in $mps; do [ -L "$mp" ] && rm -f "$mp"; rmdir "$(dirname "$mp")" 2>/dev/null; done
            exit 0
            """;

    /**
     * Until every node is ready, one gave up, the agents' step ended, or the deadline; a node not
     * ready then ends the run before the job starts (its ranks could not open the target).
     */
    private void awaitReady(long deadline) {
        while (System.currentTimeMillis() < deadline && srun.isAlive() && state.containsValue(NodeState.STARTING)
                && !state.containsValue(NodeState.GONE)) {
            look();
            sleep(100);
        }
        look();
        List<String> gone = nodesIn(NodeState.GONE), starting = nodesIn(NodeState.STARTING);
        if (gone.isEmpty() && starting.isEmpty()) return;
        starting.forEach(n -> state.put(n, NodeState.MISSING));
        if (!srun.isAlive()) srunErr.drain(2_000);
        String said = srunErr.lastError();
        String quote = said == null ? "" : ": " + said;
        String notStarted = "; the job was not started and " + targets() + " unchanged";
        if (!gone.isEmpty()) {
            throw new UserError(ExitCodes.AGENT_NOT_READY, "the versionfs agent on " + String.join(", ", gone)
                    + " ended before it was ready (exit " + goneExit(gone.get(0)) + quote + ")" + notStarted
                    + ". Fix: run 'versionfs doctor' inside the allocation (it checks every node) and fix what it says there");
        }
        if (!srun.isAlive() && nodesIn(NodeState.READY).isEmpty()) {
            throw new UserError(ExitCodes.STEP_REFUSED, "Slurm refused the step that starts the versionfs agents on "
                    + String.join(", ", starting) + " (srun exit " + srun.exitValue() + quote + ")" + notStarted
                    + ". Fix: the step asks for 1 CPU, --mem=0 and --overlap on each other node; remove the SLURM_*/SRUN_*"
                    + " variables the batch script exports to srun, or ask the admins which step limit refused it");
        }
        String why = srun.isAlive()
                ? " did not say it was ready within " + readyMillis / 1000 + " s (" + DEADLINE_VAR + "): it hangs there,"
                  + " e.g. on a filesystem that does not answer (the versionfs install, the versions folder) or on FUSE"
                : " did not start (the agents' step ended with exit " + srun.exitValue() + quote + ")";
        throw new UserError(ExitCodes.AGENT_NOT_READY, "the versionfs agent on " + String.join(", ", starting) + why
                + notStarted + ". Fix: run 'versionfs doctor' inside the allocation (it checks every node); if the node is"
                + " only slow, raise " + DEADLINE_VAR + " (seconds)");
    }

    private List<String> nodesIn(NodeState s) {
        return state.entrySet().stream().filter(e -> e.getValue() == s).map(Map.Entry::getKey).toList();
    }

    /** The targets for a message: "job.gbw is" or "a, b are". */
    private String targets() {
        List<String> t = plan.serves().stream().map(v -> v.target().toString()).toList();
        return String.join(", ", t) + (t.size() == 1 ? " is" : " are");
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
     * another step, the agent's or the batch script's. Such a node ends the run before the job.
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
        List<String> hidden = new ArrayList<>();
        for (String l : out.lines().filter(l -> l.startsWith("NOT-VISIBLE ")).toList()) {
            String[] f = l.split(" ", 3);
            if (f.length < 3 || hidden.contains(f[1])) continue;
            hidden.add(f[1]);
            if (state.get(f[1]) == NodeState.READY) state.put(f[1], NodeState.NOT_VISIBLE);
        }
        if (hidden.isEmpty()) return;
        hidden.sort(null);
        throw new UserError(ExitCodes.NODE_CANNOT_SEE_MOUNT, "on " + String.join(", ", hidden) + " a new job step does"
                + " not see versionfs's mount (" + serves.get(0).target() + " leads nowhere there): each job step on "
                + (hidden.size() == 1 ? "that node" : "those nodes") + " gets its own mount namespace (a SPANK plugin such"
                + " as private-tmpdir), so the job's steps there could neither open nor version the target; the job was"
                + " not started and " + targets() + " unchanged. Fix: ask the admins for Slurm's job_container/tmpfs (one"
                + " mount namespace per job) instead; until then run the target's readers and writers in the batch"
                + " script itself, not in srun steps (--mount-dir does not help: the namespace hides the mount, not the"
                + " path; see slurm/README.md, 'Jobs on several nodes')");
    }

    private void say(String node, String msg) {
        said.put(node, msg);
        Log.warn(msg);
    }

    /**
     * Stops every agent and waits for their step to end: their last versions are written and their
     * mounts gone when this returns. First the stop file, which each agent (and a dead agent's
     * wrapper) sees within 200 ms and ends on with exit 0: the step ends quietly, with none of
     * slurmstepd's or srun's lines in the job's output. A node that did not see it by the
     * deadline (a hung agent; NFS caching "no such file"), or never came up, gets TERM through
     * {@code scancel --signal=TERM JOB.STEP}; KILL after a second deadline.
     */
    void stop() {
        if (srun == null) return;
        if (srun.isAlive()) {
            askToStop();
            boolean quiet = nodesIn(NodeState.MISSING).isEmpty() && waitFor(srun, STOP_FILE_MILLIS);
            if (!quiet) terminate();
        }
        if (srunErr != null) srunErr.drain(2_000);
        look();
        for (Map.Entry<String, NodeState> e : state.entrySet()) {
            if (e.getValue() == NodeState.READY && Files.exists(plan.file(AgentPlan.State.DONE, e.getKey()))) e.setValue(NodeState.DONE);
            if (e.getValue() == NodeState.GONE) said.put(e.getKey(), gone(e.getKey()));
        }
        removeControl();
    }

    private void askToStop() {
        try {
            AgentPlan.writeWhole(plan.stopFile(), Json.obj().put("by", batchNode).toString());
        } catch (IOException e) {
            Log.debug("could not write " + plan.stopFile() + ": " + e.getMessage() + " (signalling the agents instead)");
        }
    }

    /** TERM to the agents' step (each agent ends as on the stop file); KILL if that does not do within the deadline. */
    private void terminate() {
        String st = step != null ? step : stepByName();
        if (st != null) run(List.of("scancel", "--quiet", "--signal=TERM", jobId + "." + st), 30);
        else srun.destroy();
        if (!waitFor(srun, STOP_MILLIS)) {
            Log.warn("the versionfs agents did not stop within " + STOP_MILLIS / 1000 + " s: killing them");
            if (st != null) run(List.of("scancel", "--quiet", jobId + "." + st), 30);
            srun.destroyForcibly();
            waitFor(srun, 10_000);
        }
    }

    /** The agents' step id from squeue (no agent wrote its ready file yet); null if not found. */
    private String stepByName() {
        String out = run(List.of("squeue", "-h", "-s", "-j", jobId, "-o", "%i %j"), 20);
        if (out == null) return null;
        for (String l : out.lines().toList()) {
            String[] f = l.strip().split("\\s+");
            if (f.length == 2 && f[1].equals("versionfs-agent") && f[0].startsWith(jobId + ".")) {
                return f[0].substring(jobId.length() + 1);
            }
        }
        return null;
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

    private String goneExit(String node) {
        try {
            return String.valueOf(Json.parseObject(Files.readString(plan.file(AgentPlan.State.GONE, node))).get("exit"));
        } catch (IOException | RuntimeException e) {
            return "?";
        }
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
            Process p = io.versionfs.sys.Spawns.start(new ProcessBuilder(bounded).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectErrorStream(true));
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
