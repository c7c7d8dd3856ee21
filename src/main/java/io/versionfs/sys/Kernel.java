package io.versionfs.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The running kernel's version, for behaviour that only newer kernels have. */
public final class Kernel {
    private static final Pattern MAJOR_MINOR = Pattern.compile("^(\\d+)\\.(\\d+)");

    private Kernel() {}

    /** Whether the running kernel is at least {@code major.minor} (false if its version cannot be read). */
    public static boolean atLeast(int major, int minor) {
        return atLeast(release(), major, minor);
    }

    /** As {@link #atLeast(int, int)} for a release string such as "6.1.0-28-amd64" or "5.14.0-427.el9.x86_64". */
    static boolean atLeast(String release, int major, int minor) {
        Matcher m = MAJOR_MINOR.matcher(release);
        if (!m.find()) return false;
        int a = Integer.parseInt(m.group(1)), b = Integer.parseInt(m.group(2));
        return a > major || a == major && b >= minor;
    }

    private static String release() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/osrelease")).trim();
        } catch (IOException | RuntimeException e) {
            return "";
        }
    }
}
