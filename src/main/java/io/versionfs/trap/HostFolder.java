package io.versionfs.trap;

import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The same folder, opened in versionfs's own mount namespace. A folder reached through
 * {@code /proc/TID/cwd} of a process inside a container (ch-run, podman, apptainer: each its own
 * mount namespace) is on the container's bind mount, and rename(2) or link(2) between it and
 * one of our folders fails with EXDEV even on the same file system (the kernel wants one mount,
 * not one device). So the folder is found here by its path in the container's namespace, turned
 * into a path of the file system through the container's mount table ({@code /proc/TID/mountinfo}:
 * which part of which device is mounted where) and back into a path of ours through our own
 * table; it is used only if it is the very same folder (device and inode).
 */
final class HostFolder {
    private static final int O_PATH = 0x200000;
    private static final String OWN_NS = nsOf("self");

    private HostFolder() {}

    /** {@code fd} itself when the process shares our mount namespace or the folder is not reachable here; else our own descriptor (and {@code fd} is closed). */
    static int reopenHere(int tid, int fd, Inode id) {
        String ns = nsOf(Integer.toString(tid));
        if (ns == null || ns.equals(OWN_NS)) return fd;
        try {
            String there = Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
            for (String here : pathsHere(there, device(id.dev()), mounts("/proc/" + tid + "/mountinfo"), mounts("/proc/self/mountinfo"))) {
                int own = Posix.C.openat(LibC.AT_FDCWD, here, O_PATH | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
                if (own < 0) continue;
                FileStat st = Stat.of(own);
                if (st != null && Stat.dev(st) == id.dev() && Stat.ino(st) == id.ino()) {
                    Posix.C.close(fd);
                    return own;
                }
                Posix.C.close(own);
            }
        } catch (IOException | RuntimeException e) {
            // not reachable here: the call acts on the container's folder (EXDEV where it must cross)
        }
        return fd;
    }

    /** st_dev as mountinfo writes it, "MAJOR:MINOR" (glibc's gnu_dev_major/minor). */
    static String device(long dev) {
        long major = (dev >>> 8 & 0xfff) | (dev >>> 32 & 0xfffff000L);
        long minor = (dev & 0xff) | (dev >>> 12 & 0xffffff00L);
        return major + ":" + minor;
    }

    /** One line of a mountinfo table: device, the part of it mounted, and where. */
    record Mount(String device, String root, String point) {}

    /**
     * Our paths for {@code there} (a path in the other namespace, on device {@code device}):
     * through the other namespace's deepest mount holding it, to a path of the file system, then
     * through each of our mounts of that device holding that path (deepest first).
     */
    static List<String> pathsHere(String there, String device, List<Mount> theirs, List<Mount> ours) {
        Mount in = null;
        for (Mount m : theirs) {
            if (m.device().equals(device) && under(there, m.point()) && (in == null || m.point().length() > in.point().length())) in = m;
        }
        List<String> out = new ArrayList<>();
        if (in == null) return out;
        String onDevice = join(in.root(), rest(there, in.point()));
        List<Mount> mine = new ArrayList<>(ours.stream().filter(m -> m.device().equals(device) && under(onDevice, m.root())).toList());
        mine.sort((a, b) -> b.root().length() - a.root().length());
        for (Mount m : mine) out.add(join(m.point(), rest(onDevice, m.root())));
        return out;
    }

    private static boolean under(String path, String dir) {
        return dir.equals("/") || path.equals(dir) || path.startsWith(dir + "/");
    }

    private static String rest(String path, String dir) {
        return dir.equals("/") ? path.substring(1) : path.length() == dir.length() ? "" : path.substring(dir.length() + 1);
    }

    private static String join(String dir, String rest) {
        return rest.isEmpty() ? dir : dir.endsWith("/") ? dir + rest : dir + "/" + rest;
    }

    static List<Mount> mounts(String mountinfo) throws IOException {
        List<Mount> out = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(mountinfo), StandardCharsets.UTF_8)) out.add(parse(line));
        return out;
    }

    /** "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw" (proc(5)); spaces in paths are \040. */
    static Mount parse(String line) {
        String[] f = line.split(" ");
        return new Mount(f[2], unescape(f[3]), unescape(f[4]));
    }

    private static String unescape(String s) {
        if (s.indexOf('\\') < 0) return s;
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 3 < s.length()) {
                b.append((char) Integer.parseInt(s.substring(i + 1, i + 4), 8));
                i += 3;
            } else {
                b.append(c);
            }
        }
        return b.toString();
    }

    private static String nsOf(String pid) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/" + pid + "/ns/mnt")).toString();
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
