package io.versionfs.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether a thread is, right now, inside an open that creates the file when its name is absent
 * and opens it when present: {@code open}, {@code openat} with O_CREAT and without O_EXCL, or
 * {@code creat} (x86_64 numbers). Read from {@code /proc/TID/syscall}, which the kernel fills for
 * a thread blocked in a system call (as one waiting for our answer to a FUSE request is), and
 * which we may read for our own user's processes. False whenever it cannot tell: not x86_64, not
 * readable, another call, {@code openat2} (its flags are in the caller's memory).
 */
public final class OpenCall {
    private static final boolean X86_64 = "amd64".equals(System.getProperty("os.arch"));
    private static final int NR_OPEN = 2, NR_CREAT = 85, NR_OPENAT = 257;
    private static final int O_CREAT = 0100, O_EXCL = 0200;

    private OpenCall() {}

    /** Whether thread {@code tid} is in an open that may create (see the class comment). */
    public static boolean mayCreate(int tid) {
        if (!X86_64 || tid <= 0) return false;
        try {
            return mayCreate(Files.readString(Path.of("/proc/" + tid + "/syscall")));
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    /** The same, from a {@code /proc/TID/syscall} line: "NR ARG1 ... ARG6 SP PC" (hex arguments), "-1 SP PC" or "running". */
    static boolean mayCreate(String line) {
        String[] f = line.trim().split(" ");
        if (f.length < 7 || !f[0].matches("\\d+")) return false;
        int nr = Integer.parseInt(f[0]);
        if (nr == NR_CREAT) return true;
        int at = nr == NR_OPEN ? 2 : nr == NR_OPENAT ? 3 : -1;
        if (at < 0) return false;
        long flags = Long.parseUnsignedLong(f[at].replaceFirst("^0x", ""), 16);
        return (flags & O_CREAT) != 0 && (flags & O_EXCL) == 0;
    }
}
