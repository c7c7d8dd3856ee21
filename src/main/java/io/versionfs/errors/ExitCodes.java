package io.versionfs.errors;

/**
 * Exit codes. {@code versionfs run} exits with the child's own code (0-125), or 128+N when signal
 * N killed the child, as a shell would. versionfs's own failures use 200-212: a range no common
 * program uses, so a script can always tell "versionfs could not do its job" from "the job failed".
 * These numbers are part of the interface: never renumber them.
 */
public final class ExitCodes {
    public static final int OK = 0;
    /** Unexpected internal error (a bug: please report it with the message). */
    public static final int INTERNAL = 200;
    /** Bad command line: unknown option, missing argument. */
    public static final int USAGE = 201;
    /** The target is unusable: its folder is missing or not writable, it is a directory, a path where a name is expected. */
    public static final int BAD_TARGET = 202;
    /** The versions folder cannot be created or written. */
    public static final int VERSIONS_DIR = 203;
    /** FUSE is not usable here: no /dev/fuse, no access to it, no fusermount, no libfuse2. */
    public static final int NO_FUSE = 204;
    /** Mounting failed: mountpoint missing, not a folder, not empty, busy, or a stale mount that cannot be cleared. */
    public static final int MOUNT_FAILED = 205;
    /** The command to run was not found or is not executable. */
    public static final int CHILD_NOT_FOUND = 206;
    /** The job finished (exit 0) but at least one version could not be saved (disk full, quota). */
    public static final int VERSIONS_LOST = 207;
    /** No space left to set up (copying the existing target into the backing store). */
    public static final int NO_SPACE = 208;
    /** Another versionfs run holds this target or versions folder (named in the message); nothing was changed. */
    public static final int BUSY = 209;
    /**
     * A job on several nodes: a new job step on a node does not see versionfs's mount there (each step
     * has its own mount namespace, as with the private-tmpdir SPANK plugin). The job was not started.
     */
    public static final int NODE_CANNOT_SEE_MOUNT = 210;
    /** A job on several nodes: the versionfs agent of a node did not say it was ready by the deadline, or ended before. */
    public static final int AGENT_NOT_READY = 211;
    /** A job on several nodes: Slurm refused the agents' step (srun failed, or is not on PATH). The job was not started. */
    public static final int STEP_REFUSED = 212;

    private ExitCodes() {}

    public static String describe(int code) {
        return switch (code) {
            case INTERNAL -> "internal error";
            case USAGE -> "usage error";
            case BAD_TARGET -> "bad target";
            case VERSIONS_DIR -> "versions folder unusable";
            case NO_FUSE -> "FUSE not available";
            case MOUNT_FAILED -> "mount failed";
            case CHILD_NOT_FOUND -> "command not found";
            case VERSIONS_LOST -> "versions lost";
            case NO_SPACE -> "no space left";
            case BUSY -> "target in use by another run";
            case NODE_CANNOT_SEE_MOUNT -> "a node's job steps cannot see the mount";
            case AGENT_NOT_READY -> "an agent on another node did not come up";
            case STEP_REFUSED -> "Slurm refused the agents' step";
            default -> "exit " + code;
        };
    }
}
