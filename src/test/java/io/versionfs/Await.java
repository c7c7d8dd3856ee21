package io.versionfs;

import java.time.Duration;
import java.util.concurrent.Callable;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Waiting for something to happen instead of sleeping a fixed time: polls a condition until it
 * holds, and fails with what was awaited (and what was seen last) when the deadline passes.
 * Deadlines are generous ({@link #LONG}): the test machine is shared and may stall a process for
 * seconds, and a wait that ends early costs nothing.
 */
public final class Await {
    /** The usual deadline. */
    public static final Duration LONG = Duration.ofSeconds(60);
    /** The usual interval between two looks. */
    public static final Duration POLL = Duration.ofMillis(50);

    private Await() {}

    /** A condition that may throw: an exception means "not yet" (a file not written yet), and is shown on timeout. */
    @FunctionalInterface
    public interface Condition {
        boolean holds() throws Exception;
    }

    /** Waits until {@code c} holds; fails after {@code timeout} naming {@code what}. */
    public static void until(Duration timeout, String what, Condition c) throws InterruptedException {
        until(timeout, POLL, what, c, null);
    }

    /** As {@link #until(Duration, String, Condition)}; on timeout the message also has {@code detail} (a log, say). */
    public static void until(Duration timeout, String what, Condition c, Callable<String> detail) throws InterruptedException {
        until(timeout, POLL, what, c, detail);
    }

    /**
     * Waits until {@code c} holds, looking every {@code poll}; fails after {@code timeout} naming
     * {@code what}, the last exception the condition threw, and {@code detail} (may be null). An
     * {@link Error} from the condition (an assertion: "the process died") ends the wait at once.
     */
    public static void until(Duration timeout, Duration poll, String what, Condition c, Callable<String> detail)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        Exception last = null;
        while (true) {
            try {
                if (c.holds()) return;
                last = null;
            } catch (InterruptedException e) {
                throw e;
            } catch (Exception e) {
                last = e;
            }
            if (System.nanoTime() - deadline > 0) break;
            Thread.sleep(poll.toMillis());
        }
        String more = "";
        if (detail != null) {
            try {
                more = "\n" + detail.call();
            } catch (Exception e) {
                more = "\n(no detail: " + e + ")";
            }
        }
        fail("waited " + timeout.toSeconds() + " s for: " + what + (last == null ? "" : " (last try: " + last + ")") + more);
    }

    /** Waits until none of {@code processes} runs any more (zombies count as gone: they were killed, say). */
    public static void gone(java.util.List<ProcessHandle> processes, String what) throws InterruptedException {
        until(LONG, POLL, what + " to be gone", () -> processes.stream().noneMatch(h -> TestSupport.isRunning(h.pid())),
                () -> "still running: " + processes.stream().filter(h -> TestSupport.isRunning(h.pid()))
                        .map(h -> h.pid() + " " + h.info().commandLine().orElse("?")).toList());
    }

    /**
     * A shell snippet for a job script: waits (polling every 50 ms, for at most 60 s) until the
     * shell test {@code cond} succeeds; on timeout the job says what it waited for on stderr and
     * exits 124, so the test fails on the job's exit code with that line in its message.
     */
    public static String shell(String cond) {
        String q = cond.replace("'", "'\\''");
        return "w_=0; until " + cond + "; do w_=$((w_+1)); if [ $w_ -ge 1200 ]; then"
                + " echo 'job: gave up after 60 s waiting for: " + q + "' >&2; exit 124; fi; sleep 0.05; done";
    }
}
