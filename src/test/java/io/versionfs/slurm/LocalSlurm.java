package io.versionfs.slurm;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * A test Slurm started by one of the scripts in {@code slurm/test/} (the one-node cluster of
 * slurm-up.sh, or the two-node one of two-nodes-up.sh: see {@link TwoNodeSlurm}), driven through
 * its ordinary client commands (sbatch, scontrol, scancel), as a user would. Job states are polled
 * with {@code scontrol -o show job}, which answers at once (sbatch --wait polls with a growing delay).
 */
final class LocalSlurm {
    /** States a job does not leave (scontrol prints COMPLETING while its processes still die). */
    static final Set<String> FINAL = Set.of("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
            "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE");

    final Path projectRoot;
    final Path slurmConf;
    final Path stateDir;

    private LocalSlurm(Path projectRoot, Path slurmConf) {
        this.projectRoot = projectRoot;
        this.slurmConf = slurmConf;
        this.stateDir = slurmConf.getParent().getParent();
    }

    /** The folder slurm-up.sh uses (its default, or $VERSIONFS_SLURM_DIR as the scripts read it). */
    static Path clusterDir() {
        String d = System.getenv("VERSIONFS_SLURM_DIR");
        return Path.of(d == null || d.isBlank() ? "/tmp/versionfs-slurm" : d);
    }

    /**
     * Takes an exclusive lock for the cluster's folder, so that two test runs on one machine (two
     * checkouts, or a developer's run during CI's) take turns: both would start and stop the same
     * daemons, ports and folder. Waits up to {@code timeout}; the lock goes with the JVM.
     */
    static java.nio.channels.FileChannel lock(Duration timeout) {
        return lock(Path.of(clusterDir() + ".lock"), "[SlurmIT]", timeout);
    }

