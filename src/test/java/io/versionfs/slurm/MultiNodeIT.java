package io.versionfs.slurm;

import io.versionfs.capture.ManifestLine;
import io.versionfs.capture.Manifest;
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
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * versionfs in a job on two nodes (issue #22), on the two-node test cluster ({@link TwoNodeSlurm}):
 * two ranks, one per node, take turns rewriting and reading the target through a handshake of
 * files in the shared folder; every close on either node must be a version with its writer's host,
 * every read must see the other node's last write, and nothing may stay mounted on either node.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 200)
class MultiNodeIT {
    @RegisterExtension
    static final TwoNodeSlurm cluster = new TwoNodeSlurm();

    static final int ROUNDS = 3;

    /**
     * rank.sh TURNS [KILL_AT]: turn t belongs to rank t % 2 (rank 0 on node1, rank 1 on node2).
     * On its turn a rank waits for turn.t, reads the target (it must be the other rank's last
     * write), rewrites it, and hands over with turn.(t+1). With KILL_AT, rank 1 first kills its
     * node's agent at that turn and waits for the agent's wrapper to say it is gone.
     */
    static final String RANK = """
            #!/bin/bash
            set -u
            turns=$1; kill_at=${2:--1}; r=$SLURM_PROCID; n=$(hostname)
            ctl=job.gbw.versions/.versionfs/nodes/job-$SLURM_JOB_ID
            expect="initial"
            for t in $(seq 0 $((turns - 1))); do
              if [ $((t % 2)) -ne $r ]; then expect="t=$t by $( [ $r -eq 0 ] && echo node2 || echo node1 )"; continue; fi
              for i in $(seq 3000); do [ -e turn.$t ] && break; sleep 0.02; done
              if [ $t -eq $kill_at ]; then
                pid=$(sed 's/.*"pid":\\([0-9]*\\).*/\\1/' $ctl/ready.$n); kill -9 $pid; echo "KILLED agent $pid on $n"
                for i in $(seq 3000); do [ -e $ctl/gone.$n ] && break; sleep 0.02; done
              fi
              got=$(cat job.gbw)
              if [ "$got" = "$expect" ]; then echo "READ-OK $t $n"; else echo "READ-BAD $t $n: '$got' expected '$expect'"; fi
              echo "t=$t by $n" > job.gbw
              touch turn.$((t + 1))
            done
            """;

    @Test
    @Order(1)
    void everyCloseOnEitherNodeIsAVersionAndEachRankReadsTheOthersWrite(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        int turns = 2 * ROUNDS;
        NodeJob.Run run = job.submit(script(turns, -1));
        run.assertCompleted();
        run.assertLine("versionfs exit: 0");
        assertEquals(turns, run.count("READ-OK "), run::describe);
        assertEquals(0, run.count("READ-BAD "), run::describe);
        List<ManifestLine> saved = assertEachMatchesItsSha(job.dir.resolve("job.gbw.versions"), saved(job.dir.resolve("job.gbw.versions")));
        assertEquals(turns + 1, saved.size(), () -> "every close a version (+ initial): " + saved + run.describe());
        for (int i = 0; i < saved.size(); i++) {
            ManifestLine l = saved.get(i);
            assertEquals(i + 1, l.version(), () -> "numbers in order: " + saved);
            String content = Files.readString(job.dir.resolve("job.gbw.versions").resolve(l.path()));
            String want = i == 0 ? "initial\n" : "t=" + (i - 1) + " by node" + (i % 2 == 1 ? 1 : 2) + "\n";
            assertEquals(want, content, l::toString);
            assertEquals(i == 0 || i % 2 == 1 ? "node1" : "node2", l.host(), () -> "the writer's host: " + l);
        }
        assertFinal(job, "t=" + (turns - 1) + " by node2\n");
        assertTrue(run.out.contains("versions by node: {node1=" + (ROUNDS + 1) + ", node2=" + ROUNDS + "}"), run::describe);
        assertTrue(run.out.contains("versionfs: this job spans 2 nodes: one versionfs agent on each other node (node2), up and"
                + " checked in "), run::describe);
        assertQuietStop(run);
        assertNothingMounted(run);
        job.delete();
    }

    @Test
    @Order(2)
    void anAgentThatDiesCostsOnlyItsNodesVersions(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        int turns = 2 * ROUNDS, killAt = 3; // rank 1's second turn: its first close (turn 1) is versioned
        NodeJob.Run run = job.submit(script(turns, killAt));
        run.assertCompleted();
        run.assertLine("versionfs exit: 0");
        assertEquals(turns, run.count("READ-OK "), run::describe);
        assertTrue(run.out.contains("the versionfs agent on node2 ended early (exit 137"), run::describe);
        assertQuietStop(run); // neither the dead agent's wrapper ("Killed") nor its stop
        List<ManifestLine> saved = saved(job.dir.resolve("job.gbw.versions"));
        List<String> hosts = saved.stream().map(ManifestLine::host).toList();
        // initial, t=0 (node1), t=1 (node2), t=2 (node1), t=4 (node1): node2's t=3 and t=5 are not versioned
        assertEquals(List.of("node1", "node1", "node2", "node1", "node1"), hosts, () -> saved + run.describe());
        assertFinal(job, "t=" + (turns - 1) + " by node2\n");
        assertNothingMounted(run);
        job.delete();
    }

    /**
     * --keep-last on two nodes: a dropped version's number is held by an empty placeholder while
     * both nodes number (NodeNumbering); once the agents ended cleanly the placeholders go, so the
     * folder holds exactly the kept versions, each as its manifest says.
     */
    @Test
    @Order(4)
    void keepLastOnTwoNodesLeavesOnlyTheKeptVersions(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        int turns = 2 * ROUNDS;
        NodeJob.Run run = job.submit(script(turns, -1).replace("versionfs run ", "versionfs run --keep-last 2 --keep-first=false "));
        run.assertCompleted();
        run.assertLine("versionfs exit: 0");
        assertEquals(turns, run.count("READ-OK "), run::describe);
        Path vdir = job.dir.resolve("job.gbw.versions");
        List<String> files;
        try (Stream<Path> s = Files.list(vdir)) {
            files = s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("job.")).sorted().toList();
        }
        List<ManifestLine> latest = new ArrayList<>();
        io.versionfs.capture.LatestRows.each(vdir, skipped -> fail(skipped), latest::add);
        List<String> kept = assertEachMatchesItsSha(vdir, latest.stream().filter(ManifestLine::saved).toList())
                .stream().map(ManifestLine::path).toList();
        assertEquals(2, kept.size(), () -> "the newest 2 kept: " + kept + run.describe());
        assertEquals(kept.stream().sorted().toList(), files, () -> "no empty placeholder left beside them\n" + run.describe());
        assertFinal(job, "t=" + (turns - 1) + " by node2\n");
        assertNothingMounted(run);
        job.delete();
    }

    /** --on-version on two nodes: each node runs the command for the versions it saved, with its own log. */
    @Test
    @Order(5)
    void onVersionRunsForTheVersionsOfEveryNode(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        int turns = 2 * ROUNDS;
        NodeJob.Run run = job.submit(script(turns, -1).replace("versionfs run ",
                "versionfs run --on-version 'echo \"$VERSIONFS_VERSION $(hostname) $(cat \"$VERSIONFS_PATH\")\" >> hooked.$(hostname)' "));
        run.assertCompleted();
        run.assertLine("versionfs exit: 0");
        List<String> hooked = new ArrayList<>();
        for (String node : TwoNodeSlurm.NODES) hooked.addAll(job.read("hooked." + node).lines().toList());
        List<String> want = new ArrayList<>();
        Path vdir = job.dir.resolve("job.gbw.versions");
        for (ManifestLine l : assertEachMatchesItsSha(vdir, saved(vdir))) want.add(l.version() + " " + l.host() + " " + Files.readString(vdir.resolve(l.path())).strip());
        assertEquals(want.stream().sorted().toList(), hooked.stream().sorted().toList(),
                () -> "one hook per version, on the node that saved it, on its content\n" + run.describe());
        assertEquals(turns + 1, want.size(), run::describe);
        assertTrue(Files.exists(vdir.resolve("hooks.node2.log")), "node2's hooks log beside the batch node's");
        assertNothingMounted(run);
        job.delete();
    }

    /**
     * Atomic saves (a temp file renamed onto the target) made on node2, where no trap holds the
     * job's renames: the batch node notices each new file after the fact (it has been still for
     * a second) and copies the file it holds, not the name, so a save that lands during the copy
     * does not lose the one before it (3 of 5 were lost so).
     */
    @Test
    @Order(6)
    void atomicSavesOnTheOtherNodeAreNoticedOneByOne(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        job.write("save.sh", """
                #!/bin/bash
                if [ $SLURM_PROCID -eq 1 ]; then
                  for i in 1 2 3 4 5; do echo "save $i by $(hostname)" > job.tmp; mv job.tmp job.gbw; sleep 1.5; done
                fi
                """);
        NodeJob.Run run = job.submit("""
                #!/bin/bash
                #SBATCH -N 2
                #SBATCH --time=3
                echo initial > job.gbw
                versionfs run --target job.gbw -- srun -N2 --ntasks-per-node=1 ./save.sh
                echo "versionfs exit: $?"
                """);
        run.assertCompleted();
        run.assertLine("versionfs exit: 0");
        assertTrue(run.out.contains("replaced job.gbw with a new file"), run::describe);
        Path vdir = job.dir.resolve("job.gbw.versions");
        List<String> contents = new ArrayList<>();
        for (ManifestLine l : assertEachMatchesItsSha(vdir, saved(vdir))) contents.add(Files.readString(vdir.resolve(l.path())).strip());
        assertEquals(List.of("initial", "save 1 by node2", "save 2 by node2", "save 3 by node2", "save 4 by node2",
                "save 5 by node2"), contents, run::describe);
        assertFinal(job, "save 5 by node2\n");
        assertNothingMounted(run);
        job.delete();
    }

    /** Measured cost: the same two-node rewrite job, unwrapped and wrapped, timed inside one job. */
    @Test
    @Order(3)
    void costOfATwoNodeJob(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        int turns = 40;
        job.write("rank.sh", RANK);
        NodeJob.Run run = job.submit("""
                #!/bin/bash
                #SBATCH -N 2
                #SBATCH --time=3
                set -u
                echo initial > job.gbw; touch turn.0
                t0=$(date +%s.%N)
                srun -N2 --ntasks-per-node=1 ./rank.sh TURNS > plain.out
                t1=$(date +%s.%N)
                rm -f turn.*; echo initial > job.gbw; touch turn.0
                t2=$(date +%s.%N)
                versionfs run --target job.gbw -- srun -N2 --ntasks-per-node=1 ./rank.sh TURNS > wrapped.out
                t3=$(date +%s.%N)
                echo "COST TURNS closes over 2 nodes: unwrapped $(awk "BEGIN{print $t1 - $t0}") s, wrapped $(awk "BEGIN{print $t3 - $t2}") s"
                echo "reads ok: $(cat plain.out wrapped.out | grep -c READ-OK)"
                """.replace("TURNS", Integer.toString(turns)));
        run.assertCompleted();
        run.assertLine("reads ok: " + 2 * turns);
        System.out.println("[MultiNodeIT] " + run.line("COST"));
        job.delete();
    }

    private static String script(int turns, int killAt) {
        return """
                #!/bin/bash
                #SBATCH -N 2
                #SBATCH --time=3
                set -u
                echo initial > job.gbw
                touch turn.0
                versionfs run --target job.gbw -- srun -N2 --ntasks-per-node=1 ./rank.sh TURNS KILL
                echo "versionfs exit: $?"
                """.replace("TURNS", Integer.toString(turns)).replace("KILL", Integer.toString(killAt));
    }

    /**
     * Stopping the agents leaves nothing in the job's output: no slurmstepd "CANCELLED" line, no
     * srun "error:" or "Terminated"/"Killed" line, no shell's "Killed" (the stop file ends the
     * agents' step with exit 0).
     */
    static void assertQuietStop(NodeJob.Run run) {
        List<String> noise = run.out.lines().filter(l -> l.contains("CANCELLED") || l.contains("Killed")
                || l.contains("Terminated") || l.startsWith("srun: error") || l.contains("slurmstepd")).toList();
        assertEquals(List.of(), noise, () -> "Slurm's noise in the job's output when the agents stopped:\n" + run.describe());
    }

    private static List<ManifestLine> saved(Path vdir) throws IOException {
        List<ManifestLine> out = new ArrayList<>();
        for (ManifestLine l : Manifest.read(vdir)) if (l.saved()) out.add(l);
        return out;
    }

    /** Each of {@code lines}' version files in {@code vdir} has the sha256 its line says; returns {@code lines}. */
    private static List<ManifestLine> assertEachMatchesItsSha(Path vdir, List<ManifestLine> lines) throws Exception {
        for (ManifestLine l : lines) assertEquals(l.sha256(), sha256(vdir.resolve(l.path())), l::toString);
        return lines;
    }

    private static void assertFinal(NodeJob job, String content) throws IOException {
        Path t = job.dir.resolve("job.gbw");
        assertTrue(Files.isRegularFile(t, LinkOption.NOFOLLOW_LINKS), "job.gbw is a regular file at the end");
        assertEquals(content, Files.readString(t));
    }

    static void assertNothingMounted(NodeJob.Run run) {
        for (String node : TwoNodeSlurm.NODES) {
            List<String> left = TwoNodeSlurm.nodeMounts(node).stream().filter(m -> m.contains("versionfs")).toList();
            assertEquals(List.of(), left, () -> "mounts left on " + node + "\n" + run.describe());
            try (Stream<Path> s = Files.list(TwoNodeSlurm.nodeTmp(node))) {
                List<Path> dirs = s.filter(p -> p.getFileName().toString().startsWith("versionfs-")).toList();
                assertEquals(List.of(), dirs, () -> "mount folders left in /tmp of " + node);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        run.assertNoProcessLeft();
    }

    static String sha256(Path p) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
    }

    /** One job in its own folder of the shared filesystem, with rank.sh beside it. */
    static final class NodeJob {
        final TwoNodeSlurm cluster;
        final String name, label;
        final Path dir;

        NodeJob(TwoNodeSlurm cluster, TestInfo info) {
            this.cluster = cluster;
            name = info.getTestMethod().orElseThrow().getName();
            label = info.getTestClass().map(Class::getSimpleName).orElse("MultiNodeIT");
            dir = cluster.newJobDir(name);
            write("rank.sh", RANK);
        }

        Run submit(String script) {
            long t0 = System.nanoTime();
            JobScript.Ended e = JobScript.submitAndWait(cluster.slurm(), dir, cluster.jobEnv(), write("job.sh", script),
                    Duration.ofSeconds(150), null);
            Run run = new Run(e.id());
            run.end = e.end();
            run.out = e.out();
            System.out.println("[" + label + "] " + name + ": " + run.end + " (" + TwoNodeSlurm.secs(t0) + " from sbatch)\n"
                    + run.out.strip().indent(4));
            return run;
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

        String read(String file) {
            try {
                return Files.readString(dir.resolve(file));
            } catch (IOException e) {
                return "";
            }
        }

        void delete() {
            try (Stream<Path> walk = Files.walk(dir)) {
                for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                    p.toFile().setWritable(true);
                    Files.deleteIfExists(p);
                }
            } catch (IOException e) {
                throw new UncheckedIOException("cannot delete " + dir, e);
            }
        }

        final class Run {
            final String id;
            LocalSlurm.JobInfo end;
            String out = "";

            Run(String id) {
                this.id = id;
            }

            NodeJob job() {
                return NodeJob.this;
            }

            String describe() {
                return end + "\n--- job-" + id + ".out ---\n" + out + "\n" + cluster.slurm().logTails();
            }

            void assertCompleted() {
                assertEquals("COMPLETED", end.state(), this::describe);
                assertEquals("0:0", end.exitCode(), this::describe);
            }

            void assertLine(String line) {
                assertTrue(out.lines().anyMatch(l -> l.strip().equals(line)), () -> "no line '" + line + "':\n" + describe());
            }

            long count(String prefix) {
                return out.lines().filter(l -> l.startsWith(prefix)).count();
            }

            String line(String prefix) {
                return out.lines().filter(l -> l.startsWith(prefix)).findFirst().orElse("");
            }

            void assertNoProcessLeft() {
                List<Long> left = cluster.processesOfJob(id);
                for (int i = 0; i < 50 && !left.isEmpty(); i++) {
                    LocalSlurm.sleep(200);
                    left = cluster.processesOfJob(id);
                }
                List<Long> leftover = left;
                assertEquals(List.of(), leftover, () -> "processes of job " + id + " left: " + leftover + "\n" + describe());
            }
        }
    }
}
