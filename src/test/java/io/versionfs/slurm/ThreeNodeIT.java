package io.versionfs.slurm;

import io.versionfs.capture.Manifest;
import io.versionfs.capture.ManifestLine;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A job on three nodes: two agents, not one. The ranks (one per node) rewrite the target in turn
 * and each reads the write of the rank before it, so every close crosses a node: every close is a
 * version with its writer's host, numbered in order, and nothing stays mounted on any node.
 */
@Timeout(value = 200)
class ThreeNodeIT {
    static final List<String> NODES = List.of("node1", "node2", "node3");

    @RegisterExtension
    static final TwoNodeSlurm cluster = new TwoNodeSlurm(Map.of("VERSIONFS_SLURM2_NODES", "3"));

    /** rank.sh TURNS: turn t belongs to rank t % 3; it waits for turn.t, checks it reads turn t-1's write, rewrites. */
    static final String RANK = """
            #!/bin/bash
            set -u
            turns=$1; r=$SLURM_PROCID; n=$(hostname)
            for t in $(seq 0 $((turns - 1))); do
              [ $((t % 3)) -ne $r ] && continue
              for i in $(seq 3000); do [ -e turn.$t ] && break; sleep 0.02; done
              got=$(cat job.gbw)
              if [ $t -eq 0 ]; then expect=initial; else expect=$(cat wrote.$((t - 1))); fi
              if [ "$got" = "$expect" ]; then echo "READ-OK $t $n"; else echo "READ-BAD $t $n: '$got' expected '$expect'"; fi
              echo "t=$t by $n" > job.gbw
              echo "t=$t by $n" > wrote.$t
              touch turn.$((t + 1))
            done
            """;

    @Test
    void everyCloseOnAnyOfThreeNodesIsAVersionWithItsHost(TestInfo info) throws Exception {
        MultiNodeIT.NodeJob job = new MultiNodeIT.NodeJob(cluster, info);
        job.write("rank.sh", RANK);
        int turns = 9;
        MultiNodeIT.NodeJob.Run run = job.submit("""
                #!/bin/bash
                #SBATCH -N 3
                #SBATCH --time=3
                set -u
                echo initial > job.gbw
                touch turn.0
                versionfs run --target job.gbw -- srun -N3 --ntasks-per-node=1 ./rank.sh TURNS
                echo "versionfs exit: $?"
                """.replace("TURNS", Integer.toString(turns)));
        run.assertCompleted();
        run.assertLine("versionfs exit: 0");
        assertEquals(turns, run.count("READ-OK "), run::describe);
        assertTrue(run.out.contains("one versionfs agent on each other node (node2, node3)"), run::describe);

        Path vdir = job.dir.resolve("job.gbw.versions");
        List<ManifestLine> saved = new ArrayList<>();
        for (ManifestLine l : Manifest.read(vdir)) if (l.saved()) saved.add(l);
        assertEquals(turns + 1, saved.size(), () -> "every close a version (+ initial): " + saved + run.describe());
        for (int i = 0; i < saved.size(); i++) {
            ManifestLine l = saved.get(i);
            String host = i == 0 ? "node1" : NODES.get((i - 1) % 3);
            assertEquals(i + 1, l.version(), () -> "numbers in order: " + saved);
            assertEquals(host, l.host(), l::toString);
            assertEquals(i == 0 ? "initial\n" : "t=" + (i - 1) + " by " + host + "\n", Files.readString(vdir.resolve(l.path())));
            assertEquals(l.sha256(), MultiNodeIT.sha256(vdir.resolve(l.path())), l::toString);
        }
        Path t = job.dir.resolve("job.gbw");
        assertTrue(Files.isRegularFile(t, LinkOption.NOFOLLOW_LINKS), "job.gbw is a regular file at the end");
        assertEquals("t=" + (turns - 1) + " by node3\n", Files.readString(t));
        for (String node : NODES) {
            List<String> left = TwoNodeSlurm.nodeMounts(node).stream().filter(m -> m.contains("versionfs")).toList();
            assertEquals(List.of(), left, () -> "mounts left on " + node + "\n" + run.describe());
        }
        run.assertNoProcessLeft();
        job.delete();
    }
}
