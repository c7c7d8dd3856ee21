package io.versionfs.run;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

class ContainerRuntimeTest {
    @Test
    void recognisedByTheCommandsWordsBeforeTheContainersOwnCommand() {
        assertEquals(ContainerRuntime.CHARLIECLOUD, ContainerRuntime.of(List.of("ch-run", "-b", "/w", "img", "--", "orca", "job.inp")));
        assertEquals(ContainerRuntime.PODMAN, ContainerRuntime.of(List.of("/usr/bin/podman", "run", "img", "orca")));
        assertEquals(ContainerRuntime.APPTAINER, ContainerRuntime.of(List.of("srun", "apptainer", "exec", "orca.sif", "orca")));
        assertEquals(ContainerRuntime.APPTAINER, ContainerRuntime.of(List.of("mpirun", "-n", "4", "singularity", "exec", "x.sif", "cp2k")));
        assertEquals(ContainerRuntime.NONE, ContainerRuntime.of(List.of("orca", "job.inp")));
        assertEquals(ContainerRuntime.NONE, ContainerRuntime.of(List.of("sh", "-c", "podman run img")), "a word of a script is not the command");
        assertEquals(ContainerRuntime.NONE, ContainerRuntime.of(List.of("env", "--", "podman")), "after --: another program's command line");
    }

    @Test
    void aBindOfTheTargetsFolderAtAnotherPathIsSaid() {
        Path w = Path.of("/scratch/u/job");
        assertNotNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("podman", "run", "-v", "/scratch/u/job:/work", "img"), w));
        assertNotNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("podman", "run", "--volume=/scratch/u:/data:z", "img"), w), "a parent");
        assertNotNull(ContainerRuntime.APPTAINER.boundElsewhere(List.of("apptainer", "exec", "-B", "/opt:/opt,/scratch/u/job:/w", "x.sif"), w));
        assertNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("podman", "run", "-v", "/scratch/u/job:/scratch/u/job", "-w", "/scratch/u/job", "img"), w));
        assertNull(ContainerRuntime.CHARLIECLOUD.boundElsewhere(List.of("ch-run", "-b", "/scratch/u/job", "-c", "/scratch/u/job", "img"), w), "SRC alone: same path");
        assertNull(ContainerRuntime.CHARLIECLOUD.boundElsewhere(List.of("ch-run", "-b", "/other:/mnt/1", "img", "--", "-b", "/scratch/u/job:/x"), w),
                "another folder; after -- the job's own arguments");
    }

    @Test
    void theMountAndJoinedBindFormsAreReadToo() {
        Path w = Path.of("/scratch/u/job");
        assertNotNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("podman", "run", "--mount", "type=bind,src=/scratch/u/job,dst=/work", "img"), w));
        assertNotNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("podman", "run", "--mount=type=bind,source=/scratch/u,target=/data,ro=true", "img"), w));
        assertNotNull(ContainerRuntime.APPTAINER.boundElsewhere(List.of("apptainer", "exec", "--mount", "type=bind,destination=/w,source=/scratch/u/job", "x.sif"), w),
                "keys in any order");
        assertNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("podman", "run", "--mount", "type=bind,src=/scratch/u/job,dst=/scratch/u/job", "img"), w));
        assertNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("podman", "run", "--mount", "type=volume,src=/scratch/u/job,dst=/work", "img"), w),
                "not a bind of a host folder");
        assertNull(ContainerRuntime.CHARLIECLOUD.boundElsewhere(List.of("ch-run", "--mount", "type=bind,src=/scratch/u/job,dst=/work", "img"), w),
                "ch-run's --mount is a SquashFS mount point, not a bind");
        assertNotNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("podman", "run", "-v/scratch/u/job:/work", "img"), w));
        assertNotNull(ContainerRuntime.CHARLIECLOUD.boundElsewhere(List.of("ch-run", "-b/scratch/u/job:/work", "img"), w));
        assertNotNull(ContainerRuntime.APPTAINER.boundElsewhere(List.of("apptainer", "exec", "-B/opt:/opt,/scratch/u/job:/w", "x.sif"), w));
        assertNull(ContainerRuntime.CHARLIECLOUD.boundElsewhere(List.of("ch-run", "-b/scratch/u/job", "img"), w), "SRC alone: same path");
        assertNull(ContainerRuntime.PODMAN.boundElsewhere(List.of("srun", "-v/scratch/u/job:/work", "podman", "run", "img"), w),
                "a launcher's option before the runtime is not a bind");
    }

    @Test
    void aMountOrJoinedBindReachingTheFolderThroughASymlinkIsSaid(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Path real = java.nio.file.Files.createDirectory(tmp.resolve("real")).toRealPath();
        Path link = java.nio.file.Files.createSymbolicLink(tmp.resolve("link"), real);
        assertNotNull(ContainerRuntime.PODMAN.boundThroughLink(List.of("podman", "run", "--mount", "type=bind,src=" + link + ",dst=" + link, "img"), real));
        assertNotNull(ContainerRuntime.CHARLIECLOUD.boundThroughLink(List.of("ch-run", "-b" + link, "img"), real));
        assertNull(ContainerRuntime.PODMAN.boundThroughLink(List.of("podman", "run", "--mount", "type=tmpfs,dst=" + link, "img"), real));
    }

    @Test
    void aBindThatReachesTheFolderThroughASymlinkIsSaid(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Path real = java.nio.file.Files.createDirectory(tmp.resolve("real")).toRealPath();
        Path link = java.nio.file.Files.createSymbolicLink(tmp.resolve("link"), real);
        String said = ContainerRuntime.CHARLIECLOUD.boundThroughLink(List.of("ch-run", "-b", link.toString(), "-c", link.toString(), "img"), real);
        assertNotNull(said, "-b $PWD in a folder entered through a link");
        assertEquals(true, said.contains("-b " + real), said);
        assertNotNull(ContainerRuntime.PODMAN.boundThroughLink(List.of("podman", "run", "-v", link + ":" + link, "img"), real));
        assertNull(ContainerRuntime.CHARLIECLOUD.boundThroughLink(List.of("ch-run", "-b", real.toString(), "img"), real), "the real path");
        assertNull(ContainerRuntime.CHARLIECLOUD.boundThroughLink(List.of("ch-run", "-b", tmp.resolve("nowhere").toString(), "img"), real));
    }

    @Test
    void theTrapStaysOffOnlyWhereSetuidHelpersAreNeeded() {
        List<String> podman = List.of("podman", "run", "img");
        assertNull(ContainerRuntime.PODMAN.trapConflict(podman, true), "root needs no newuidmap");
        assertNotNull(ContainerRuntime.PODMAN.trapConflict(podman, false));
        assertNull(ContainerRuntime.CHARLIECLOUD.trapConflict(List.of("ch-run", "img"), false));
        assertNotNull(ContainerRuntime.APPTAINER.trapConflict(List.of("apptainer", "exec", "--fakeroot", "x.sif", "true"), false));
        assertNull(ContainerRuntime.APPTAINER.trapConflict(List.of("/nonexistent/bin/apptainer", "exec", "x.sif", "true"), false),
                "no setuid starter beside it: user namespace mode");
    }
}
