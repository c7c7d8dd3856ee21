package io.versionfs.fs;

import io.versionfs.sys.Posix;

import java.nio.charset.StandardCharsets;

/** Who is calling: the command line of a pid, read from /proc (FUSE tells us the caller's pid). */
public final class Caller {
    private static final int MAX = 300;

    private Caller() {}

    /** The command line of {@code pid}, NULs as spaces, cut at 300 characters; "" if it already exited. */
    public static String commandLine(int pid) {
        if (pid <= 0) return "";
        byte[] raw = Posix.readSmallFile("/proc/" + pid + "/cmdline");
        int n = raw.length;
        while (n > 0 && raw[n - 1] == 0) n--;
        for (int i = 0; i < n; i++) if (raw[i] == 0) raw[i] = ' ';
        String s = new String(raw, 0, n, StandardCharsets.UTF_8);
        return s.length() > MAX ? s.substring(0, MAX) + "..." : s;
    }
}
