package io.versionfs.slurm;

import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.UUID;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The two-node test cluster itself (slurm/test/two-nodes-up.sh, started once for this class by
 * {@link TwoNodeSlurm}): real jobs checking that it models two nodes as multi-node versionfs will
 * need them. No versionfs yet: these are the ground the multi-node tests will stand on.
 *
 * <p>Every job runs in its own folder of the shared filesystem (the same path on both nodes and
 * here), writes what it saw as "KEY: value" lines in its Slurm output, and is bounded twice: a
 * Slurm time limit and a wait here; every srun inside a job is under {@code timeout}. A job's
 * folder is deleted when its test passes.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 240)
class TwoNodeSlurmIT {
    @RegisterExtension
    static final TwoNodeSlurm cluster = new TwoNodeSlurm();

    /** The first check, verbatim: one task per node prints each node's hostname. */
    @Test
    @Order(1)
    void eachNodeHasItsOwnHostname(TestInfo info) {
        Job job = new Job(info);
        Job.Run run = job.submit(null, "-N", "2", "--time=2", "--wrap", "srun -N2 --ntasks-per-node=1 hostname");
        run.assertCompleted();
        List<String> names = run.out.lines().map(String::strip).filter(l -> !l.isEmpty()).sorted().toList();
        assertEquals(TwoNodeSlurm.NODES, names, run::describe);
        LocalSlurm.JobInfo info0 = run.end;
        assertEquals("node[1-2]", info0.get("NodeList"), run::describe);
        assertEquals("node1", info0.get("BatchHost"), run::describe);
        job.delete();
    }

    /** A file one node writes in the shared folder is read on the other, and here, at the same path. */
    @Test
    @Order(2)
    void sharedFolderIsTheSameOnBothNodes(TestInfo info) throws IOException {
        Job job = new Job(info);
        String token = UUID.randomUUID().toString();
        Job.Run run = job.submit("""
                #!/bin/bash
                #SBATCH -N 2
                #SBATCH --time=2
                set -u
                echo "batch: $(hostname) $PWD"
                timeout 60 srun -N1 -n1 -w node1 sh -c 'echo "TOKEN written on $(hostname)" > shared.txt; echo "step: $(hostname) $PWD"'
                timeout 60 srun -N1 -n1 -w node2 sh -c 'echo "read: $(hostname) $(cat shared.txt)"; echo "answer from $(hostname)" >> shared.txt; echo "step: $(hostname) $PWD"'
                timeout 60 srun -N1 -n1 -w node1 sh -c 'echo "read back: $(hostname) $(tail -n 1 shared.txt)"'
                """.replace("TOKEN", token));
        run.assertCompleted();
        String dir = job.dir.toString();
        run.assertLine("batch: node1 " + dir);
        run.assertLine("step: node1 " + dir);
        run.assertLine("step: node2 " + dir);
        run.assertLine("read: node2 " + token + " written on node1");
        run.assertLine("read back: node1 answer from node2");
        assertEquals(List.of(token + " written on node1", "answer from node2"),
                Files.readAllLines(job.dir.resolve("shared.txt")), "shared.txt as the login node sees it");
        job.delete();
    }

