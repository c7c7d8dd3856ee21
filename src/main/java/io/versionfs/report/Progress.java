package io.versionfs.report;

import io.versionfs.text.Bytes;
import io.versionfs.capture.VersionLog;

import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Progress while the job runs. On a terminal (stderr is a TTY): one line, rewritten in place
 * every second (versions so far, the last one's size, elapsed). In a Slurm output file (not a
 * TTY): no carriage-return noise; one plain line per minute, only when there are new versions.
 * {@code --quiet} turns both off.
 */
public final class Progress implements AutoCloseable {
    private final Supplier<Map<String, VersionLog.Snapshot>> source;
    private final Instant start = Instant.now();
    private final boolean tty;
    private final Thread thread;
    private volatile boolean running = true;
    private long lastTotal = -1;
    private long lastLineAt;
    /** Seconds between plain lines when not on a terminal (60; tests set less). */
    private static final long EVERY_MILLIS = Long.getLong("versionfs.progressEvery", 60) * 1000;

    public Progress(Supplier<Map<String, VersionLog.Snapshot>> source) {
        this.source = source;
        this.tty = io.versionfs.sys.Posix.C.isatty(2) == 1;
        this.thread = new Thread(this::loop, "versionfs-progress");
        this.thread.setDaemon(true);
        this.thread.start();
    }

    private void loop() {
        while (running) {
            try {
                // Not on a terminal a line can come once a minute at most: look once a minute (a
                // batch job's daemon is not woken every second for hours).
                Thread.sleep(tty ? 1000 : EVERY_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
            if (!running) return;
            long total = 0, lastSize = -1;
            for (VersionLog.Snapshot s : source.get().values()) {
                total += s.saved();
                var shown = s.shown();
                if (!shown.isEmpty()) lastSize = shown.get(shown.size() - 1).size;
            }
            String elapsed = Summary.elapsed(Duration.between(start, Instant.now())).substring(1);
            String text = "versionfs: " + total + " version(s) so far" + (lastSize >= 0 ? ", last " + Bytes.of(lastSize) : "")
                    + ", " + elapsed;
            if (tty) {
                System.err.print("\r" + text + "   ");
                System.err.flush();
            } else if (total != lastTotal && System.currentTimeMillis() - lastLineAt >= EVERY_MILLIS) {
                System.err.println(text);
                lastLineAt = System.currentTimeMillis();
                lastTotal = total;
            }
        }
    }

    @Override
    public void close() {
        running = false;
        thread.interrupt();
        try {
            thread.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (tty) {
            System.err.print("\r" + " ".repeat(70) + "\r");
            System.err.flush();
        }
    }
}
