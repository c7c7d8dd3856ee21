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
    elif cmd == "rename-while-open":  # rename-while-open A B: write A, rename to B, pwrite on the same fd, close
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"AAAAAAAA")
        os.rename(path, argv[2])
        os.pwrite(fd, b"ZZ", 0)
        os.close(fd)
    elif cmd == "rename-over-open":  # rename-over-open B TMP: B open and written, TMP renamed over B, B's fd writes on
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"OLD")
        t = os.open(argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(t, b"NEW")
        os.close(t)
        os.rename(argv[2], path)
        os.pwrite(fd, b"ORPHAN", 0)
        os.close(fd)
    elif cmd == "link-onto":        # link-onto SRC DST: write SRC, link it to DST while open, write more, close, unlink SRC
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"linked-")
        os.link(path, argv[2])
        os.write(fd, b"more")
        os.close(fd)
        os.unlink(path)
    elif cmd == "unlink-while-open":  # write, unlink, write more through the same fd, close
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"before ")
        os.unlink(path)
        os.write(fd, b"after")
        os.lseek(fd, 0, 0)
        data = os.read(fd, 100)
        os.close(fd)
        if data != b"before after":
            print("read back " + repr(data), file=sys.stderr)
            return 1
        if os.path.exists(path) or any(n.startswith(".fuse_hidden") for n in os.listdir(os.path.dirname(path) or ".")):
            print("the unlinked file is still visible", file=sys.stderr)
            return 1
    elif cmd == "burst":            # burst DIR N MINMB MAXMB: N processes close big files at once, then edit in place
        n, lo, hi = int(argv[2]), int(argv[3]), int(argv[4])
        go = os.path.join(path, "go.flag")
        kids = []
        for k in range(n):
            pid = os.fork()
            if pid == 0:
                f = os.path.join(path, "f%02d.dat" % k)
                size = (lo + (k * 7) % (hi - lo + 1)) << 20
                fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
                write_all(fd, payload("b%d" % k, 1, size))
                while not os.path.exists(go):
                    os.sched_yield()
                os.close(fd)                      # all at once: captures, eager copies saturate
                fd = os.open(f, os.O_RDWR)
                os.pwrite(fd, b"EDIT%02d" % k, size // 2)  # in place: must wait for a copy, never hang
                os.close(fd)
                os._exit(0)
            kids.append(pid)
        import time
        time.sleep(1.0)
        open(go, "w").close()
        bad = 0
        for pid in kids:
            _, st = os.waitpid(pid, 0)
            bad += st != 0
        os.unlink(go)
        return 1 if bad else 0
    elif cmd == "edit-loop":        # edit-loop DIR N MB: N processes write MB MiB each, then edit in place until killed
        n, mb = int(argv[2]), int(argv[3])
        for k in range(n):
            if os.fork() == 0:
                f = os.path.join(path, "e%02d.dat" % k)
                fd = os.open(f, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
                write_all(fd, payload("e%d" % k, 1, mb << 20))
                os.close(fd)
                i = 0
                while True:
                    fd = os.open(f, os.O_RDWR)
                    os.pwrite(fd, b"%08d" % i, (i * 4096) % (mb << 20))
                    os.close(fd)
                    i += 1
        os.wait()
    elif cmd == "sparse":           # sparse PATH GIB: data at both ends of a GIB-sized hole
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.pwrite(fd, b"head" * 1024, 0)
        os.pwrite(fd, b"tail" * 1024, (int(argv[2]) << 30) - 4096)
        os.close(fd)
    elif cmd == "chmod":            # chmod PATH OCTAL
        os.chmod(path, int(argv[2], 8))
    elif cmd == "reread":           # reread PATH N: a reader keeps its cached pages while N O_TRUNC rewrites and an in-place write land
        with open(path, "wb") as f:
            f.write(b"A" * 1_000_000)
        r = os.open(path, os.O_RDONLY)
        assert os.pread(r, 1_000_000, 0) == b"A" * 1_000_000
        stale = 0
        for i in range(int(argv[2])):
            want = bytes([66 + i % 20]) * (700_000 - i)
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            write_all(fd, want)
            os.close(fd)
            fresh = os.open(path, os.O_RDONLY)
            for how, got in (("the reader's descriptor", os.pread(r, 1_000_000, 0)), ("a new descriptor", os.pread(fresh, 1_000_000, 0))):
                if got != want:
                    stale += 1
                    print(f"rewrite {i}: {how} read {len(got)} bytes starting {got[:1]!r}, not {len(want)} of {want[:1]!r}")
            os.close(fresh)
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, b"Z" * 10, 100)
        os.close(fd)
        if os.pread(r, 10, 100) != b"Z" * 10:
            stale += 1
            print("in-place write: the reader still reads the old bytes")
        os.close(r)
        return 1 if stale else 0
    elif cmd == "rewrite-many":     # rewrite-many PATH COUNT: small O_TRUNC rewrites
        for i in range(int(argv[2])):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, b"%d\n" % i)
            os.close(fd)
    else:
        print("unknown command " + cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