    /**
     * A mount a step makes on node1 (a tmpfs on a folder of the shared filesystem), and a file it
     * writes in /tmp: a second step on node1 sees both while the first still runs, node2 sees
     * neither, nor does the machine outside the nodes. Every step of a node runs in that node's
     * one mount namespace (the slurmd's: there is no job_container plugin), so a new step sees the
     * mounts of the steps before it on that node.
     */
    @Test
    @Order(3)
    void mountsAndTmpAreNodeLocal(TestInfo info) throws IOException {
        Job job = new Job(info);
        String token = "vfs2-" + UUID.randomUUID().toString().substring(0, 8);
        Files.createDirectory(job.dir.resolve("mnt"));
        String probe = "sh -c 'echo \"probe $(hostname): marker=$(cat mnt/marker 2>/dev/null || echo none)"
                + " tmpfile=$(cat /tmp/TOKEN 2>/dev/null || echo none) mounted=$(grep -c \"^TOKEN \" /proc/self/mounts)\"'";
        Job.Run run = job.submit("""
                #!/bin/bash
                #SBATCH -N 2
                #SBATCH --time=3
                set -u
                d=$PWD
                # Step 1, in the background on node1: mounts, writes, and stays.
                srun -J holder -N1 -n1 -w node1 --overlap sh -c "mount -t tmpfs TOKEN $d/mnt && echo TOKEN > $d/mnt/marker \\
                    && echo TOKEN > /tmp/TOKEN && touch $d/holder.ready && exec sleep 150" &
                holder=$!
                for i in $(seq 150); do [ -e holder.ready ] && break; sleep 0.2; done
                echo "holder ready: $([ -e holder.ready ] && echo yes || echo no)"
                echo "batch $(hostname): marker=$(cat mnt/marker 2>/dev/null || echo none)"
                timeout 60 srun -N1 -n1 -w node1 --overlap PROBE
                timeout 60 srun -N1 -n1 -w node2 --overlap PROBE
                # The test looks at the machine and at each node's namespace now, then lets us go on.
                touch probes.done
                for i in $(seq 300); do [ -e test.done ] && break; sleep 0.2; done
                timeout 60 srun -N1 -n1 -w node1 --overlap umount $d/mnt && echo "unmounted on node1"
                timeout 60 srun -N1 -n1 -w node1 --overlap PROBE
                kill $holder; wait $holder
                echo "end"
                """.replace("PROBE", probe).replace("TOKEN", token), running -> {
            // While the holder step runs: only node1's namespace has the mount.
            job.await("probes.done", Duration.ofSeconds(90), running);
            String mnt = job.dir.resolve("mnt").toString();
            try {
                assertTrue(TwoNodeSlurm.nodeMounts("node1").contains(mnt), "node1's namespace lacks the mount on " + mnt);
                assertFalse(TwoNodeSlurm.nodeMounts("node2").contains(mnt), "node2's namespace has node1's mount");
                assertEquals(List.of(), TwoNodeSlurm.mountsUnder(job.dir), "the machine sees node1's mount");
                try (Stream<Path> s = Files.list(job.dir.resolve("mnt"))) {
                    assertEquals(List.of(), s.toList(), "the machine sees into node1's mount");
                }
                // node1's /tmp is nodeTmp(node1) here; node2's has no such file.
                assertEquals(token, Files.readString(TwoNodeSlurm.nodeTmp("node1").resolve(token)).strip());
                assertFalse(Files.exists(TwoNodeSlurm.nodeTmp("node2").resolve(token)), "node2's /tmp has node1's file");
                assertFalse(Files.exists(Path.of("/tmp", token)), "the machine's /tmp has node1's file");
            } finally {
                job.touch("test.done");
            }
        });
        run.assertCompleted();
        run.assertLine("holder ready: yes");
        // The batch script runs on node1, so it is one more "step" there and sees the mount too.
        run.assertLine("batch node1: marker=" + token);
        run.assertLine("probe node1: marker=" + token + " tmpfile=" + token + " mounted=1");
        run.assertLine("probe node2: marker=none tmpfile=none mounted=0");
        run.assertLine("unmounted on node1");
        run.assertLine("probe node1: marker=none tmpfile=" + token + " mounted=0");
        run.assertLine("end");
        assertFalse(TwoNodeSlurm.nodeMounts("node1").contains(job.dir.resolve("mnt").toString()), "mount left on node1");
        Files.deleteIfExists(TwoNodeSlurm.nodeTmp("node1").resolve(token));
        job.delete();
    }

