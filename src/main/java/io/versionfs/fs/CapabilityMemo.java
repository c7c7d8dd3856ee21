package io.versionfs.fs;

import java.util.concurrent.ConcurrentHashMap;

/**
 * Remembers, for a short while, that a file has no {@code security.capability} attribute. Why:
 * before every write(2) the kernel asks a FUSE file system for that attribute (FUSE clears
 * SB_NOSEC, and libfuse2 cannot negotiate FUSE_HANDLE_KILLPRIV_V2, which would stop it), and
 * answering from the backing file costs a path walk through /proc/self/fd/N each time: 6 µs of
 * the 70 µs a 4 KiB write costs the daemon (perf). The same answer given again within
 * {@link #ttlNanos} is what the kernel itself does with our attributes and names (libfuse2's
 * attr_timeout and entry_timeout are 1 s). Any change of names or metadata through the mount
 * forgets everything; a capability set from outside the mount is seen within the time to live. A
 * write through the mount removes the capability from the backing file anyway (the backing file
 * system's own kill-priv), so the answer that matters, "none", only goes stale by a setcap from
 * outside during that second.
 */
final class CapabilityMemo {
    static final String NAME = "security.capability";
    /** More names than a job writes at once: past this, start again (a bound, not a cache policy). */
    private static final int MAX = 1024;

    private final ConcurrentHashMap<String, Long> absentUntil = new ConcurrentHashMap<>();
    private volatile long ttlNanos;

    CapabilityMemo(long ttlNanos) {
        this.ttlNanos = ttlNanos;
    }

    /** Never remember (a mount coherent with other nodes' mounts of the same files: timeouts 0). */
    void off() {
        ttlNanos = 0;
        absentUntil.clear();
    }

    /** Whether {@code rel} was seen without the attribute less than the time to live ago. */
    boolean knownAbsent(String rel) {
        Long until = absentUntil.get(rel);
        return until != null && System.nanoTime() - until < 0;
    }

    /** {@code rel} has no capability (the backing file just said ENODATA). */
    void absent(String rel) {
        if (ttlNanos <= 0) return;
        if (absentUntil.size() >= MAX) absentUntil.clear();
        absentUntil.put(rel, System.nanoTime() + ttlNanos);
    }

    /** A name or an inode's metadata changed through the mount. */
    void forgetAll() {
        if (!absentUntil.isEmpty()) absentUntil.clear();
    }
}
