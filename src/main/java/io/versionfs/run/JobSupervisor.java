package io.versionfs.run;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.text.Log;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * The job's process and the signals meant for it, under one lock: a signal that arrives while
 * the job starts is either seen before the start (the run stops without starting it) or forwarded
 * right after it, and timed: never lost between the two. After TERM/INT/HUP the job gets its grace
 * period, then SIGKILL; USR1/USR2 are only forwarded (Slurm's early warnings).
 */
final class JobSupervisor {
    private static final int SIGKILL = 9;

    private final Object lock = new Object();
    private ChildProcess child;          // guarded by lock (volatile read in the loop)
    private volatile ChildProcess started;
    private int pendingSignal;           // a signal that arrived before the job started
    private volatile long stopRequestedAt;
    private volatile String lastSignal;

    /** Installed as the signal handler. */
    void onSignal(int number, String name) {
        synchronized (lock) {
            lastSignal = "SIG" + name;
            if (child == null) {
                pendingSignal = number;
                return;
            }
            Log.info("received SIG" + name + ": forwarding it to the job (pid " + child.pid() + ")");
            child.signal(number);
            if (isStop(name) && stopRequestedAt == 0) stopRequestedAt = System.currentTimeMillis();
        }
        wake(); // the grace period's deadline is counted from now
    }

    private static boolean isStop(String name) {
        return name.equals("TERM") || name.equals("INT") || name.equals("HUP");
    }

    /** Throws if a signal asked us to stop before the job started (set-up is then undone). */
    void abortIfSignalled() {
        synchronized (lock) {
            if (pendingSignal != 0) {
                throw new UserError(128 + pendingSignal, "stopped by " + lastSignal + " before the job started");
            }
        }
    }

    void start(List<String> command, Path cwd, ChildProcess.OnLaunchThread before) {
        synchronized (lock) {
            abortIfSignalled();
            try {
                child = ChildProcess.start(command, cwd, before);
            } catch (IOException e) {
                throw new UserError(ExitCodes.CHILD_NOT_FOUND, "cannot start " + command.get(0) + ": " + e.getMessage());
            }
            started = child;
        }
    }

    boolean started() {
        return started != null;
    }

    /**
     * Waits for the job to end; {@code beforeKill} runs right before the SIGKILL that ends the
     * grace period (to release anything the job may be blocked on). Returns the exit code.
     */
    int await(long graceMillis, Runnable beforeKill) throws InterruptedException {
        ChildProcess c = started;
        // Sleeps until the job ends or a stop signal starts the grace period (both wake it): no
        // periodic wake-up during a job of hours. The minute is only a backstop.
        c.onExit(this::wake);
        while (!c.waitFor(0)) {
            long asked = stopRequestedAt;
            long left = asked > 0 ? asked + graceMillis - System.currentTimeMillis() : BACKSTOP_MILLIS;
            if (asked > 0 && left < 0) {
                Log.warn("the job is still running " + graceMillis / 1000 + " s after " + lastSignal
                        + ": killing it (SIGKILL) to save the versions before the batch system kills us");
                beforeKill.run();
                c.signal(SIGKILL);
                stopRequestedAt = 0;
                continue;
            }
            synchronized (wake) {
                if (c.isAlive() && stopRequestedAt == asked) wake.wait(Math.max(1, Math.min(left + 1, BACKSTOP_MILLIS)));
            }
        }
        return c.exitCode();
    }

    private static final long BACKSTOP_MILLIS = 60_000;
    private final Object wake = new Object();

    private void wake() {
        synchronized (wake) {
            wake.notifyAll();
        }
    }

    /** Whether TERM, INT or HUP was received: the end of the run then lives on Slurm's KillWait. */
    boolean stopRequested() {
        String s = lastSignal;
        return s != null && isStop(s.substring(3));
    }
}
