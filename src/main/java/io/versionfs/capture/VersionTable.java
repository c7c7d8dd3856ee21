package io.versionfs.capture;

import java.util.HashMap;
import java.util.Map;

/**
 * An int for each (series, version number), in about 4 bytes a version: what lets the commands
 * that read a whole manifest (list, verify, prune) go through a million versions in the
 * launcher's small heap, where a map of boxed keys takes 100 bytes a version.
 *
 * <p>A series is numbered 1, 2, 3... so each one gets an array indexed by number (from the
 * first number seen). A number far beyond the others (a hand-edited manifest, an odd series
 * starting past its first number) goes to a plain map instead, so that no array is ever much
 * larger than the versions it holds. Absent keys read 0; 0 cannot be stored.
 */
public final class VersionTable {
    /** How far past the numbers already held an array may grow (in slots per held number, plus a start). */
    private static final long SPREAD = 4, HEADROOM = 4096;

    private static final class Dense {
        final long base;
        int[] at = new int[16];
        int held;

        Dense(long base) {
            this.base = base;
        }

        /** The slot of {@code version}, growing the array if that keeps it dense; -1 if not. */
        int slot(long version, boolean grow) {
            long off = version - base;
            if (off < 0 || version < base) return -1; // (the second test: a subtraction that overflowed)
            if (off < at.length) return (int) off;
            if (!grow || off >= SPREAD * (held + HEADROOM) || off >= Integer.MAX_VALUE - 16) return -1;
            at = java.util.Arrays.copyOf(at, (int) Math.min(Integer.MAX_VALUE - 16, Math.max(off + 1, at.length + (at.length >> 1))));
            return (int) off;
        }
    }

    private final Map<String, Dense> dense = new HashMap<>();
    private final Map<String, Integer> other = new HashMap<>();

    public int get(String series, long version) {
        Dense d = dense.get(series);
        int i = d == null ? -1 : d.slot(version, false);
        if (i >= 0 && d.at[i] != 0) return d.at[i];
        if (other.isEmpty()) return 0;
        return other.getOrDefault(otherKey(series, version), 0);
    }

    public void put(String series, long version, int value) {
        if (value == 0) throw new IllegalArgumentException("0 means absent");
        // A key that went to the map stays there (its array may have grown over it since).
        if (!other.isEmpty() && other.containsKey(otherKey(series, version))) {
            other.put(otherKey(series, version), value);
            return;
        }
        Dense d = dense.computeIfAbsent(series, k -> new Dense(version));
        int i = d.slot(version, true);
        if (i < 0) {
            other.put(otherKey(series, version), value);
            return;
        }
        if (d.at[i] == 0) d.held++;
        d.at[i] = value;
    }

    private static String otherKey(String series, long version) {
        return series + '\u0000' + version;
    }
}
