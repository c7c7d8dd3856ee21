package io.versionfs.run;

import org.junit.jupiter.api.Test;

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
