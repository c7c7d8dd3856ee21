package io.versionfs.fs;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Reads /proc/self/mountinfo: is a path a mount point, and of which type. */
public final class MountTable {
    public record Entry(Path mountPoint, String fsType, String source) {}

    private MountTable() {}

    public static List<Entry> entries() {
        List<Entry> out = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String[] parts = line.split(" ");
                int dash = -1;
                for (int i = 6; i < parts.length; i++) if (parts[i].equals("-")) { dash = i; break; }
                if (dash < 0 || dash + 2 >= parts.length) continue;
                out.add(new Entry(Path.of(unescape(parts[4])), parts[dash + 1], unescape(parts[dash + 2])));
            }
        } catch (IOException e) {
            // no /proc: nothing known
        }
        return out;
    }

    /** The FUSE mount at exactly {@code mp}, if any. */
    public static Entry fuseAt(Path mp) {
        Path abs = mp.toAbsolutePath().normalize();
        Entry found = null;
        for (Entry e : entries()) if (e.mountPoint.equals(abs) && e.fsType.startsWith("fuse")) found = e;
        return found;
    }

    public static boolean isMountPoint(Path mp) {
        Path abs = mp.toAbsolutePath().normalize();
        return entries().stream().anyMatch(e -> e.mountPoint.equals(abs));
    }

    /** mountinfo escapes space, tab, newline and backslash as octal. */
    static String unescape(String s) {
        if (s.indexOf('\\') < 0) return s;
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length() + 0 && i + 3 <= s.length() - 1 + 1) {
                try {
                    sb.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
                    i += 3;
                    continue;
                } catch (NumberFormatException | StringIndexOutOfBoundsException e) {
                    // fall through
                }
            }
            sb.append(c);
        }
        return sb.toString();
    }
}