    /** {@link #lock(Duration)} for any cluster: an exclusive lock on {@code lockFile}. */
    static java.nio.channels.FileChannel lock(Path lockFile, String logPrefix, Duration timeout) {
        try {
            java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(lockFile,
                    java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE);
            long deadline = System.nanoTime() + timeout.toNanos();
            boolean told = false;
            while (true) {
                try {
                    if (ch.tryLock() != null) return ch;
                } catch (java.nio.channels.OverlappingFileLockException e) {
                    // held by this JVM already: treat as busy
                }
                if (!told) {
                    System.out.println(logPrefix + " " + lockFile + " is held by another test run: waiting up to "
                            + timeout.toMinutes() + " min");
                    told = true;
                }
                if (System.nanoTime() > deadline) {
                    ch.close();
                    throw new IllegalStateException("another test run holds " + lockFile + " for more than "
                            + timeout.toMinutes() + " min: cannot use the test Slurm");
                }
                sleep(1000);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot lock " + lockFile, e);
        }
    }

    /** Runs slurm-up.sh (installs, configures, starts; idempotent) and returns the running cluster. */
    static LocalSlurm up(Path projectRoot) {
        return start(projectRoot, "slurm/test/slurm-up.sh");
    }

    /**
     * Runs a start script of {@code slurm/test/} (idempotent; the last line it prints is the
     * SLURM_CONF path) and returns the running cluster.
     */
    static LocalSlurm start(Path projectRoot, String script) {
        return start(projectRoot, script, Map.of());
    }

    /** As {@link #start(Path, String)}, with {@code env} added to the script's environment. */
    static LocalSlurm start(Path projectRoot, String script, Map<String, String> env) {
        Result r = run(List.of(projectRoot.resolve(script).toString()), projectRoot, env, Duration.ofMinutes(15));
        if (r.rc != 0) {
            throw new IllegalStateException(script + " failed (exit " + r.rc + "): cannot run the Slurm"
                    + " tests without a working Slurm.\n--- stdout ---\n" + r.out + "\n--- stderr ---\n" + r.err);
        }
        List<String> lines = r.out.lines().filter(l -> !l.isBlank()).toList();
        if (lines.isEmpty()) throw new IllegalStateException(script + " printed no SLURM_CONF path:\n" + r.err);
        Path conf = Path.of(lines.get(lines.size() - 1).trim());
        if (!Files.isRegularFile(conf)) throw new IllegalStateException(script + " printed '" + conf + "', not a file");
        return new LocalSlurm(projectRoot, conf);
    }

    /** Runs slurm-down.sh; returns its combined output (for the test log). */
    static String down(Path projectRoot) {
        Result r = run(List.of(projectRoot.resolve("slurm/test/slurm-down.sh").toString()), projectRoot, Map.of(),
                Duration.ofMinutes(2));
        return "slurm-down.sh exit " + r.rc + "\n" + r.out + r.err;
    }

    /**
     * The environment a job gets: ours, minus any Slurm job variables (mvn may itself run inside a
     * job, and sbatch reads SBATCH_* as options), plus SLURM_CONF, the project's bin/ first on PATH
     * (the templates find versionfs through PATH), and TMPDIR (where versionfs makes its mount
     * point, so each test can check its own mounts are gone).
     */
    Map<String, String> jobEnv(Path tmpDir) {
        Map<String, String> env = new HashMap<>(System.getenv());
        env.keySet().removeIf(k -> k.startsWith("SLURM_") || k.startsWith("SBATCH_") || k.startsWith("SALLOC_")
                || k.startsWith("SRUN_"));
        env.put("SLURM_CONF", slurmConf.toString());
        env.put("PATH", projectRoot.resolve("bin") + ":" + System.getenv().getOrDefault("PATH", "/usr/bin:/bin"));
        env.put("TMPDIR", tmpDir.toString());
        return env;
    }

    /** sbatch --parsable from {@code dir}; returns the job id. */
    String sbatch(Path dir, Map<String, String> env, Path script, String... options) {
        List<String> cmd = new ArrayList<>(List.of("sbatch", "--parsable"));
        cmd.addAll(List.of(options));
        cmd.add(script.toString());
        Result r = run(cmd, dir, env, true, Duration.ofSeconds(60));
        if (r.rc != 0) throw new IllegalStateException("sbatch failed (exit " + r.rc + "): " + r.err + r.out);
        String id = r.out.trim().split(";")[0];
        if (!id.matches("\\d+")) throw new IllegalStateException("sbatch printed '" + r.out + "', not a job id");
        return id;
    }

    void scancel(String jobId) {
        Result r = run(List.of("scancel", jobId), projectRoot, clientEnv(), Duration.ofSeconds(30));
        if (r.rc != 0) throw new IllegalStateException("scancel " + jobId + " failed: " + r.err);
    }

    /** One line of {@code scontrol -o show job}: a job, or one task of an array. */
    record JobInfo(Map<String, String> fields) {
        String get(String key) {
            return fields.getOrDefault(key, "");
        }

        String state() {
            return get("JobState");
        }

        String exitCode() {
            return get("ExitCode");
        }

        boolean isFinal() {
            return FINAL.contains(state());
        }

        /** RunTime in seconds. */
        long runSeconds() {
            String t = get("RunTime"); // [D-]HH:MM:SS
            long days = 0;
            if (t.contains("-")) {
                days = Long.parseLong(t.substring(0, t.indexOf('-')));
                t = t.substring(t.indexOf('-') + 1);
            }
            String[] p = t.split(":");
            return days * 86400 + Long.parseLong(p[0]) * 3600 + Long.parseLong(p[1]) * 60 + Long.parseLong(p[2]);
        }

        @Override
        public String toString() {
            return "job " + get("JobId") + " " + state() + " ExitCode=" + exitCode() + " RunTime=" + get("RunTime")
                    + " Reason=" + get("Reason");
        }
    }

    /** Every record for {@code jobId} (an array job gives one per task, or one for a pending range). */
    List<JobInfo> show(String jobId) {
        Result r = run(List.of("scontrol", "-o", "show", "job", jobId), projectRoot, clientEnv(), Duration.ofSeconds(30));
        if (r.rc != 0) throw new IllegalStateException("scontrol show job " + jobId + " failed: " + r.err + r.out);
        List<JobInfo> jobs = new ArrayList<>();
        for (String line : r.out.lines().filter(l -> !l.isBlank()).toList()) {
            Map<String, String> f = new LinkedHashMap<>();
            for (String tok : line.trim().split("\\s+")) {
                int eq = tok.indexOf('=');
                if (eq > 0) f.put(tok.substring(0, eq), tok.substring(eq + 1));
            }
            jobs.add(new JobInfo(f));
        }
        return jobs;
    }

    /** Polls until every record of the job satisfies {@code done}; fails with the last state on timeout. */
    List<JobInfo> waitFor(String jobId, String what, Duration timeout, Predicate<List<JobInfo>> done) {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<JobInfo> last = List.of();
        while (true) {
            last = show(jobId);
            if (!last.isEmpty() && done.test(last)) return last;
            if (System.nanoTime() > deadline) {
                throw new AssertionError("job " + jobId + ": not " + what + " after " + timeout.toSeconds() + " s; last: "
                        + last + "\n" + logTails());
            }
            sleep(250);
        }
    }

    List<JobInfo> waitFinal(String jobId, Duration timeout) {
        return waitFor(jobId, "finished", timeout, l -> l.stream().allMatch(JobInfo::isFinal));
    }

    JobInfo waitRunning(String jobId, Duration timeout) {
        return waitFor(jobId, "running", timeout, l -> l.stream().allMatch(j -> !j.state().equals("PENDING"))).get(0);
    }

    /** The last lines of slurmctld's and every slurmd's log, for failure messages. */
    String logTails() {
        StringBuilder b = new StringBuilder();
        List<Path> logs;
        try (java.util.stream.Stream<Path> l = Files.list(stateDir.resolve("log"))) {
            logs = l.filter(p -> p.getFileName().toString().endsWith(".log")).sorted().toList();
        } catch (IOException e) {
            logs = List.of(stateDir.resolve("log/slurmctld.log"), stateDir.resolve("log/slurmd.log"));
        }
        for (Path p : logs) {
            b.append("--- last lines of ").append(p).append(" ---\n");
            try {
                List<String> lines = Files.readAllLines(p, StandardCharsets.UTF_8);
                lines.subList(Math.max(0, lines.size() - 15), lines.size()).forEach(l -> b.append(l).append('\n'));
            } catch (IOException e) {
                b.append("(unreadable: ").append(e.getMessage()).append(")\n");
            }
        }
        return b.toString();
    }

    private Map<String, String> clientEnv() {
        return Map.of("SLURM_CONF", slurmConf.toString());
    }

    record Result(int rc, String out, String err) {}

    /** Runs a command with a bounded wait; {@code env} is added to (and overrides) ours. */
    static Result run(List<String> cmd, Path cwd, Map<String, String> env, Duration timeout) {
        return run(cmd, cwd, env, false, timeout);
    }

    /** Runs a command with a bounded wait, in exactly {@code env} if {@code replaceEnv}. */
    static Result run(List<String> cmd, Path cwd, Map<String, String> env, boolean replaceEnv, Duration timeout) {
        try {
            Path out = Files.createTempFile("slurmit-out", ".txt");
            Path err = Files.createTempFile("slurmit-err", ".txt");
            try {
                ProcessBuilder pb = new ProcessBuilder(cmd).directory(cwd.toFile())
                        .redirectOutput(out.toFile()).redirectError(err.toFile())
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
                if (replaceEnv) pb.environment().clear();
                pb.environment().putAll(env);
                Process p = pb.start();
                if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    p.destroyForcibly();
                    p.waitFor(10, TimeUnit.SECONDS);
                    throw new AssertionError(String.join(" ", cmd) + " did not finish within " + timeout.toSeconds()
                            + " s; output so far:\n" + Files.readString(out) + Files.readString(err));
                }
                return new Result(p.exitValue(), Files.readString(out), Files.readString(err));
            } finally {
                Files.deleteIfExists(out);
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("running " + cmd, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running " + cmd);
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted");
        }
    }
}
