package io.versionfs.trap;

import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Whether a process still has a file open for writing, from {@code /proc/TID/fd} and
 * {@code fdinfo}: a file renamed onto a target while its writer keeps writing it directly must
 * never have a version that shares its inode.
 */
public final class OpenFiles {
    private OpenFiles() {}

    /**
     * True if any process of the job (every descendant of versionfs, {@code tid}'s process first)
     * has {@code inode} open with write access: a file that was outside the mount may be held
     * open by any of them. A /proc walk: milliseconds for a few hundred processes, paid per
     * rename onto a target only.
     */
    public static boolean writableByJob(int tid, Inode inode) {
        if (writableBy(tid, inode)) return true;
        return ProcessHandle.current().descendants().anyMatch(p -> p.pid() != tid && writableBy((int) p.pid(), inode));
    }

    /** True if thread {@code tid}'s process has {@code inode} open with write access (false if it cannot be read). */
    public static boolean writableBy(int tid, Inode inode) {
        Path fds = Path.of("/proc/" + tid + "/fd");
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(fds)) {
            for (Path fd : ds) {
                FileStat st = Stat.at(LibC.AT_FDCWD, fd.toString(), 0);
                if (st == null || Stat.dev(st) != inode.dev() || Stat.ino(st) != inode.ino()) continue;
                if (writable(tid, fd.getFileName().toString())) return true;
            }
        } catch (IOException | RuntimeException e) {
            return false;
        }
        return false;
    }

    private static boolean writable(int tid, String fd) {
        byte[] info = Posix.readSmallFile("/proc/" + tid + "/fdinfo/" + fd);
        for (String line : new String(info, StandardCharsets.US_ASCII).split("\n")) {
            if (line.startsWith("flags:")) {
                int flags = Integer.parseInt(line.substring(6).trim(), 8);
                return (flags & LibC.O_ACCMODE) != LibC.O_RDONLY;
            }
        }
        return false;
    }
}
