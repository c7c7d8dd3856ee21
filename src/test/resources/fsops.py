#!/usr/bin/env python3
"""File-operation patterns that real programs use, run as separate OS processes by the tests.

Each command does exactly the syscalls its name says, so a test can tell which closes must
produce a version and which must not. Content written by `payload(tag, i, size)` is
self-describing: a header line plus a byte pattern derived from it, so a test can check that a
version is exactly one complete rewrite (not torn, no stale tail).
"""
import fcntl
import os
import sys


def payload(tag, i, size):
    head = f"{tag}:{i}:{size}\n".encode()
    fill = bytes([65 + (i * 7 + sum(tag.encode())) % 26])  # printable, differs between rewrites
    return (head + fill * max(0, size - len(head)))[:size] if size >= len(head) else head


def write_all(fd, data, chunk=1 << 20):
    off = 0
    while off < len(data):
        off += os.write(fd, data[off:off + chunk])


def rewrite(path, tag, i, size, lock=False):
    """open(O_WRONLY|O_CREAT|O_TRUNC), write, close: one version.

    With lock, writers take turns: open WITHOUT O_TRUNC (an O_TRUNC open would cut another
    writer's rewrite in progress, before any lock can be taken), flock, truncate, write, close.
    The lock is released only after close() returned, i.e. after the version was taken."""
    if lock:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    write_all(fd, payload(tag, i, size))
    os.close(fd)


def main(argv):
    cmd, path = argv[0], argv[1]
    if cmd == "rewrite":            # rewrite PATH TAG FIRST COUNT SIZE [lock]
        tag, first, count, size = argv[2], int(argv[3]), int(argv[4]), int(argv[5])
        lock = len(argv) > 6 and argv[6] == "lock"
        for i in range(first, first + count):
            rewrite(path, tag, i, size, lock)
    elif cmd == "write":            # write PATH TEXT : O_TRUNC rewrite with exact text
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        write_all(fd, argv[2].encode())
        os.close(fd)
    elif cmd == "rdwr-read":        # open O_RDWR, read everything, close: no version
        fd = os.open(path, os.O_RDWR)
        while os.read(fd, 1 << 16):
            pass
        os.close(fd)
    elif cmd == "dup":              # write, dup, close the dup, close the original: one version
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"first ")
        fd2 = os.dup(fd)
        os.close(fd2)  # a flush on the same open file description: the version is taken here
        os.close(fd)
    elif cmd == "fork":             # write, fork; the child closes its inherited copy and exits; one version
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, argv[2].encode())
        pid = os.fork()
        if pid == 0:
            os.close(fd)
            os._exit(0)
        os.waitpid(pid, 0)
        os.close(fd)
    elif cmd == "overwrite-middle":  # open without O_TRUNC, pwrite TEXT at OFFSET, close
        fd = os.open(path, os.O_RDWR)
        os.pwrite(fd, argv[2].encode(), int(argv[3]))
        os.close(fd)
    elif cmd == "truncate-path":    # truncate(2) by path, then open without O_TRUNC and write
        os.truncate(path, 0)
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, argv[2].encode())
        os.close(fd)
    elif cmd == "truncate-only":    # truncate(2) by path to N bytes: a change with no close after it
        os.truncate(path, int(argv[2]))
    elif cmd == "ftruncate":        # open O_RDWR, ftruncate to N, close
        fd = os.open(path, os.O_RDWR)
        os.ftruncate(fd, int(argv[2]))
        os.close(fd)
    elif cmd == "write-no-close":   # write and exit without close(): the kernel closes at exit
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, argv[2].encode())
        os._exit(0)
    elif cmd == "rename":           # rename PATH NEWPATH
        os.rename(path, argv[2])
    elif cmd == "unlink":
        os.unlink(path)
    elif cmd == "save-via-rename":  # write TEXT to a temp file beside PATH, rename over PATH (GROMACS style)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        write_all(fd, argv[2].encode())
        os.close(fd)
        os.rename(tmp, path)
    else:
        print("unknown command " + cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
