package io.versionfs.slurm;

import io.versionfs.slurm.MultiNodeIT.NodeJob;
import io.versionfs.text.Json;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What goes wrong on the other node of a two-node job, made for real in node2's own mount
 * namespace (entered through its slurmd): a versionfs install that hangs there (a FIFO bound over
 * the jar: reading it blocks, as on a hung filesystem), a /dev/fuse that is no FUSE device, and a
 * step Slurm refuses. Each run must end before the job starts, in one line naming node2 and the
 * cause, with its own exit code, the target intact and nothing mounted; doctor must name the node.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 240)
class NodeFaultsIT {
    @RegisterExtension
    static final TwoNodeSlurm cluster = new TwoNodeSlurm();

    static final Path JAR = Path.of("target/versionfs.jar").toAbsolutePath();
    /** The java binary the launcher runs (through /usr/bin/java and the alternatives links). */
    static final Path JAVA = javaBinary();

    /** A job that would write job.gbw on both nodes: ran.N says the job started. */
    static final String JOB = """
            #!/bin/bash
            #SBATCH -N 2
            #SBATCH --time=3
            set -u
            echo initial > job.gbw
            EXPORTS
            versionfs run --target job.gbw -- srun -N2 --ntasks-per-node=1 sh -c 'echo ran > ran.$SLURM_PROCID' 2> vfs.err
            echo "versionfs exit: $?"
            """;

    @Test
    @Order(1)
    void anAgentThatHangsPastTheDeadlineEndsTheRunBeforeTheJob(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        // On node2 java hangs (as on a software stack served by a filesystem that stopped answering).
        Path hang = job.write("hanging-java", "#!/bin/sh\nexec sleep 290\n");
        NodeJob.Run run;
        try (NodeBind b = new NodeBind("node2", hang, JAVA)) {
            run = job.submit(JOB.replace("EXPORTS", "export VERSIONFS_AGENT_DEADLINE=5"));
        }
        assertRefusedCleanly(run, 211, "the versionfs agent on node2 did not say it was ready within 5 s"
                + " (VERSIONFS_AGENT_DEADLINE)", "hangs there", "the job was not started", "job.gbw is unchanged",
                "Fix: run 'versionfs doctor' inside the allocation", "raise VERSIONFS_AGENT_DEADLINE");
        job.delete();
    }

    @Test
    @Order(2)
    void anAgentThatCannotStartEndsTheRunBeforeTheJob(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        // On node2 the jar is no file (an install that is incomplete there): the launcher says so and exits 200.
        NodeJob.Run run;
        try (NodeBind b = new NodeBind("node2", Path.of("/dev/null"), JAR)) {
            run = job.submit(JOB.replace("EXPORTS", ""));
        }
        assertRefusedCleanly(run, 211, "the versionfs agent on node2 ended before it was ready (exit 200: versionfs: error: ",
                "/target/versionfs.jar not found: build it first", "the job was not started", "job.gbw is unchanged", "Fix: run 'versionfs doctor'");
        job.delete();
    }

    @Test
    @Order(3)
    void aStepSlurmRefusesEndsTheRunBeforeTheJob(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        // srun reads SLURM_CONSTRAINT as --constraint: slurmctld refuses every step of this job.
        NodeJob.Run run = job.submit(JOB.replace("EXPORTS", "export SLURM_CONSTRAINT=nosuchfeature"));
        assertRefusedCleanly(run, 212, "Slurm refused the step that starts the versionfs agents on node2 (srun exit 1: srun:"
                + " error: Unable to create step", "the job was not started", "job.gbw is unchanged", "Fix: ");
        job.delete();
    }

    @Test
    @Order(4)
    void noSrunOnPathEndsTheRunBeforeTheJob(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        // Every command of the machine but srun (as a PATH that misses Slurm's bin folder).
        NodeJob.Run run = job.submit(JOB.replace("EXPORTS", """
                mkdir nosrun
                for f in /usr/bin/* /usr/sbin/*; do [ "${f##*/}" = srun ] || ln -sf "$f" nosrun/; done
                export PATH=$(dirname "$(command -v versionfs)"):$PWD/nosrun
                command -v srun || echo "no srun on PATH"
                """).replace("-- srun -N2 --ntasks-per-node=1 sh -c", "-- sh -c")); // the job's own command is found
        run.assertLine("no srun on PATH");
        assertRefusedCleanly(run, 212, "this job spans 2 nodes but srun is not on PATH", "the job was not started and the"
                + " target is unchanged", "Fix: put Slurm's commands on PATH");
        job.delete();
    }

