package io.versionfs.run;

import io.versionfs.sys.JvmEnv;
import io.versionfs.sys.Posix;
import org.apache.commons.exec.CommandLine;
import org.apache.commons.exec.DefaultExecuteResultHandler;
import org.apache.commons.exec.DefaultExecutor;
import org.apache.commons.exec.ExecuteStreamHandler;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * The job's main process, started with commons-exec. Its stdin, stdout and stderr are inherited
 * (not pumped through Java: a job's output must reach Slurm's file untouched and unbuffered), its
 * environment is ours unchanged (ORCA's own mpirun aborts if SLURM_* variables vanish), and its
 * working directory is set by path so that, in directory mode, it resolves to the mount.
 */
public final class ChildProcess {
    private final Process process;
    private final DefaultExecuteResultHandler result;

    private ChildProcess(Process process, DefaultExecuteResultHandler result) {
        this.process = process;
        this.result = result;
    }

    /**
     * Runs on the thread that starts the job, right before it does (the name trap's filter goes
     * on that thread, so the job and everything it starts carry it). A failure is reported to
     * {@code failed} and the job starts anyway.
     */
    public interface OnLaunchThread {
        void run() throws Exception;
    }

    /** Starts {@code command}; IOException if it cannot be executed. */
    public static ChildProcess start(List<String> command, Path workDir) throws IOException {
        return start(command, workDir, null);
    }

    /** Starts {@code command}, running {@code before} on the launching thread first (null: nothing). */
    public static ChildProcess start(List<String> command, Path workDir, OnLaunchThread before) throws IOException {
        CommandLine cl = new CommandLine(command.get(0));
        for (String a : command.subList(1, command.size())) cl.addArgument(a, false);
        CompletableFuture<Process> launched = new CompletableFuture<>();
        DefaultExecutor ex = new DefaultExecutor() {
            @Override
            protected Process launch(CommandLine cmd, Map<String, String> env, File dir) throws IOException {
                try {
                    if (before != null) {
                        try {
                            before.run();
                        } catch (Exception e) {
                            // the caller learns it from its own state (the trap says it is not installed)
                        }
                    }
                    ProcessBuilder pb = new ProcessBuilder(cmd.toStrings()).directory(workDir.toFile()).inheritIO();
                    JvmEnv.clean(pb.environment());
                    Process p = io.versionfs.sys.Spawns.start(pb);
                    launched.complete(p);
                    return p;
                } catch (IOException e) {
                    launched.completeExceptionally(e);
                    throw e;
                }
            }
        };
        // No setWorkingDirectory: commons-exec would stat the folder from this process, and in
        // directory mode that folder is our own mount. A thread of the daemon waiting on its own
        // filesystem when versionfs is SIGKILLed never gets its answer: the process stays in D
        // state holding /dev/fuse, so the mount is never aborted (seen as an ordinary user:
        // fstatat in request_wait_answer). The job's chdir happens in the child instead.
        ex.setExitValues(null); // every exit code is the job's answer, not an executor failure
        ex.setStreamHandler(new InheritedStreams());
        DefaultExecuteResultHandler handler = new DefaultExecuteResultHandler();
        ex.execute(cl, handler);
        // commons-exec launches on its own thread: wait until the process exists (or failed to).
        try {
            return new ChildProcess(launched.get(), handler);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            throw c instanceof IOException io ? io : new IOException(String.valueOf(c), c);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while starting the job");
        }
    }

    public long pid() {
        return process.pid();
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** Sends signal {@code sig} to the child (not its tree: the child, e.g. mpirun, forwards it). */
    public void signal(int sig) {
        if (process.isAlive()) Posix.C.kill((int) process.pid(), sig);
    }

    /** Runs {@code r} once the child has exited (on a JDK thread that waits for it; at once if it has). */
    public void onExit(Runnable r) {
        process.onExit().thenRun(r);
    }

    /** Waits up to {@code millis}; true if the child has exited. */
    public boolean waitFor(long millis) throws InterruptedException {
        // The process itself, not the result handler: commons-exec's waitFor polls every 50 ms,
        // which every run paid once after its job ended.
        if (!process.waitFor(millis, java.util.concurrent.TimeUnit.MILLISECONDS)) return false;
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.SECONDS.toNanos(5);
        while (!result.hasResult() && System.nanoTime() < deadline) Thread.sleep(1);
        return true;
    }

    /** Exit code as a shell reports it: the code, or 128+N when killed by signal N. */
    public int exitCode() {
        return result.hasResult() ? result.getExitValue() : process.exitValue();
    }

    /** Streams are inherited by the child; nothing to pump. */
    private static final class InheritedStreams implements ExecuteStreamHandler {
        @Override public void setProcessErrorStream(InputStream is) {}
        @Override public void setProcessInputStream(OutputStream os) {}
        @Override public void setProcessOutputStream(InputStream is) {}
        @Override public void start() {}
        @Override public void stop() {}
    }
}
