package io.versionfs.trap;

import io.versionfs.sys.Posix;

/**
 * One resolved name of a trapped call: the folder it is in (held open, so acting on it acts on
 * exactly the folder the caller meant, wherever it is moved meanwhile), the last component, and
 * what that component is right now (null: nothing by that name). {@code dirOnly}: the path ended
 * in a slash, which makes the kernel follow a symlink there and accept only a folder.
 */
public record Name(int parentFd, Inode parent, String base, Entry entry, String shown, boolean dirOnly) implements AutoCloseable {

    public Name(int parentFd, Inode parent, String base, Entry entry, String shown) {
        this(parentFd, parent, base, entry, shown, false);
    }

    public enum Kind { FILE, DIR, SYMLINK, OTHER }

    /** What a name leads to (not following a symlink): its kind, identity and link count. */
    public record Entry(Kind kind, Inode inode, long nlink) {}

    public boolean exists() {
        return entry != null;
    }

    public Kind kind() {
        return entry == null ? null : entry.kind();
    }

    @Override
    public void close() {
        if (parentFd >= 0) Posix.C.close(parentFd);
    }

    @Override
    public String toString() {
        return shown;
    }
}
