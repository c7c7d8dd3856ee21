package io.versionfs.fs;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Who is calling: the command line of a pid, read from /proc (FUSE tells us the caller's pid). */
public final class Caller {
    private static final int MAX = 300;

    private Caller() {}

    public static String commandLine(int pid) {
        if (pid <= 0) return "";
        try {
            byte[] raw = Files.readAllBytes(Path.of("/proc", Integer.toString(pid), "cmdline"));
            int n = raw.length;
            while (n > 0 && raw[n - 1] == 0) n--;
            for (int i = 0; i < n; i++) if (raw[i] == 0) raw[i] = ' ';
            String s = new String(raw, 0, n, java.nio.charset.StandardCharsets.UTF_8);
            return s.length() > MAX ? s.substring(0, MAX) + "..." : s;
        } catch (IOException | SecurityException e) {
            return ""; // the process already exited
        }
    }
}
