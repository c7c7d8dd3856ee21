package io.versionfs.run;

import java.nio.file.Path;
import java.util.ArrayList;
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
        for (Bind b : bindSpecs(command)) {
            if (b.dst() == null || !folder.startsWith(b.src()) || b.dst().equals(b.src())) continue;
            return "the command binds " + b.src() + " at " + b.dst() + " in the container, but " + folder + "'s targets are"
                    + " symlinks into versionfs's mount by their path on this host, which the container does not have:"
                    + " bind the folder at its own path instead (" + bindOptions.get(0) + " " + b.src() + ":" + b.src() + ")";
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
        for (Bind b : bindSpecs(command)) {
            Path real;
            try {
                real = b.src().toRealPath();
            } catch (java.io.IOException e) {
                continue;
            }
            if (real.equals(b.src()) || !folder.startsWith(real)) continue;
            return "the command binds " + b.src() + ", which is " + real + " through a symlink: the target's link leads into"
                    + " versionfs's mount by " + real + ", which the container does not have; bind that path (" + bindOption(real)
                    + ") or start the job from it (cd " + real + ")";
        }
        return null;
    }

    /**
     * One host folder the command binds into the container: {@code src} absolute and normalised,
     * {@code dst} normalised, or null when the command names none (Charliecloud's {@code -b SRC}
     * and Apptainer's {@code -B SRC} put it at its own path; Podman's {@code -v PATH} alone is an anonymous volume).
     */
    record Bind(Path src, Path dst) {
    }

    /**
     * The binds the runtime's options ask for, in the order given: {@code -v SRC:DST},
     * {@code --volume=SRC:DST}, the joined {@code -vSRC:DST} (likewise {@code -b}, {@code -B}; Apptainer
     * takes several, comma-separated) and, for Podman and Apptainer, {@code --mount
     * type=bind,src=SRC,dst=DST}. Read from the runtime's own word on (a launcher's options before it
     * are not the runtime's: {@code srun -v}) up to {@code --}.
     */
    private List<Bind> bindSpecs(List<String> command) {
        List<Bind> binds = new ArrayList<>();
        for (int i = programAt(command) + 1; i < command.size() && !command.get(i).equals("--"); i++) {
            String w = command.get(i), next = i + 1 < command.size() ? command.get(i + 1) : null;
            String spec = optionValue(w, next, bindOptions);
            if (spec != null) {
                for (String one : spec.split(",")) addBind(binds, one.split(":"));
                continue;
            }
            String mount = this == PODMAN || this == APPTAINER ? optionValue(w, next, List.of("--mount")) : null;
            if (mount != null) addMount(binds, mount);
        }
        return binds;
    }

    /** {@code w}'s value if it is one of {@code options}: {@code -o VALUE}, {@code --opt=VALUE} or, short, {@code -oVALUE}; else null. */
    private static String optionValue(String w, String next, List<String> options) {
        for (String o : options) {
            if (w.equals(o)) return next;
            if (w.startsWith(o + "=")) return w.substring(o.length() + 1);
            if (o.length() == 2 && w.startsWith(o)) return w.substring(2); // o is "-x": w cannot be a long option
        }
        return null;
    }

    /** SRC[:DST[:OPTIONS]]: an empty SRC or DST is none. */
    private static void addBind(List<Bind> binds, String[] fields) {
        if (fields.length == 0 || fields[0].isEmpty()) return;
        String dst = fields.length > 1 && !fields[1].isEmpty() ? fields[1] : null;
        binds.add(bind(fields[0], dst));
    }

    /** {@code type=bind,src=SRC,dst=DST} (also source=, target=, destination=); other types bind no host folder. */
    private static void addMount(List<Bind> binds, String spec) {
        String type = null, src = null, dst = null;
        for (String kv : spec.split(",")) {
            int eq = kv.indexOf('=');
            if (eq < 0) continue;
            String key = kv.substring(0, eq), value = kv.substring(eq + 1);
            switch (key) {
                case "type" -> type = value;
                case "src", "source" -> src = value;
                case "dst", "destination", "target" -> dst = value;
                default -> { } // ro, relabel, bind-propagation...: nothing about where
            }
        }
        if ("bind".equals(type) && src != null && !src.isEmpty()) binds.add(bind(src, dst == null || dst.isEmpty() ? null : dst));
    }

    private static Bind bind(String src, String dst) {
        return new Bind(Path.of(src).toAbsolutePath().normalize(), dst == null ? null : Path.of(dst).normalize());
    }

    /** The index of the first word before {@code --} that names this runtime's program, else -1. */
    private int programAt(List<String> command) {
        for (int i = 0; i < command.size() && !command.get(i).equals("--"); i++) {
            String word = command.get(i);
            Path p = word.isEmpty() ? null : Path.of(word).getFileName();
            if (p != null && programs.contains(p.toString())) return i;
        }
        return -1;
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
