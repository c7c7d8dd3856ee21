package io.versionfs.run;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What versionfs can tell about the Slurm job it runs in, from the environment Slurm sets. A FUSE
 * mount exists only on the node that made it: in a job that spans several nodes only processes on
 * this node (the batch node) see it.
 */
public final class SlurmContext {
    private final Map<String, String> env;

    public SlurmContext(Map<String, String> env) {
        this.env = env;
    }

    public static SlurmContext current() {
        return new SlurmContext(System.getenv());
    }

    public String jobId() {
        return blankToNull(env.get("SLURM_JOB_ID"));
    }

    /** The job as the run's summary names it ("job 123", "job 120 (array 120_3)"); null outside Slurm. */
    public String jobLine() {
        String job = jobId();
        if (job == null) return null;
        String array = get("SLURM_ARRAY_JOB_ID"), task = get("SLURM_ARRAY_TASK_ID");
        return array != null && task != null ? "job " + job + " (array " + array + "_" + task + ")" : "job " + job;
    }

    /** This node's host name; null if it cannot be known. */
    public static String host() {
        try {
            return java.net.InetAddress.getLocalHost().getHostName();
        } catch (java.io.IOException e) {
            return null;
        }
    }

    private static final String[] SCRATCH = {"SLURM_TMPDIR", "TMPDIR"};

    /** The node-local scratch folder a run would use for its mount folder (the first one set). */
    public String scratchVar() {
        for (String v : SCRATCH) if (blankToNull(env.get(v)) != null) return v;
        return null;
    }

    /** The node-local scratch folders set ($SLURM_TMPDIR, then $TMPDIR), in the order a run tries them. */
    public List<Path> scratchDirs() {
        List<Path> out = new ArrayList<>();
        for (String v : SCRATCH) if (blankToNull(env.get(v)) != null) out.add(Path.of(env.get(v)));
        return out;
    }

    public String get(String name) {
        return blankToNull(env.get(name));
    }

    /** Nodes in the allocation (SLURM_JOB_NUM_NODES, else the older SLURM_NNODES); 1 if unknown. */
    public int nodes() {
        int n = 1;
        for (String v : new String[] {"SLURM_JOB_NUM_NODES", "SLURM_NNODES"}) {
            String s = blankToNull(env.get(v));
            if (s == null) continue;
            try {
                n = Math.max(n, Integer.parseInt(s.trim()));
            } catch (NumberFormatException e) {
                // not a number: say nothing about it
            }
        }
        return n;
    }

    /** Which variable said how many nodes, as NAME=VALUE, for messages. */
    public String nodesSource() {
        for (String v : new String[] {"SLURM_JOB_NUM_NODES", "SLURM_NNODES"}) {
            String s = blankToNull(env.get(v));
            if (s != null) return v + "=" + s.trim();
        }
        return "";
    }

    /**
     * The one warning for a job spanning several nodes: what works and what to do. Null on one node.
     *
     * @param dirMode  --mode dir (the folder is served through versionfs only on this node)
     */
    public String multiNodeWarning(boolean dirMode) {
        int n = nodes();
        if (n <= 1) return null;
        String host = host();
        String where = host == null ? "this node" : "this node (" + host + ")";
        String common = "this job spans " + n + " nodes (" + nodesSource() + ") but a FUSE mount exists only on the node"
                + " that made it, " + where + ". ";
        String what = dirMode
                ? "--mode dir does not work across nodes: on the other nodes the folder is the plain folder, so what"
                  + " their processes write there is not versioned and may not be seen here. "
                : "On the other nodes the target is a symlink into a mount that is not there: their processes cannot"
                  + " open it (No such file or directory). ";
        return common + what + "What works: a target written (and read) only by processes on " + where
                + ", e.g. the master process of ORCA or rank 0 of an MPI program. What to do otherwise: one versionfs"
                + " per task (a job array, one 'versionfs run' per array task, each on one node), or keep the target's"
                + " writers on this node (#SBATCH --nodes=1). The job runs as asked.";
    }

    /** This node as Slurm names it (SLURMD_NODENAME, set in every job and step), else the host name. */
    public String nodeName() {
        String n = get("SLURMD_NODENAME");
        return n != null ? n : host();
    }

    /** The step this process runs in (SLURM_STEP_ID); null outside a step. */
    public String stepId() {
        return get("SLURM_STEP_ID");
    }

    /** The allocation's node list in Slurm's compact form (SLURM_JOB_NODELIST, else SLURM_NODELIST). */
    public String nodeList() {
        String l = get("SLURM_JOB_NODELIST");
        return l != null ? l : get("SLURM_NODELIST");
    }

    /** The user, for names that must be unique per user (USER, else the JVM's). */
    public String user() {
        String u = get("USER");
        return u != null ? u : System.getProperty("user.name", "user");
    }

    /**
     * The allocation's nodes one by one ({@code scontrol show hostnames}); empty if they cannot be
     * known (no node list, no scontrol, or it failed).
     */
    public List<String> nodeNames() {
        String list = nodeList();
        if (list == null) return List.of();
        try {
            Process p = io.versionfs.sys.Spawns.start(new ProcessBuilder("scontrol", "show", "hostnames", list).redirectErrorStream(true));
            p.getOutputStream().close();
            String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            if (!p.waitFor(20, java.util.concurrent.TimeUnit.SECONDS) || p.exitValue() != 0) return List.of();
            return out.lines().map(String::strip).filter(l -> !l.isEmpty()).toList();
        } catch (java.io.IOException e) {
            return List.of();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return List.of();
        }
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s;
    }
}
