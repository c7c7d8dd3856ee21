package io.versionfs.cli;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Log;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/** Entry point: {@code versionfs run|mount|list}. */
@Command(name = "versionfs", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        subcommands = {RunCommand.class, AgentCommand.class, DoctorCommand.class, MountCommand.class, ListCommand.class, VerifyCommand.class, RestoreCommand.class, DiffCommand.class, HookCommand.class, PruneCommand.class, CommandLine.HelpCommand.class},
        description = {
                "Keep every version of a file that a program keeps overwriting.",
                "",
                "A small FUSE filesystem saves a version each time the program closes the file after",
                "writing it. close() waits for the save, so no version is missed or torn, however fast",
                "the program rewrites the file and however many processes it runs.",
                "",
                "Typical use, one line in a Slurm batch script:",
                "  exec versionfs run --target job.gbw -- orca job.inp",
                "",
                "Does it work on this cluster? 'versionfs doctor' checks FUSE, a test mount, the versions",
                "filesystem and the Slurm job, as you, and names each fix (send its output to your admins).",
                "",
                "Exit codes: the job's own (128+N if signal N killed it); versionfs's own failures:",
                "  200 internal error      201 usage error           202 bad target",
                "  203 versions folder     204 FUSE not available    205 mount failed",
                "  206 command not found   207 versions lost (job ok) 208 no space left",
                "  209 target in use by another versionfs run (nothing was changed)",
                "  on several nodes (the job was not started): 210 a node's job steps cannot see the",
                "  mount   211 an agent did not come up   212 Slurm refused the agents' step",
        })
public final class Main implements Runnable {
    @Override
    public void run() {
        CommandLine.usage(this, System.err);
    }

    public static void main(String[] args) {
        Log.phase("main");
        if (mounts(args)) io.versionfs.fs.FuseAhead.start();
        dropPrivateJar();
        int rc;
        try {
            rc = execute(args);
        } catch (OutOfMemoryError e) {
            rc = outOfMemory();
        }
        System.exit(rc);
    }

    /**
     * The commands that mount (run, mount, agent), unless only their help or version is asked:
     * their mount is prepared on a second thread while picocli parses (bench/README.md, "Fixed cost
     * of run -- true").
     */
    static boolean mounts(String[] args) {
        if (args.length == 0 || !(args[0].equals("run") || args[0].equals("mount") || args[0].equals("agent"))) return false;
        for (String a : args) {
            if (a.equals("--")) break;
            if (a.equals("-h") || a.equals("--help") || a.equals("-V") || a.equals("--version")) return false;
        }
        return true;
    }

    /** One line, and what to do, instead of a stack trace (the commands stream, but the heap is small). */
    private static int outOfMemory() {
        System.err.println("versionfs: error: out of memory (Java heap of " + (Runtime.getRuntime().maxMemory() >> 20)
                + " MiB; VERSIONFS_HEAP=1g raises it: please report what needed more)");
        return ExitCodes.INTERNAL;
    }

    /**
     * The launcher runs a private copy of the jar (so rebuilding versionfs cannot break running
     * jobs). The JVM has it open by now and keeps reading classes through the open file, so the
     * name can go at once: nothing is left in the temp folder, even after a SIGKILL.
     */
    private static void dropPrivateJar() {
        String p = System.getProperty("versionfs.privateJar");
        if (p == null) return;
        // jffi unpacks its native stub from the jar (by name) on first use: do that first.
        io.versionfs.sys.Posix.C.getpid();
        try {
            java.nio.file.Files.deleteIfExists(java.nio.file.Path.of(p));
        } catch (java.io.IOException e) {
            Log.debug("cannot remove " + p + ": " + e.getMessage());
        }
    }

    /**
     * The command line: with only the subcommand being run when the first argument names one,
     * else with every subcommand (help, --version, mistakes). picocli reflects over the options of
     * every command it is given, and its classes (compiled for Java 5) cannot go into the class-data
     * archive: building one subcommand instead of eleven saved ~0.1 s of CPU at every start. The
     * man pages and the bash completion are generated from this class's annotation at build time,
     * so that annotation stays the one list of subcommands; {@link Only} is this command without it.
     */
    static CommandLine commandLine(String... args) {
        Class<?> only = args.length > 0 ? subcommand(args[0]) : null;
        if (only == null) return new CommandLine(new Main());
        CommandLine cl = new CommandLine(new Only());
        cl.addSubcommand(only);
        return cl;
    }

