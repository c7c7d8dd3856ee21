package io.versionfs.slurm;

import io.versionfs.slurm.MultiNodeIT.NodeJob;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A cluster whose every job step gets its own mount namespace with a private /dev/shm, as the
 * private-tmpdir SPANK plugin gives real sites (slurm/test/private-tmp-spank.c, enabled by
 * two-nodes-up.sh for this class only): a mount made by one step is invisible to every other.
 * versionfs must see it with its probe step and refuse to start the job, in one line.
 */
@Timeout(value = 200)
class PrivateStepNamespaceIT {
    /** The node-private folder each step gets afresh; the jobs' TMPDIR, so the mounts go there. */
    static final String PRIVATE = "/dev/shm";

    @RegisterExtension
    static final TwoNodeSlurm cluster = new TwoNodeSlurm(Map.of("VERSIONFS_SLURM2_PRIVATE_TMP", PRIVATE));

    @Test
    void aNodeWhoseStepsCannotSeeTheMountEndsTheRunBeforeTheJob(TestInfo info) throws Exception {
        NodeJob job = new NodeJob(cluster, info);
        NodeJob.Run run = job.submit("""
                #!/bin/bash
                #SBATCH -N 2
                #SBATCH --time=3
                set -u
                export TMPDIR=PRIVATE
                echo initial > job.gbw
                # The plugin is on: a file one step leaves in PRIVATE is not there for the next step.
                srun -N1 -w node2 touch PRIVATE/left-by-step
                srun -N1 -w node2 sh -c 'test -e PRIVATE/left-by-step && echo "steps share PRIVATE" || echo "steps have their own PRIVATE"'
                versionfs run --target job.gbw -- srun -N2 --ntasks-per-node=1 sh -c 'echo ran > ran.$SLURM_PROCID' 2> vfs.err
                echo "versionfs exit: $?"
                # The mount folder on the shared filesystem: the same, the namespace hides the mount, not the path.
                mkdir -p mnt
                versionfs run --mount-dir "$PWD/mnt" --target job.gbw -- srun -N2 --ntasks-per-node=1 sh -c 'echo ran > ran.$SLURM_PROCID' 2> vfs-shared.err
                echo "versionfs --mount-dir exit: $?"
                """.replace("PRIVATE", PRIVATE));
        run.assertCompleted();
        run.assertLine("steps have their own " + PRIVATE);
        run.assertLine("versionfs exit: 210");
        String err = job.read("vfs.err");
        List<String> errors = err.lines().filter(l -> l.startsWith("versionfs: error:")).toList();
        assertEquals(1, errors.size(), () -> "one error line:\n" + err + run.describe());
        assertEquals(List.of(errors.get(0)), err.lines().toList(), () -> "nothing but the error line:\n" + err + run.describe());
        String line = errors.get(0);
        System.out.println("[PrivateStepNamespaceIT] " + line);
        for (String part : List.of("on node1, node2 a new job step does not see versionfs's mount", "own mount namespace",
                "private-tmpdir", "the job was not started", "job.gbw is unchanged", "Fix: ask the admins for Slurm's"
                        + " job_container/tmpfs", "run the target's readers and writers in the batch script itself")) {
            assertTrue(line.contains(part), () -> "'" + part + "' in: " + line);
        }
        assertFalse(err.contains("---- summary ----"), () -> "no summary for a job never started:\n" + err);
        run.assertLine("versionfs --mount-dir exit: 210");
        assertTrue(job.read("vfs-shared.err").contains("versionfs: error: on node1, node2 a new job step does not see"),
                () -> job.read("vfs-shared.err"));
        try (var s = Files.list(job.dir.resolve("mnt"))) {
            assertEquals(List.of(), s.toList(), "the mount folder on the shared filesystem is removed");
        }
        try (var s = Files.list(job.dir)) {
            assertEquals(List.of(), s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("ran.")).toList(),
                    "the job was not started");
        }
        Path t = job.dir.resolve("job.gbw");
        assertTrue(Files.isRegularFile(t, LinkOption.NOFOLLOW_LINKS), "job.gbw is a regular file again");
        assertEquals("initial\n", Files.readString(t));
        MultiNodeIT.assertNothingMounted(run);
        job.delete();
    }
}