    /**
     * The agent-start pattern of multi-node versionfs: a step with one long-running task per node
     * ({@code srun --overlap ... --mem=0 -c 1 ... &}) does not keep a second step from running at
     * the same time on the same nodes; cancelling the first step ends its tasks on both nodes and
     * leaves no process behind. A plain {@code scancel JOB.STEP} sends SIGKILL at once (no TERM
     * first, unlike cancelling a job): the tasks' traps never run. For a graceful stop see
     * {@link #agentsStopGracefullyOnTermOrInt}.
     */
    @Test
    @Order(4)
    void overlappingAgentStepLeavesRoomAndLeavesNothing(TestInfo info) {
        Job job = new Job(info);
        String check = "sh -c 'read h pid ns < agent.$SLURM_NODEID; if kill -0 $pid 2>/dev/null"
                + " && [ \"$(readlink /proc/$pid/ns/net)\" = \"$(readlink /proc/self/ns/net)\" ]; then s=running;"
                + " else s=gone; fi; echo \"LABEL $(hostname): agent of $h $s\"'";
        Job.Run run = job.submit("""
                #!/bin/bash
                #SBATCH -N 2
                #SBATCH --time=3
                set -u
                # The agents: one task per node, in the foreground of its step; it notes the
                # signals it gets (scancel of a step: which, and does the task get to run a trap?).
                srun -J agent --overlap --ntasks-per-node=1 -N 2 --mem=0 -c 1 sh -c \\
                    'trap "echo \\"$(hostname) TERM\\" >> signals; exit 143" TERM; trap "echo \\"$(hostname) INT\\" >> signals; exit 130" INT
                     echo "$(hostname) $$ $(readlink /proc/self/ns/net)" > agent.$SLURM_NODEID; sleep 297 & wait' &
                agent=$!
                for i in $(seq 150); do [ -e agent.0 ] && [ -e agent.1 ] && break; sleep 0.2; done
                cat agent.0 agent.1 | sed 's/^/agent: /'
                # A second step on both nodes, while the agents run.
                timeout 60 srun -N2 --ntasks-per-node=1 CHECK_DURING
                echo "second step exit: $?"
                step=$(squeue -h -s -j $SLURM_JOB_ID -o '%i %j' | awk '$2 == "agent" { print $1 }')
                echo "agent step: $step"
                scancel $step
                for i in $(seq 150); do kill -0 $agent 2>/dev/null || break; sleep 0.2; done
                wait $agent
                echo "agent srun exit: $?"
                timeout 60 srun -N2 --ntasks-per-node=1 CHECK_AFTER
                echo "end"
                """.replace("CHECK_DURING", check.replace("LABEL", "during"))
                .replace("CHECK_AFTER", check.replace("LABEL", "after")));
        run.assertCompleted();
        for (String node : TwoNodeSlurm.NODES) {
            run.assertLine("during " + node + ": agent of " + node + " running");
            run.assertLine("after " + node + ": agent of " + node + " gone");
        }
        run.assertLine("second step exit: 0");
        run.assertLine("agent step: " + run.id + ".0");
        assertFalse(run.out.contains("Step creation temporarily disabled"), () -> "the second step waited:\n" + run.describe());
        assertNotEquals("agent srun exit: 0", run.line("agent srun exit: "), run::describe);
        run.assertLine("end");
        run.assertNoProcessLeft();
        assertEquals("", job.readOrEmpty("signals"), () -> "scancel of a step let the tasks' traps run:\n" + run.describe());
        job.delete();
    }

    /**
     * Two ways to stop the agents gracefully (each task's TERM or INT trap runs, on both nodes),
     * both leaving no process behind: {@code scancel --signal=TERM JOB.STEP}, and SIGINT twice
     * within a second to the step's srun (srun's Ctrl-C: the first INT only prints the step's
     * state). A single TERM to srun is not one: srun then kills the tasks (SIGKILL).
     */
    @Test
    @Order(5)
    void agentsStopGracefullyOnTermOrInt(TestInfo info) {
        Job job = new Job(info);
        Job.Run run = job.submit("""
                #!/bin/bash
                #SBATCH -N 2
                #SBATCH --time=3
                set -u
                # start_agents LABEL: one task per node that notes the signal it gets in 'signals'.
                start_agents() {
                  rm -f agent.0 agent.1
                  srun -J agent --overlap --ntasks-per-node=1 -N 2 --mem=0 -c 1 sh -c \\
                    'trap "echo \\"$1 $(hostname) TERM\\" >> signals; exit 143" TERM
                     trap "echo \\"$1 $(hostname) INT\\" >> signals; exit 130" INT
                     echo "$(hostname) $$" > agent.$SLURM_NODEID; sleep 296 & wait' sh "$1" &
                  agent=$!
                  for i in $(seq 150); do [ -e agent.0 ] && [ -e agent.1 ] && break; sleep 0.2; done
                  step=$(squeue -h -s -j $SLURM_JOB_ID -o '%i %j' | awk '$2 == "agent" { print $1 }')
                  echo "$1 started: step $step"
                }
                # await_agent LABEL: bounded wait for the agents' srun, then its exit status.
                await_agent() {
                  for i in $(seq 150); do kill -0 $agent 2>/dev/null || break; sleep 0.2; done
                  wait $agent
                  echo "$1 srun exit: $?"
                }
                start_agents scancel-term
                scancel --signal=TERM $step
                await_agent scancel-term
                start_agents srun-int
                kill -INT $agent; sleep 0.3; kill -INT $agent
                await_agent srun-int
                echo "end"
                """);
        run.assertCompleted();
        run.assertLine("scancel-term srun exit: 143");
        run.assertLine("srun-int srun exit: 130");
        run.assertLine("end");
        List<String> signals = job.readOrEmpty("signals").lines().sorted().toList();
        assertEquals(List.of("scancel-term node1 TERM", "scancel-term node2 TERM", "srun-int node1 INT",
                "srun-int node2 INT"), signals, run::describe);
        run.assertNoProcessLeft();
        job.delete();
    }

