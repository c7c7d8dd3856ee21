package io.versionfs.cli;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.run.RunSession;
import io.versionfs.run.StoreRules;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code versionfs run}: the batch-job wrapper. */
@Command(name = "run", mixinStandardHelpOptions = true, sortOptions = false,
        description = {
                "Run COMMAND with TARGET versioned: every close() after a write saves a version.",
                "",
                "versionfs mounts a capture filesystem in a private folder, replaces TARGET by a",
                "symlink into it, and runs COMMAND (same folder, same environment, same stdin/out/err).",
                "When COMMAND ends - normally, with an error, or killed - versionfs saves unclosed",
                "changes, unmounts, turns TARGET back into a regular file with the final content,",
                "prints a summary on stderr, and exits with COMMAND's exit code (128+N for signal N).",
                "",
                "Versions: TARGET.versions/NAME.000001.EXT, ... and manifest.jsonl (one JSON line each).",
                "An existing TARGET is kept as version 1 (reason 'initial') and is what COMMAND reads.",
                "",
                "Modes:",
                "  symlink  TARGET becomes a symlink into a private mount. The job's rename, unlink and",
                "           link calls are held (seccomp user notification) while versionfs does them, as",
                "           close() waits for a version: a file renamed onto TARGET (temp file + rename,",
                "           atomic saves) is a version; TARGET renamed away (ORCA AutoStart: job.gbw ->",
                "           job.ges) or deleted leaves a regular file at the new name, and the job's next",
                "           TARGET is versioned on, in the same series. Moving or deleting the versions",
                "           folder or a folder TARGET is in is refused (EBUSY) while the job runs. Where",
                "           the kernel refuses the trap (or with --no-trap) versionfs follows renames",
                "           after the fact, as stderr says; a program that creates TARGET with",
                "           O_CREAT|O_EXCL (Fortran STATUS='NEW') then needs --mode dir.",
                "  dir      The job's working folder itself is served through versionfs, at the same path.",
                "           Renames, deletes and atomic saves are all captured. TARGETs are names or",
                "           globs ('*.gbw') inside the working folder; each file gets NAME.versions/.",
                "",
                "Containers: when COMMAND runs ch-run, podman, apptainer or singularity (also after srun or",
                "mpirun), the mount goes into a hidden .versionfs-NNN folder beside TARGET, which the container",
                "sees when it binds the job's folder at its own path (ch-run -b $PWD -c $PWD, podman -v $PWD:$PWD).",
                "",
                "Signals TERM, INT, HUP, USR1, USR2 are forwarded to COMMAND. After TERM/INT/HUP",
                "COMMAND gets --grace seconds, then SIGKILL, so versionfs can finish inside Slurm's",
                "KillWait. Processes COMMAND leaves behind get TERM, then KILL.",
                "",
                "Several nodes (symlink mode, a Slurm allocation of N > 1 nodes): one versionfs agent per",
                "other node (one srun --overlap step) mounts at the same path there; a probe step checks",
                "that a new step on every node sees the mount. The job is not started, TARGET is left as",
                "it was, and one line names the node and the fix when a node's steps cannot see the mount",
                "(exit 210), an agent is not ready within $VERSIONFS_AGENT_DEADLINE seconds (default 60)",
                "or ended before (211), or Slurm refuses the agents' step or srun is missing (212).",
                "See slurm/README.md, 'Jobs on several nodes'.",
                "",
                "Example (sbatch script):  exec versionfs run --target job.gbw -- orca job.inp",
        })
final class RunCommand implements Callable<Integer> {
    @Option(names = {"-t", "--target"}, required = true, paramLabel = "TARGET",
            description = "File to version (path; need not exist yet), or a glob ('*.gbw'). Repeatable.")
    List<Path> targets;

    @Option(names = "--mode", paramLabel = "MODE", defaultValue = "symlink",
            description = "symlink (default) or dir. See 'Modes' above.")
    String mode;

    @Option(names = "--versions-dir", paramLabel = "DIR",
            description = "Folder for the versions (default: TARGET.versions beside each target).")
    Path versionsDir;

