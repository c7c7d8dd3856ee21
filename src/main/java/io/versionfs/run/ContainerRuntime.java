package io.versionfs.run;

import java.nio.file.Path;
import java.util.List;

/**
 * The container runtime a job's command starts, if any, recognised by the command's words (the
 * runtime may follow a launcher: {@code srun ch-run ...}, {@code mpirun -n 4 apptainer exec ...}).
 *
 * <p>Why it matters: in symlink mode the target is a symlink into versionfs's mount, by absolute
 * path. A container sees only what it binds: {@code ch-run} puts the host's {@code $TMPDIR} at
 * {@code /tmp} (not at its own path), Podman gives the container its own {@code /tmp}, Apptainer
 * binds {@code /tmp} and {@code $HOME} but not a {@code $TMPDIR} elsewhere. Every one of them binds
 * the job's working folder (the job cannot reach its own files otherwise), so with a runtime the
 * mount goes into a hidden folder beside the target ({@code .versionfs-NNN/}), which the container
 * then sees at the same path as the host when the folder is bound at its own path
 * ({@code -b $PWD -c $PWD}, {@code -v $PWD:$PWD -w $PWD}, Apptainer's default).
 */
enum ContainerRuntime {
    NONE(),
    CHARLIECLOUD("ch-run"),
    PODMAN("podman"),
    APPTAINER("apptainer", "singularity");

    private final List<String> programs;

    ContainerRuntime(String... programs) {
        this.programs = List.of(programs);
    }

    /** The first word of {@code command} that names a runtime's program (by its file name), else NONE. */
    static ContainerRuntime of(List<String> command) {
        if (command == null) return NONE;
        for (String word : command) {
            if (word.equals("--")) break; // what follows is the containerised program's own command line
            Path p = word.isEmpty() ? null : Path.of(word).getFileName();
            if (p == null) continue;
            for (ContainerRuntime r : values()) if (r.programs.contains(p.toString())) return r;
        }
        return NONE;
    }

    /** Whether the mount must be where the container sees it: in a hidden folder beside the target. */
    boolean mountsBesideTarget() {
        return this != NONE;
    }

    /** The name said on stderr and in the summary. */
    String shown() {
        return programs.isEmpty() ? "none" : programs.get(0);
    }
}
