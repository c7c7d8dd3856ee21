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
    NONE(List.of()),
    CHARLIECLOUD(List.of("-b", "--bind"), "ch-run"),
    PODMAN(List.of("-v", "--volume"), "podman"),
    APPTAINER(List.of("-B", "--bind"), "apptainer", "singularity");

    private final List<String> programs;
    /** The options that bind a host folder into the container: SRC[:DST[:OPTIONS]] (Apptainer: several, comma-separated). */
    private final List<String> bindOptions;

    ContainerRuntime(List<String> bindOptions, String... programs) {
        this.bindOptions = bindOptions;
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

    /**
     * Why the name trap must stay off for this command, or null. The trap sets no_new_privs on
     * the job, and with it the kernel ignores setuid bits and file capabilities: rootless Podman
     * then cannot map its user namespace ({@code newuidmap: write to uid_map failed: Operation
     * not permitted}, tried here), and a setuid Apptainer starter or {@code --fakeroot} (newuidmap
     * again) cannot either. Root needs neither; Charliecloud and Apptainer's default user
     * namespace mode use no setuid helper at all.
     */
    String trapConflict(List<String> command, boolean root) {
        if (root) return null;
        if (this == PODMAN) {
            return "rootless podman maps its user namespace with the setuid newuidmap, which the trap's no_new_privs disables";
        }
        if (this == APPTAINER && (command.contains("--fakeroot") || setuidStarter(command))) {
            return shown() + (command.contains("--fakeroot") ? " --fakeroot maps its user namespace with the setuid newuidmap"
                    : " is installed setuid (starter-suid)") + ", which the trap's no_new_privs disables";
        }
        return null;
    }

    /** PREFIX/libexec/{apptainer,singularity}/bin/starter-suid beside PREFIX/bin/apptainer, with its setuid bit. */
    private boolean setuidStarter(List<String> command) {
        for (String word : command) {
            Path p = Path.of(word).getFileName();
            if (p == null || !programs.contains(p.toString())) continue;
            Path exe = word.contains("/") ? Path.of(word) : onPath(word);
            if (exe == null) return false;
            try {
                Path prefix = exe.toRealPath().getParent().getParent();
                for (String name : programs) {
                    Path starter = prefix.resolve("libexec/" + name + "/bin/starter-suid");
                    if (java.nio.file.Files.exists(starter)
                            && (((Integer) java.nio.file.Files.getAttribute(starter, "unix:mode")) & 04000) != 0) return true;
                }
            } catch (java.io.IOException | RuntimeException e) {
                return false;
            }
            return false;
        }
        return false;
    }

    private static Path onPath(String program) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path p = Path.of(d.isEmpty() ? "." : d, program);
            if (java.nio.file.Files.isExecutable(p)) return p;
        }
        return null;
    }

    /**
     * The warning for a bind that shows {@code folder} (a target's) at another path in the
     * container ({@code -v $PWD:/work}), or null: the target's symlink leads into the mount by
     * its absolute host path, which does not exist in there.
     */
    String boundElsewhere(List<String> command, Path folder) {
        for (int i = 0; i < command.size() && !command.get(i).equals("--"); i++) {
            String w = command.get(i), spec = null;
            for (String o : bindOptions) {
                if (w.equals(o) && i + 1 < command.size()) spec = command.get(i + 1);
                else if (w.startsWith(o + "=")) spec = w.substring(o.length() + 1);
            }
            if (spec == null) continue;
            for (String one : spec.split(",")) {
                String[] f = one.split(":");
                if (f.length < 2 || f[0].isEmpty() || f[1].isEmpty()) continue;
                Path src = Path.of(f[0]).toAbsolutePath().normalize(), dst = Path.of(f[1]).normalize();
                if (!folder.startsWith(src) || dst.equals(src)) continue;
                return "the command binds " + src + " at " + dst + " in the container, but " + folder + "'s targets are"
                        + " symlinks into versionfs's mount by their path on this host, which the container does not have:"
                        + " bind the folder at its own path instead (" + bindOptions.get(0) + " " + src + ":" + src + ")";
            }
        }
        return null;
    }

    /**
     * The warning for a bind whose source reaches {@code folder} (a target's, as the kernel
     * resolves it) through a symlink ({@code /home -> /gpfs/home}; {@code -b $PWD} in a folder
     * entered through a link), or null: the container has the folder at the link's path only,
     * while the target's symlink leads into the mount by the resolved path.
     */
    String boundThroughLink(List<String> command, Path folder) {
        for (int i = 0; i < command.size() && !command.get(i).equals("--"); i++) {
            String w = command.get(i), spec = null;
            for (String o : bindOptions) {
                if (w.equals(o) && i + 1 < command.size()) spec = command.get(i + 1);
                else if (w.startsWith(o + "=")) spec = w.substring(o.length() + 1);
            }
            if (spec == null) continue;
            for (String one : spec.split(",")) {
                String s = one.split(":")[0];
                if (s.isEmpty()) continue;
                Path src = Path.of(s).toAbsolutePath().normalize(), real;
                try {
                    real = src.toRealPath();
                } catch (java.io.IOException e) {
                    continue;
                }
                if (real.equals(src) || !folder.startsWith(real)) continue;
                return "the command binds " + src + ", which is " + real + " through a symlink: the target's link leads into"
                        + " versionfs's mount by " + real + ", which the container does not have; bind that path (" + bindOption(real)
                        + ") or start the job from it (cd " + real + ")";
            }
        }
        return null;
    }

    /** The option that binds {@code dir} at its own path in the container. */
    String bindOption(Path dir) {
        return this == CHARLIECLOUD ? "-b " + dir : bindOptions.isEmpty() ? "" : bindOptions.get(0) + " " + dir + ":" + dir;
    }

    /** The name said on stderr and in the summary. */
    String shown() {
        return programs.isEmpty() ? "none" : programs.get(0);
    }
}
