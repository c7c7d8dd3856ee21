package io.versionfs.run;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.List;

/**
 * The stderr of the agents' srun (srun's and the agents' own messages), with the last few lines
 * kept. Held back while the agents start: should Slurm refuse the step or an agent fail before it
 * is ready, the run's one-line error quotes what srun or the agent said and nothing else is
 * printed ({@code --verbose} shows the held lines). Once the agents are up, {@link #release}
 * prints what was held and passes on every later line as it comes.
 */
final class StepOutput {
    private static final int KEEP = 8;
    private static final int HOLD = 500;
    private final Deque<String> last = new ArrayDeque<>();
    private final Deque<String> held = new ArrayDeque<>();
    private final PrintStream to;
    private boolean live, dropped;
    private final Thread pump;

    private StepOutput(InputStream in, PrintStream to) {
        this.to = to;
        pump = new Thread(() -> copy(in), "versionfs-agents-stderr");
        pump.setDaemon(true);
        pump.start();
    }

    static StepOutput pump(InputStream in, PrintStream to) {
        return new StepOutput(in, to);
    }

    private void copy(InputStream in) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) take(line);
        } catch (IOException e) {
            // srun ended or its pipe broke: nothing more to pass on
        }
    }

    private synchronized void take(String line) {
        if (live) {
            to.println(line);
        } else if (dropped) {
            io.versionfs.text.Log.debug("agents' step: " + line);
        } else if (held.size() < HOLD) {
            held.addLast(line);
        }
        if (line.isBlank()) return;
        if (last.size() == KEEP) last.removeFirst();
        last.addLast(line.strip());
    }

    /** The agents are up: what they said so far goes out now, and every later line as it comes. */
    synchronized void release() {
        held.forEach(to::println);
        held.clear();
        live = true;
    }

    /**
     * The agents failed to start: the one-line error quotes {@link #lastError}; the rest, and what
     * their step says while it is stopped, only with --verbose.
     */
    synchronized void discard() {
        held.forEach(l -> io.versionfs.text.Log.debug("agents' step: " + l));
        held.clear();
        dropped = true;
    }

    /** Waits (bounded) until srun's stderr is read to its end: after srun exited, its last words are in. */
    void drain(long millis) {
        try {
            pump.join(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The last line that reads as an error (srun's "error:" lines first), or null. */
    synchronized String lastError() {
        List<String> lines = List.copyOf(last);
        for (int i = lines.size() - 1; i >= 0; i--) if (lines.get(i).contains("error")) return lines.get(i);
        return lines.isEmpty() ? null : lines.get(lines.size() - 1);
    }
}