    // ---- one job ------------------------------------------------------------------------------

    /** One job in its own folder of the shared filesystem. */
    private static final class Job {
        final String name;
        final Path dir;

        Job(TestInfo info) {
            name = info.getTestMethod().orElseThrow().getName();
            dir = cluster.newJobDir(name);
        }

        interface WhileRunning {
            void accept(Run run) throws IOException;
        }

        /** sbatch with output to job-%j.out; a script, or null with --wrap among the options. */
        Run submit(String script, String... options) {
            return submit(script, null, options);
        }

        /** As {@link #submit(String, String...)}, calling {@code whileRunning} once the job runs. */
        Run submit(String script, WhileRunning whileRunning, String... options) {
            long t0 = System.nanoTime();
            Run[] running = new Run[1];
            JobScript.Ended e = JobScript.submitAndWait(cluster.slurm(), dir, cluster.jobEnv(),
                    script == null ? null : write("job.sh", script), Duration.ofSeconds(180), whileRunning == null ? null : id -> {
                        running[0] = new Run(this, id);
                        try {
                            whileRunning.accept(running[0]);
                        } catch (IOException ex) {
                            throw new UncheckedIOException(ex);
                        }
                    }, options);
            Run run = running[0] != null ? running[0] : new Run(this, e.id());
            run.end = e.end();
            run.out = e.out();
            System.out.println("[TwoNodeSlurmIT] " + name + ": " + run.end + " (" + TwoNodeSlurm.secs(t0)
                    + " from sbatch)\n" + run.out.strip().indent(4));
            return run;
        }

        /** Waits for the job to create {@code file} in its folder. */
        void await(String file, Duration timeout, Run run) {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!Files.exists(dir.resolve(file))) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("job " + run.id + " did not make " + file + " in " + timeout.toSeconds()
                            + " s; its output so far:\n" + readOrEmpty("job-" + run.id + ".out") + "\n"
                            + cluster.slurm().logTails());
                }
                LocalSlurm.sleep(200);
            }
        }

        void touch(String file) {
            try {
                Files.writeString(dir.resolve(file), "");
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        Path write(String file, String text) {
            Path p = dir.resolve(file);
            try {
                Files.writeString(p, text);
                Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return p;
        }

        String readOrEmpty(String file) {
            try {
                return Files.readString(dir.resolve(file));
            } catch (IOException e) {
                return "";
            }
        }

        /** Deletes the job's folder (a passed test's; a failed one's stays for a look). */
        void delete() {
            try (Stream<Path> walk = Files.walk(dir)) {
                for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot delete " + dir, e);
            }
        }

        /** A finished job: its final record and its Slurm output. */
        static final class Run {
            final Job job;
            final String id;
            LocalSlurm.JobInfo end;
            String out = "";

            Run(Job job, String id) {
                this.job = job;
                this.id = id;
            }

            String describe() {
                return end + "\n--- job-" + id + ".out ---\n" + out + "\n" + cluster.slurm().logTails();
            }

            void assertCompleted() {
                assertEquals("COMPLETED", end.state(), this::describe);
                assertEquals("0:0", end.exitCode(), this::describe);
            }

            void assertLine(String line) {
                assertTrue(out.lines().anyMatch(l -> l.strip().equals(line)),
                        () -> "no line '" + line + "' in the job's output:\n" + describe());
            }

            /** No process on the machine belongs to this job (checked for up to 10 s: COMPLETED may come just before the last exit). */
            void assertNoProcessLeft() {
                List<Long> left = cluster.processesOfJob(id);
                for (int i = 0; i < 50 && !left.isEmpty(); i++) {
                    LocalSlurm.sleep(200);
                    left = cluster.processesOfJob(id);
                }
                List<Long> leftover = left;
                assertEquals(List.of(), leftover, () -> "processes of job " + id + " left: " + leftover + "\n" + describe());
            }

            /** The first line starting with {@code prefix} (empty if none). */
            String line(String prefix) {
                return out.lines().filter(l -> l.startsWith(prefix)).findFirst().orElse("");
            }
        }
    }
}
