package io.versionfs.run;

import io.versionfs.text.Log;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;

import java.util.List;
import java.util.Set;
import java.util.function.LongPredicate;
import java.util.stream.Collectors;

/**
 * Finds and ends what the job left running. versionfs makes itself a child subreaper, so
 * processes orphaned by the job (a daemonised helper, MPI ranks in their own process groups)
 * are re-parented to us instead of init, and stay findable as our descendants after the job's
 * main process has exited.
 */
public final class Reaper {
    private static final int SIGTERM = 15, SIGKILL = 9;

    private Reaper() {}

    public static void becomeSubreaper() {
        if (Posix.C.prctl(LibC.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
            Log.debug("prctl(PR_SET_CHILD_SUBREAPER) failed: leftover processes may escape cleanup");
        }
    }

    /** Our direct children now (taken before the job starts: fusermount's auto_unmount helper is one). */
    public static Set<Long> currentChildren() {
        return ProcessHandle.current().children().map(ProcessHandle::pid).collect(Collectors.toSet());
    }

    /**
     * Sends TERM to every descendant not under a child {@code keep} spares, waits up to
     * {@code graceMillis}, KILLs the rest, and reaps them. Returns how many processes were left over.
     */
    public static int endLeftovers(LongPredicate keep, long graceMillis) {
        List<ProcessHandle> left = leftovers(keep);
        if (left.isEmpty()) return 0;
        Log.info(left.size() + " process(es) left behind by the job: sending SIGTERM ("
                + left.stream().map(p -> Long.toString(p.pid())).collect(Collectors.joining(" ")) + ")");
        for (ProcessHandle p : left) Posix.C.kill((int) p.pid(), SIGTERM);
        long deadline = System.currentTimeMillis() + graceMillis;
        while (System.currentTimeMillis() < deadline) {
            reap(keep);
            if (leftovers(keep).isEmpty()) {
                reapAll(keep);
                return left.size();
            }
            sleep(50);
        }
        List<ProcessHandle> still = leftovers(keep);
        if (!still.isEmpty()) {
            Log.info(still.size() + " process(es) ignored SIGTERM: sending SIGKILL");
            for (ProcessHandle p : still) Posix.C.kill((int) p.pid(), SIGKILL);
            long kdl = System.currentTimeMillis() + 5_000;
            while (!leftovers(keep).isEmpty() && System.currentTimeMillis() < kdl) {
                reap(keep);
                sleep(20);
            }
        }
        reapAll(keep);
        return left.size();
    }

    /** Waits (briefly) until every ended leftover has been reaped, so no zombie outlives us. */
    private static void reapAll(LongPredicate keep) {
        long deadline = System.currentTimeMillis() + 2_000;
        do {
            reap(keep);
            if (ProcessHandle.current().children().noneMatch(p -> !keep.test(p.pid()) && !running(p))) return;
            sleep(20);
        } while (System.currentTimeMillis() < deadline);
    }

    private static List<ProcessHandle> leftovers(LongPredicate keep) {
        return ProcessHandle.current().children()
                .filter(p -> !keep.test(p.pid()))
                .flatMap(p -> java.util.stream.Stream.concat(java.util.stream.Stream.of(p), p.descendants()))
                .filter(Reaper::running)
                .collect(Collectors.toList());
    }

    /** Alive and not a zombie waiting for us to reap it. */
    private static boolean running(ProcessHandle p) {
        if (!p.isAlive()) return false;
        try {
            String stat = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/" + p.pid() + "/stat"));
            int close = stat.lastIndexOf(')');
            return close < 0 || stat.charAt(close + 2) != 'Z';
        } catch (Exception e) {
            return false;
        }
    }

    /** Collects exit statuses of re-parented children (only those: never steal Java's own). */
    private static void reap(LongPredicate keep) {
        ProcessHandle.current().children().filter(p -> !keep.test(p.pid())).forEach(p -> {
            if (!running(p)) Posix.C.waitpid((int) p.pid(), null, LibC.WNOHANG);
        });
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