    @Test
    @Order(5)
    void doctorChecksEveryNodeAndNamesTheOneWithoutFuse(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        Path notFuse = job.dir.resolve("not-fuse");
        Files.writeString(notFuse, "");
        try (NodeBind b = new NodeBind("node2", notFuse, Path.of("/dev/fuse"))) {
            NodeJob.Run run = job.submit("""
                    #!/bin/bash
                    #SBATCH -N 2
                    #SBATCH --time=3
                    versionfs doctor > doctor.txt 2> doctor.err
                    echo "doctor exit: $?"
                    versionfs doctor --json > doctor.json 2>> doctor.err
                    echo "doctor --json exit: $?"
                    """);
            run.assertCompleted();
            run.assertLine("doctor exit: 205");
            run.assertLine("doctor --json exit: 205");
            String table = job.read("doctor.txt");
            System.out.println("[NodeFaultsIT] doctor in a two-node job:\n" + table.indent(4));
            List<String> node1 = table.lines().filter(l -> l.startsWith("node node1 ")).toList();
            List<String> node2 = table.lines().filter(l -> l.startsWith("node node2 ")).toList();
            assertEquals(1, node1.size(), () -> "one line for node1:\n" + table);
            assertEquals(1, node2.size(), () -> "one line for node2:\n" + table);
            assertTrue(node1.get(0).matches("node node1 +ok +every check passed there"), node1::toString);
            assertTrue(node2.get(0).matches("node node2 +FAIL +test mount: .*"), node2::toString);
            assertTrue(table.lines().anyMatch(l -> l.startsWith("test mount") && l.contains(" ok ")),
                    () -> "the local checks (node1, the batch node) are there too:\n" + table);
            @SuppressWarnings("unchecked")
            List<Map<String, Object>> nodes = (List<Map<String, Object>>) Json.parseObject(job.read("doctor.json")).get("nodes");
            assertEquals(List.of("node1", "node2"), nodes.stream().map(n -> n.get("node")).toList());
            assertEquals(Boolean.TRUE, nodes.get(0).get("ok"));
            assertEquals(Boolean.FALSE, nodes.get(1).get("ok"));
            assertEquals(205, ((Number) nodes.get(1).get("exit")).intValue());
            MultiNodeIT.assertNothingMounted(run); // and no process of the job left
        }
        job.delete();
    }

    // ---- helpers -------------------------------------------------------------------------------

    private static Path javaBinary() {
        try {
            return Path.of(System.getenv().getOrDefault("JAVA_HOME", "/usr"), "bin", "java").toRealPath();
        } catch (IOException e) {
            throw new IllegalStateException("no java under $JAVA_HOME or /usr/bin", e);
        }
    }

    /**
     * A run refused before the job: the job step ended cleanly and versionfs with {@code code}, its
     * stderr is one error line holding each of {@code parts} (and no summary), no rank started
     * (no ran.N), job.gbw is the regular file it was, and nothing is mounted or left running on
     * either node.
     */
    private static void assertRefusedCleanly(NodeJob.Run run, int code, String... parts) throws IOException {
        NodeJob job = run.job();
        run.assertCompleted();
        run.assertLine("versionfs exit: " + code);
        String err = job.read("vfs.err");
        List<String> errors = err.lines().filter(l -> l.startsWith("versionfs: error:")).toList();
        assertEquals(1, errors.size(), () -> "one error line:\n" + err + run.describe());
        assertEquals(List.of(errors.get(0)), err.lines().toList(), () -> "nothing but the error line:\n" + err + run.describe());
        assertFalse(err.contains("---- summary ----"), () -> "no summary for a job never started:\n" + err);
        String line = errors.get(0);
        System.out.println("[NodeFaultsIT] " + line);
        for (String part : parts) assertTrue(line.contains(part), () -> "'" + part + "' in: " + line);
        try (var s = Files.list(job.dir)) {
            assertEquals(List.of(), s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("ran.")).toList(),
                    () -> "the job was not started\n" + run.describe());
        }
        Path t = job.dir.resolve("job.gbw");
        assertTrue(Files.isRegularFile(t, LinkOption.NOFOLLOW_LINKS), "job.gbw is a regular file again");
        assertEquals("initial\n", Files.readString(t));
        MultiNodeIT.assertNothingMounted(run);
    }

    private static void run(List<String> cmd) {
        LocalSlurm.Result r = LocalSlurm.run(cmd, Path.of("").toAbsolutePath(), Map.of(), Duration.ofSeconds(30));
        if (r.rc() != 0) throw new AssertionError(String.join(" ", cmd) + ": exit " + r.rc() + ": " + r.out() + r.err());
    }

    /** {@code source} bound over {@code target} in one node's mount namespace only, until closed. */
    private static final class NodeBind implements AutoCloseable {
        private final String pid, target;

        NodeBind(String node, Path source, Path target) {
            this.pid = Long.toString(TwoNodeSlurm.slurmdPid(node));
            this.target = target.toString();
            run(List.of("nsenter", "-t", pid, "-m", "mount", "--bind", source.toString(), this.target));
        }

        @Override
        public void close() {
            run(List.of("nsenter", "-t", pid, "-m", "umount", target));
        }
    }
}
