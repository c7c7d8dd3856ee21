package io.versionfs.report;

import java.util.Formatter;

/**
 * Standard output for commands that print a line (or a JSON element) per version. System.out
 * flushes at every write, and a printf is several writes: a million versions were ten million
 * write calls. This keeps up to 64 KiB and hands it to System.out in one piece (so in its
 * encoding, and to whatever a test put there). {@link #flush} at the end, and before anything
 * goes to stderr that should come after what was printed so far.
 */
public final class Out implements AutoCloseable {
    private static final int LIMIT = 1 << 16;
    private final StringBuilder buf = new StringBuilder(LIMIT + 1024);
    private final Formatter fmt = new Formatter(buf);

    public Out print(String s) {
        buf.append(s);
        return spill();
    }

    public Out println(String s) {
        buf.append(s).append(System.lineSeparator());
        return spill();
    }

    public Out printf(String format, Object... args) {
        fmt.format(format, args);
        return spill();
    }

    private Out spill() {
        if (buf.length() >= LIMIT) {
            System.out.print(buf);
            buf.setLength(0);
        }
        return this;
    }

    public void flush() {
        System.out.print(buf);
        buf.setLength(0);
        System.out.flush();
    }

    @Override
    public void close() {
        flush();
    }
}
