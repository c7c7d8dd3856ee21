package io.versionfs.cli;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.report.Log;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/** Entry point: {@code versionfs run|mount|list}. */
@Command(name = "versionfs", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        subcommands = {RunCommand.class, MountCommand.class, ListCommand.class, CommandLine.HelpCommand.class},
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
                "Exit codes: the job's own (128+N if signal N killed it); versionfs's own failures:",
                "  200 internal error      201 usage error           202 bad target",
                "  203 versions folder     204 FUSE not available    205 mount failed",
                "  206 command not found   207 versions lost (job ok) 208 no space left",
        })
public final class Main implements Runnable {
    @Override
    public void run() {
        CommandLine.usage(this, System.err);
    }

    public static void main(String[] args) {
        dropPrivateJar();
        System.exit(execute(args));
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

    public static int execute(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setUsageHelpWidth(100);
        cl.setParameterExceptionHandler((ex, a) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("versionfs: error: " + ex.getMessage() + " (see: "
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

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"versionfs " + (v == null ? "dev" : v)};
        }
    }

    static {
        Log.debug("starting");
    }
}
