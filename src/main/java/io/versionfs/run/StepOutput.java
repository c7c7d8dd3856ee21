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
 * The stderr of the agents' srun, passed on line by line to the job's stderr as it comes (srun's
 * and the agents' own messages), with the last few lines kept: when Slurm refuses the step or an
 * agent fails before it is ready, the one-line error quotes what srun or the agent said.
 */
final class StepOutput {
    private static final int KEEP = 8;
    private final Deque<String> last = new ArrayDeque<>();
    private final Thread pump;

    private StepOutput(InputStream in, PrintStream to) {
        pump = new Thread(() -> copy(in, to), "versionfs-agents-stderr");
        pump.setDaemon(true);
        pump.start();
    }

    static StepOutput pump(InputStream in, PrintStream to) {
        return new StepOutput(in, to);
    }

    private void copy(InputStream in, PrintStream to) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                to.println(line);
                keep(line);
            }
        } catch (IOException e) {
            // srun ended or its pipe broke: nothing more to pass on
        }
    }

    private synchronized void keep(String line) {
        if (line.isBlank()) return;
        if (last.size() == KEEP) last.removeFirst();
        last.addLast(line.strip());
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