    @Option(names = "--mount-dir", paramLabel = "DIR",
            description = {"Where to create the private mount folder (default: $SLURM_TMPDIR, $TMPDIR, /tmp; when COMMAND",
                    "runs ch-run, podman, apptainer or singularity: a hidden .versionfs-NNN folder beside the target,",
                    "which the container sees when it binds the job's folder at its own path)."})
    Path mountDir;

    @Option(names = "--grace", paramLabel = "SECONDS", defaultValue = "10",
            description = "After forwarding TERM/INT/HUP, wait this long for COMMAND before SIGKILL (default: ${DEFAULT-VALUE}).")
    long graceSeconds;

    @Option(names = "--no-follow", description = {"Symlink mode: do not follow a rename-away or delete of TARGET (see",
            "'Renames' above): warn instead, and version nothing after it."})
    boolean noFollow;

    @Option(names = "--no-trap", description = {"Symlink mode: do not hold the job's rename/unlink/link calls (seccomp);",
            "follow them after the fact instead. For a job whose setuid programs must keep working as an",
            "ordinary user (the trap sets no_new_privs), or a kernel where it misbehaves. See 'Renames'."})
    boolean noTrap;

    @Option(names = "--strict", description = {"Exit 207 when the job succeeded but a version was lost (disk full,",
            "quota, written past versionfs). Default: the job's own exit code; losses are in the summary,",
            "the manifest and on stderr either way."})
    boolean strict;

    @Mixin
    KeepRuleOptions keep = new KeepRuleOptions();

    @Option(names = "--min-free", paramLabel = "SIZE", description = {"Headroom on the versions filesystem: a version",
            "that would leave less free (counting what the file's next rewrite needs) is skipped and",
            "counted, never the job's own write (default: 5%% of the filesystem, at most 10G; 0 turns it off).",
            "Applies to your user/group quota too where the kernel shows it (ext4, XFS)."})
    String minFree;

    @Option(names = "--on-version", paramLabel = "CMD", description = {"After each version is saved and hashed, run CMD",
            "(sh -c, nice 10, never inside the program's close()) with VERSIONFS_PATH, VERSIONFS_VERSION and",
            "VERSIONFS_TARGET set; output to hooks.log in the versions folder, exit status in the manifest.",
            "Example: --on-version 'orca_2mkl \"$${VERSIONFS_PATH%%.gbw}\" -molden'"})
    String onVersion;

    @Option(names = "--on-version-jobs", paramLabel = "N", defaultValue = "1",
            description = "How many --on-version commands may run at once per versions folder (default 1).")
    int onVersionJobs;

    @Option(names = {"-q", "--quiet"}, description = {"No progress while the job runs (on a terminal: one updating line;",
            "otherwise, e.g. a Slurm output file: one line per minute when there are new versions)."})
    boolean quiet;

    @Option(names = "--json", description = "Also print the summary as one JSON document on stdout.")
    boolean json;

    @Parameters(paramLabel = "COMMAND", arity = "1..*", description = "The program and its arguments, after --.")
    List<String> command;

    @Override
    public Integer call() {
        io.versionfs.text.Log.phase("command line parsed");
        RunSession.Mode m = switch (mode) {
            case "symlink" -> RunSession.Mode.SYMLINK;
            case "dir", "directory" -> RunSession.Mode.DIR;
            default -> throw new UserError(ExitCodes.USAGE, "--mode must be symlink or dir, not '" + mode + "'");
        };
        if (graceSeconds < 0 || graceSeconds > 86_400) {
            throw new UserError(ExitCodes.USAGE, "--grace must be between 0 and 86400 seconds, not " + graceSeconds
                    + " (the time the job gets between TERM and KILL)");
        }
        StoreRules rules = new StoreRules(keep.policy(), minFree == null ? -1 : Units.size("--min-free", minFree), onVersion,
                Math.max(1, onVersionJobs));
        return new RunSession(new RunSession.Options(targets, m, versionsDir, mountDir, command, graceSeconds * 1000,
                new RunSession.Renames(!noFollow, !noTrap), rules, new RunSession.Output(json, !quiet, strict))).execute();
    }
}
