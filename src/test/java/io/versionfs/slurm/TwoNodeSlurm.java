package io.versionfs.slurm;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The two-node Slurm of {@code slurm/test/two-nodes-up.sh}, as a JUnit extension that a test class
 * registers once, in a static field:
 *
 * <pre>{@code @RegisterExtension static final TwoNodeSlurm cluster = new TwoNodeSlurm();}</pre>
 *
 * It starts the cluster before the class's first test (once per class: about 5 s) and stops it
 * with {@code two-nodes-down.sh} after the last one, also when a test fails or the JVM is
 * interrupted (a shutdown hook). Two test runs on one machine take turns through a lock file
 * beside the cluster's folder. Skipped (not failed) when not root.
 *
 * <p>The nodes are {@code node1} and {@code node2}: each a slurmd in its own network, UTS and
 * mount namespace, with a private {@code /tmp} (the folder {@link #nodeTmp} on the machine) and
 * {@code /dev/shm}. Everything outside those is shared: {@link #newJobDir} makes a folder in the
 * shared filesystem, the same path on both nodes and in the test's JVM (the "login node").
 */
final class TwoNodeSlurm implements BeforeAllCallback, AfterAllCallback {
    static final List<String> NODES = List.of("node1", "node2");
    private static final Path ROOT = Path.of("").toAbsolutePath();
    private static final String UP = "slurm/test/two-nodes-up.sh";
    private static final String DOWN = "slurm/test/two-nodes-down.sh";

    private LocalSlurm slurm;
    private FileChannel lock;
    private Thread shutdownHook;
    private boolean downDone;
    private Path runDir;
    private String label = "[TwoNodeSlurm]";
    /** Added to two-nodes-up.sh's environment (e.g. VERSIONFS_SLURM2_PRIVATE_TMP). */
    private final Map<String, String> upEnv;

    TwoNodeSlurm() {
        this(Map.of());
    }

    /** A cluster started with {@code upEnv} added to two-nodes-up.sh's environment. */
    TwoNodeSlurm(Map<String, String> upEnv) {
        this.upEnv = Map.copyOf(upEnv);
    }

    /** The cluster's folder as the scripts read it: $VERSIONFS_SLURM2_DIR, default /var/tmp/versionfs-slurm2. */
    static Path clusterDir() {
        String d = System.getenv("VERSIONFS_SLURM2_DIR");
        return Path.of(d == null || d.isBlank() ? "/var/tmp/versionfs-slurm2" : d).toAbsolutePath().normalize();
    }

    @Override
    public void beforeAll(ExtensionContext context) {
        label = "[" + context.getRequiredTestClass().getSimpleName() + "]";
        Assumptions.assumeTrue(isRoot(), context.getRequiredTestClass().getSimpleName() + " needs root: it makes"
                + " network and mount namespaces and starts slurmctld/slurmd (skipped for "
                + System.getProperty("user.name") + ")");
        if (!Files.isRegularFile(ROOT.resolve(UP))) {
            throw new IllegalStateException("run from the project root (Maven does): " + UP + " not found under " + ROOT);
        }
        lock = LocalSlurm.lock(Path.of(clusterDir() + ".lock"), label, Duration.ofMinutes(15));
        shutdownHook = new Thread(this::downOnce, "two-nodes-down");
        Runtime.getRuntime().addShutdownHook(shutdownHook);
        long t0 = System.nanoTime();
        slurm = LocalSlurm.start(ROOT, UP, upEnv);
        log(UP + ": " + secs(t0) + ", SLURM_CONF=" + slurm.slurmConf);
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss"));
        runDir = sharedDir().resolve(context.getRequiredTestClass().getSimpleName() + "-" + stamp + "-"
                + ProcessHandle.current().pid());
        try {
            Files.createDirectories(runDir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make " + runDir, e);
        }
    }

    @Override
    public void afterAll(ExtensionContext context) {
        if (shutdownHook == null) return; // skipped, or no lock: this run started nothing
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException e) {
            // already shutting down: the hook runs it
        }
        try {
            downOnce();
        } finally {
            try {
                lock.close(); // the next test run may start its cluster
            } catch (IOException e) {
                log("closing the cluster lock: " + e);
            }
        }
        // Jobs' folders are deleted by the tests that pass; the class's folder goes when empty.
        try {
            Files.deleteIfExists(runDir);
        } catch (IOException e) {
            log("kept " + runDir + " (a failed test's jobs are in it)");
        }
        // Nothing a job mounted may show on the machine (the nodes' mounts died with them).
        List<String> left = mountsUnder(clusterDir());
        if (!left.isEmpty()) throw new AssertionError("mounts left under " + clusterDir() + " after " + DOWN + ": " + left);
    }

    private synchronized void downOnce() {
        if (downDone) return;
        downDone = true;
        long t0 = System.nanoTime();
        LocalSlurm.Result r = LocalSlurm.run(List.of(ROOT.resolve(DOWN).toString()), ROOT, Map.of(), Duration.ofMinutes(2));
        log(DOWN + " exit " + r.rc() + " (" + secs(t0) + ")\n" + r.out() + r.err());
    }

    /** The running cluster's client (sbatch, scontrol, scancel). */
    LocalSlurm slurm() {
        if (slurm == null) throw new IllegalStateException("the two-node cluster is not up");
        return slurm;
    }

    /** The shared filesystem: the same path on both nodes and here. */
    static Path sharedDir() {
        return clusterDir().resolve("shared");
    }

    /** On this machine (the root namespaces), the folder that is {@code /tmp} on {@code node}. */
    static Path nodeTmp(String node) {
        return clusterDir().resolve(node).resolve("tmp");
    }

    /** The pid of {@code node}'s slurmd (its pid file); its /proc entry shows the node's mounts. */
    static long slurmdPid(String node) {
        try {
            return Long.parseLong(Files.readString(clusterDir().resolve("run/slurmd-" + node + ".pid")).trim());
        } catch (IOException e) {
            throw new UncheckedIOException("no pid file for the slurmd of " + node, e);
        }
    }

    /** The mount points in {@code node}'s mount namespace (read through its slurmd). */
    static List<String> nodeMounts(String node) {
        return mountPoints(Path.of("/proc/" + slurmdPid(node) + "/mounts"));
    }

    /** A new, empty folder for one job in the shared filesystem (under this class's folder). */
    Path newJobDir(String name) {
        Path d = runDir.resolve(name);
        try {
            Files.createDirectories(d);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot make " + d, e);
        }
        return d;
    }

    /**
     * The environment of a submission: ours without Slurm's job variables (mvn may itself run in a
     * job; sbatch reads SBATCH_* as options), with SLURM_CONF, the project's bin/ first on PATH and
     * TMPDIR=/tmp (ours may name a folder that is not on the nodes: each has its own /tmp).
     */
    Map<String, String> jobEnv() {
        Map<String, String> env = new HashMap<>(System.getenv());
        env.keySet().removeIf(k -> k.startsWith("SLURM_") || k.startsWith("SBATCH_") || k.startsWith("SALLOC_")
                || k.startsWith("SRUN_"));
        env.put("SLURM_CONF", slurm().slurmConf.toString());
        env.put("PATH", ROOT.resolve("bin") + ":" + System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
        env.put("TMPDIR", "/tmp");
        return env;
    }

    /** Pids of the processes on the machine whose environment has SLURM_JOB_ID=jobId and our SLURM_CONF. */
    List<Long> processesOfJob(String jobId) {
        byte[] job = ("SLURM_JOB_ID=" + jobId).getBytes(StandardCharsets.UTF_8);
        byte[] conf = ("SLURM_CONF=" + slurm().slurmConf).getBytes(StandardCharsets.UTF_8);
        List<Long> pids = new ArrayList<>();
        try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.filter(p -> p.getFileName().toString().matches("\\d+")).toList()) {
                byte[] env;
                try {
                    env = Files.readAllBytes(p.resolve("environ"));
                } catch (IOException e) {
                    continue; // gone, or a kernel thread
                }
                if (hasEntry(env, job) && hasEntry(env, conf)) pids.add(Long.parseLong(p.getFileName().toString()));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return pids;
    }

    /** {@code entry} is one whole NUL-separated entry of {@code env}. */
    private static boolean hasEntry(byte[] env, byte[] entry) {
        outer:
        for (int i = 0; i + entry.length <= env.length; i++) {
            if (i > 0 && env[i - 1] != 0) continue;
            if (i + entry.length < env.length && env[i + entry.length] != 0) continue;
            for (int j = 0; j < entry.length; j++) if (env[i + j] != entry[j]) continue outer;
            return true;
        }
        return false;
    }

    /** Mount points in this JVM's namespace at or under {@code dir}. */
    static List<String> mountsUnder(Path dir) {
        String d = dir.toString();
        return mountPoints(Path.of("/proc/self/mounts")).stream()
                .filter(m -> m.equals(d) || m.startsWith(d + "/")).toList();
    }

    private static List<String> mountPoints(Path mounts) {
        try {
            return Files.readAllLines(mounts).stream().map(l -> l.split(" "))
                    .filter(f -> f.length > 2).map(f -> unescape(f[1])).toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + mounts, e);
        }
    }

    /** /proc/mounts writes space, tab, newline and backslash as octal escapes. */
    private static String unescape(String s) {
        return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\");
    }

    private static boolean isRoot() {
        try {
            return Files.readAllLines(Path.of("/proc/self/status")).stream().anyMatch(l -> l.matches("Uid:\\s+0\\s.*"));
        } catch (IOException e) {
            return "root".equals(System.getProperty("user.name"));
        }
    }

    static String secs(long t0) {
        return String.format("%.1f s", (System.nanoTime() - t0) / 1e9);
    }

    private void log(String s) {
        System.out.println(label + " " + s.strip());
        System.out.flush();
    }
}
