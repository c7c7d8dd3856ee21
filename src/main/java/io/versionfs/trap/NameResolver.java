package io.versionfs.trap;

import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import io.versionfs.sys.Seccomp;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

/**
 * Resolves a trapped call's path argument as the caller sees it: relative paths from its
 * working folder or directory descriptor, absolute ones from its root, all through
 * {@code /proc/TID/...} (which needs the same access as reading its memory: our own job, not
 * made undumpable). Symlinks in the folder part are followed as the kernel would; the last
 * component is not (rename, unlink and link act on the name itself).
 */
final class NameResolver {
    private static final int O_PATH = 0x200000; // x86_64, the only architecture the filter traps
    private static final int S_IFMT = 0170000, S_IFREG = 0100000, S_IFDIR = 0040000, S_IFLNK = 0120000;

    private NameResolver() {}

    /** Null when the path cannot be read or resolved: the call then runs untouched. */
    static Name resolve(int tid, NameCall.PathArg a, Seccomp.Buffers b) {
        String path = Seccomp.readString(tid, a.addr(), b);
        if (path == null || path.isEmpty()) return null;
        Split s = split(path);
        if (s == null) return null;
        String base = path.startsWith("/") ? "/proc/" + tid + "/root"
                : a.dirFd() == LibC.AT_FDCWD ? "/proc/" + tid + "/cwd" : "/proc/" + tid + "/fd/" + a.dirFd();
        int fd = Posix.C.openat(LibC.AT_FDCWD, base + (s.dir.isEmpty() ? "" : "/" + s.dir), O_PATH | LibC.O_DIRECTORY | LibC.O_CLOEXEC, 0);
        if (fd < 0) return null;
        FileStat st = Stat.of(fd);
        if (st == null) {
            Posix.C.close(fd);
            return null;
        }
        Inode parent = new Inode(Stat.dev(st), Stat.ino(st));
        fd = HostFolder.reopenHere(tid, fd, parent); // a container's folder: the same one on our mount
        Name.Entry entry = null;
        st = Stat.at(fd, s.base, LibC.AT_SYMLINK_NOFOLLOW);
        if (st != null) entry = new Name.Entry(kind(Stat.mode(st)), new Inode(Stat.dev(st), Stat.ino(st)), Stat.nlink(st));
        return new Name(fd, parent, s.base, entry, path, s.dirOnly);
    }

    /**
     * Folder part and last component; null for a last component that names no entry ("/", ".",
     * ".."). {@code dirOnly}: written with a trailing slash, so the kernel only accepts a folder there.
     */
    record Split(String dir, String base, boolean dirOnly) {
        Split(String dir, String base) {
            this(dir, base, false);
        }
    }

    static Split split(String path) {
        String p = path;
        while (p.length() > 1 && p.endsWith("/")) p = p.substring(0, p.length() - 1);
        int i = p.lastIndexOf('/');
        String base = p.substring(i + 1);
        if (base.isEmpty() || base.equals(".") || base.equals("..")) return null;
        String dir = i < 0 ? "" : i == 0 ? "/" : p.substring(0, i);
        return new Split(dir, base, p.length() < path.length());
    }

    static Name.Kind kind(int mode) {
        return switch (mode & S_IFMT) {
            case S_IFREG -> Name.Kind.FILE;
            case S_IFDIR -> Name.Kind.DIR;
            case S_IFLNK -> Name.Kind.SYMLINK;
            default -> Name.Kind.OTHER;
        };
    }
}