    /**
     * The subcommand class of Main's annotation named {@code name} (not picocli's help), or null.
     * Found by its class name (run: RunCommand) and checked by its own annotation: reading Main's
     * annotation loads all eleven subcommand classes and parses their annotations, 6 % of the CPU
     * samples of a run of true. MainTest pins that this finds exactly the subcommands Main lists.
     */
    static Class<?> subcommand(String name) {
        if (name.isEmpty() || name.length() > 20) return null;
        for (int i = 0; i < name.length(); i++) if (name.charAt(i) < 'a' || name.charAt(i) > 'z') return null;
        String cls = Main.class.getPackageName() + "." + Character.toUpperCase(name.charAt(0)) + name.substring(1) + "Command";
        try {
            Class<?> c = Class.forName(cls, false, Main.class.getClassLoader());
            Command cmd = c.getAnnotation(Command.class);
            return cmd != null && cmd.name().equals(name) ? c : null;
        } catch (ClassNotFoundException e) {
            return null;
        }
    }

    /** The top command as {@link Main} declares it, without the subcommand list. */
    @Command(name = "versionfs", mixinStandardHelpOptions = true, versionProvider = Main.Version.class)
    static final class Only implements Runnable {
        @Override
        public void run() {
            new Main().run();
        }
    }

    public static int execute(String... args) {
        CommandLine cl = commandLine(args);
        cl.setUsageHelpWidth(100);
        cl.setParameterExceptionHandler((ex, a) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            String unknown = unknownOption(ex.getCommandLine(), a);
            String msg = unknown != null ? unknown : ex.getMessage();
            err.println("versionfs: error: " + msg + " (see: "
                    + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help)");
            err.flush();
            return ExitCodes.USAGE;
        });
        cl.setExecutionExceptionHandler((ex, c, parsed) -> {
            if (ex instanceof UserError ue) {
                System.err.println("versionfs: error: " + ue.getMessage());
                return ue.code;
            }
            System.err.println("versionfs: internal error: " + ex + " (please report this line; rerun with"
                    + " -Dversionfs.verbose=true for details)");
            if (Boolean.getBoolean("versionfs.verbose")) ex.printStackTrace();
            return ExitCodes.INTERNAL;
        });
        return cl.execute(args);
    }

    /**
     * The first option-looking argument (before "--") that the command does not know, with the
     * closest known one: "Missing required option --target" is the wrong thing to say to someone
     * who typed --taget.
     */
    static String unknownOption(CommandLine cl, String[] args) {
        java.util.Set<String> known = cl.getCommandSpec().optionsMap().keySet();
        boolean afterCommand = false;
        for (String a : args) {
            if (a.equals("--")) break;
            if (a.equals(cl.getCommandName())) {
                afterCommand = true;
                continue;
            }
            if (!afterCommand || !a.startsWith("-") || a.equals("-")) continue;
            String name = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
            if (known.contains(name)) continue;
            String best = null;
            int bestD = 3;
            for (String k : known) {
                int d = distance(name, k);
                if (d < bestD) {
                    bestD = d;
                    best = k;
                }
            }
            return "unknown option " + name + (best != null ? " (did you mean " + best + "?)" : "");
        }
        return null;
    }

    private static int distance(String a, String b) {
        int[] prev = new int[b.length() + 1], cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                cur[j] = Math.min(Math.min(cur[j - 1], prev[j]) + 1, prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    /**
     * {@code versionfs 0.3.0 (commit abc1234, built 2026-11-25)}: the version, the git commit and
     * the day of the build, from io/versionfs/build.properties (written by the build). Classes
     * run straight from an IDE without that filtering say "dev" and "unknown".
     */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            java.util.Properties p = new java.util.Properties();
            try (java.io.InputStream in = Main.class.getResourceAsStream("/io/versionfs/build.properties")) {
                if (in != null) p.load(in);
            } catch (java.io.IOException e) {
                Log.debug("cannot read build.properties: " + e.getMessage());
            }
            return new String[] {"versionfs " + value(p, "version", "dev") + " (commit " + value(p, "commit", "unknown")
                    + ", built " + value(p, "built", "unknown") + ")"};
        }

        /** A property, or {@code fallback} when absent, empty or left unfiltered ("${...}"). */
        private static String value(java.util.Properties p, String key, String fallback) {
            String v = p.getProperty(key, "").trim();
            return v.isEmpty() || v.startsWith("${") ? fallback : v;
        }
    }

    static {
        Log.debug("starting");
    }
}
