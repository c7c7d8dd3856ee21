#!/usr/bin/env python3
"""What a program can do to its open file, one family of operations at a time (FileOpsIT).

    fileops.py FAMILY TARGET OUTSIDE RESULT.json
        Runs FAMILY (copy, clone, ioctl, seek, xattr, io) on TARGET, in the current folder, with
        helper files both beside TARGET and in OUTSIDE (a folder that is never mounted). Each call's
        outcome is recorded by name: "ok", "ok:VALUE", or the errno's name. The script keeps a
        model of what TARGET must hold (every successful write applied to it) and records, at
        each close after a write, the model's sha256 and the user.* attributes and inode flags the
        file has then: the version that close makes must have exactly those. RESULT.json gets
        {"results": {...}, "closes": [...], "final": sha256}.

    fileops.py check VERSIONS_DIR RESULT.json
        Checks the saved versions against RESULT.json: one version per recorded close, in order,
        with that close's content, user.* attributes and flags; and the final content is a version.
        Prints what is wrong and exits 1, else exits 0.

Run it on a plain file and through versionfs: the results must be the same but for the documented
differences (README, "What a program can do to its file through versionfs").
"""
import ctypes
import errno
import fcntl
import hashlib
import json
import mmap
import os
import struct
import subprocess
import sys

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR = 0x801C581F, 0x401C5820
FS_NODUMP_FL, FS_APPEND_FL, FS_IMMUTABLE_FL = 0x40, 0x20, 0x10
FS_XFLAG_APPEND = 0x10
FICLONE, FICLONERANGE = 0x40049409, 0x4020940D
FIONREAD, TCGETS, FIGETBSZ, FS_IOC_FIEMAP = 0x541B, 0x5401, 2, 0xC020660B
UNKNOWN_IOCTL = 0x80045A42  # _IOR('Z', 0x42, int): no file system has it


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


def user_xattrs(path, follow=True):
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=follow).hex() for n in sorted(names) if n.startswith("user.")}


def inode_flags(path):
    """The flags chattr sets (None where the file system has none)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)[:4])[0]
    except OSError:
        return None
    finally:
        os.close(fd)


def getflags(fd):
    return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)[:4])[0]


def setflags(fd, flags):
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("q", flags))


def ioc(fd, request, arg):
    """An ioctl whose result is only success or an errno."""
    fcntl.ioctl(fd, request, arg)


class Target:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        self.results = {}
        self.closes = []
        self.n = 0

    def rec(self, key, fn):
        """Runs fn, records its outcome under key, returns its value (None on error)."""
        try:
            v = fn()
        except OSError as e:
            self.results[key] = errno.errorcode.get(e.errno, str(e.errno))
            return None
        self.results[key] = "ok" if v is None or v is True else "ok:%s" % (v,)
        return v if v is not None else True

    def put(self, off, b):
        if off > len(self.data):
            self.data.extend(b"\0" * (off - len(self.data)))
        self.data[off:off + len(b)] = b

    def unique(self, tag):
        """Bytes never written before, so that every version has its own content."""
        self.n += 1
        return ("<%s #%d>\n" % (tag, self.n)).encode()

    def write_at(self, fd, off, tag):
        b = self.unique(tag)
        assert os.pwrite(fd, b, off) == len(b)
        self.put(off, b)

    def closed(self, label):
        """A close after a write just happened: the version it made must be this."""
        self.closes.append({"label": label, "sha256": sha(self.data), "xattrs": user_xattrs(self.path),
                            "flags": inode_flags(self.path)})

    def readback(self, key, fd=None):
        """What the file holds now is what was written (read through a fresh descriptor unless given)."""
        own = fd is None
        if own:
            fd = os.open(self.path, os.O_RDONLY)
        try:
            got = os.pread(fd, len(self.data) + 4096, 0)
        finally:
            if own:
                os.close(fd)
        self.results[key] = "ok:match" if got == bytes(self.data) else "MISMATCH at %d" % next(
            (i for i in range(min(len(got), len(self.data))) if got[i] != self.data[i]), min(len(got), len(self.data)))


def helper(path, fill, size):
    data = (fill * size)[:size]
    with open(path, "wb") as f:
        f.write(data)
    return data


# ---- families ---------------------------------------------------------------------------------

def fam_copy(t, outside):
    """copy_file_range into and out of the target, within it, sendfile both ways, cp --reflink=auto."""
    src_in = helper("fo-src.dat", b"in-src ", 3000)
    src_out = helper(os.path.join(outside, "fo-src.dat"), b"out-src ", 3000)
    fin, fout = os.open("fo-src.dat", os.O_RDONLY), os.open(os.path.join(outside, "fo-src.dat"), os.O_RDONLY)
    din = os.open("fo-dst.dat", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    dout = os.open(os.path.join(outside, "fo-dst.dat"), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    fd = os.open(t.path, os.O_RDWR)
    t.write_at(fd, 0, "copy")

    def into(key, src_fd, src, off):
        n = t.rec(key, lambda: os.copy_file_range(src_fd, fd, 2000, 0, off))
        if n:
            t.put(off, src[:n])

    def out_of(key, dst_fd, dst_name):
        n = t.rec(key, lambda: os.copy_file_range(fd, dst_fd, 1000, 0, 0))
        if n:
            got = os.pread(dst_fd, 4096, 0)
            t.results[key] += ":match" if got == bytes(t.data[:n]) else ":MISMATCH in " + dst_name

    into("cfr_in_inside", fin, src_in, 100)
    into("cfr_in_outside", fout, src_out, 2500)
    out_of("cfr_out_inside", din, "fo-dst.dat")
    out_of("cfr_out_outside", dout, "outside/fo-dst.dat")
    end = len(t.data) + 10
    n = t.rec("cfr_within", lambda: os.copy_file_range(fd, fd, 8, 0, end))  # 8: what the file has in every case
    if n:
        t.put(end, bytes(t.data[:n]))
    os.lseek(fd, 6000, os.SEEK_SET)
    n = t.rec("sendfile_in", lambda: os.sendfile(fd, fout, 0, 700))
    if n:
        t.put(6000, src_out[:n])
    n = t.rec("sendfile_out", lambda: os.sendfile(dout, fd, 0, 300))
    if n:
        t.results["sendfile_out"] += ":match" if os.pread(dout, 4096, 0)[:n] == bytes(t.data[:n]) else ":MISMATCH"
    t.readback("readback_fd", fd)
    os.close(fd)
    t.closed("copy-calls")
    t.readback("readback")
    for f in (fin, fout, din, dout):
        os.close(f)
    # cp onto the target: it tries FICLONE, then copy_file_range, then read/write (coreutils).
    for key, src, data in (("cp_reflink_auto_outside", os.path.join(outside, "fo-cp.dat"), b"cp-outside "),
                           ("cp_reflink_auto_inside", "fo-cp.dat", b"cp-inside ")):
        content = helper(src, data, 5000 + len(t.closes))
        r = subprocess.run(["cp", "--reflink=auto", src, t.path], capture_output=True, text=True)
        t.results[key] = "ok" if r.returncode == 0 else "exit %d: %s" % (r.returncode, r.stderr.strip())
        if r.returncode == 0:
            t.data = bytearray(content)
            t.closed(key)
        t.readback(key + "_readback")


def fam_clone(t, outside):
    """FICLONE / FICLONERANGE with the target as destination: refused, nothing changes."""
    src_in = helper("fo-src.dat", b"in-src ", 8192)
    src_out = helper(os.path.join(outside, "fo-src.dat"), b"out-src ", 8192)
    fin, fout = os.open("fo-src.dat", os.O_RDONLY), os.open(os.path.join(outside, "fo-src.dat"), os.O_RDONLY)
    fd = os.open(t.path, os.O_RDWR)
    t.write_at(fd, 0, "clone")
    os.close(fd)
    t.closed("before-clone")  # the target now shares its inode with this version
    fd = os.open(t.path, os.O_RDWR)
    for key, src_fd, src in (("ficlone_inside", fin, src_in), ("ficlone_outside", fout, src_out), ("ficlone_self", fd, None)):
        if t.rec(key, lambda: ioc(fd, FICLONE, src_fd)) and src is not None:
            t.data = bytearray(src)  # a file system with reflinks (XFS, btrfs) on a plain file
    for key, src_fd, src in (("ficlonerange_inside", fin, src_in), ("ficlonerange_outside", fout, src_out)):
        if t.rec(key, lambda: ioc(fd, FICLONERANGE, struct.pack("qQQQ", src_fd, 0, 4096, 4096))):
            t.put(4096, src[:4096])
    t.readback("readback_fd", fd)
    t.write_at(fd, len(t.data), "after-clone")
    os.close(fd)
    t.closed("after-clone")
    os.close(fin)
    os.close(fout)


def fam_ioctl(t, outside):
    """Inode flags (chattr/lsattr), FIONREAD, tty and unknown ioctls, FIEMAP, FIGETBSZ."""
    fd = os.open(t.path, os.O_RDWR)
    t.write_at(fd, 0, "ioctl")
    os.close(fd)
    t.closed("before-flags")  # shared with this version: the flags must not reach it
    fd = os.open(t.path, os.O_RDONLY)
    flags = t.rec("getflags", lambda: getflags(fd))
    if flags is not None:
        t.rec("setflags_nodump", lambda: setflags(fd, flags | FS_NODUMP_FL))
        t.rec("getflags_after", lambda: getflags(fd))
        for key, bit in (("setflags_append", FS_APPEND_FL), ("setflags_immutable", FS_IMMUTABLE_FL)):
            if t.rec(key, lambda: setflags(fd, flags | FS_NODUMP_FL | bit)):
                setflags(fd, flags | FS_NODUMP_FL)  # plain file as root: allowed; take it back
    xa = t.rec("fsgetxattr", lambda: fcntl.ioctl(fd, FS_IOC_FSGETXATTR, b"\0" * 28))
    if xa not in (None, True):
        t.results["fsgetxattr"] = "ok"
        t.rec("fssetxattr_same", lambda: ioc(fd, FS_IOC_FSSETXATTR, xa))
        xflags = struct.unpack("I", xa[:4])[0]
        if t.rec("fssetxattr_append", lambda: ioc(fd, FS_IOC_FSSETXATTR, struct.pack("I", xflags | FS_XFLAG_APPEND) + xa[4:])):
            fcntl.ioctl(fd, FS_IOC_FSSETXATTR, xa)
    os.lseek(fd, 3, os.SEEK_SET)
    t.rec("fionread", lambda: struct.unpack("i", fcntl.ioctl(fd, FIONREAD, b"\0" * 4))[0])
    t.rec("tcgets", lambda: ioc(fd, TCGETS, b"\0" * 60))
    t.results["isatty"] = "ok:%s" % os.isatty(fd)
    t.rec("unknown_ioctl", lambda: ioc(fd, UNKNOWN_IOCTL, b"\0" * 4))
    t.rec("figetbsz", lambda: ioc(fd, FIGETBSZ, b"\0" * 4))
    t.rec("fiemap", lambda: ioc(fd, FS_IOC_FIEMAP, struct.pack("QQIIII", 0, 2 ** 64 - 1, 0, 0, 0, 0)))
    os.close(fd)
    fd = os.open(t.path, os.O_RDWR)
    t.write_at(fd, len(t.data), "after-flags")
    os.close(fd)
    t.closed("after-flags")
    t.readback("readback")


def fam_seek(t, outside):
    """lseek SEEK_DATA / SEEK_HOLE on a sparse target; what is read is what was written."""
    fd = os.open(t.path, os.O_RDWR)
    size = 1 << 20
    os.ftruncate(fd, 0)
    t.data = bytearray()
    os.ftruncate(fd, size)
    t.put(size - 1, b"\0")
    t.write_at(fd, 0, "seek-head")
    t.write_at(fd, 512 * 1024, "seek-middle")
    for key, off, whence in (("seek_data_0", 0, os.SEEK_DATA), ("seek_hole_0", 0, os.SEEK_HOLE),
                             ("seek_data_8192", 8192, os.SEEK_DATA), ("seek_hole_524288", 512 * 1024, os.SEEK_HOLE),
                             ("seek_data_600000", 600000, os.SEEK_DATA), ("seek_data_end", size, os.SEEK_DATA),
                             ("seek_hole_end", size, os.SEEK_HOLE), ("seek_end", 0, os.SEEK_END)):
        t.rec(key, lambda: os.lseek(fd, off, whence))
    t.readback("readback_fd", fd)
    # What a sparse-aware copier does: copy the data segments the file reports, zeros elsewhere.
    out = bytearray(size)
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        end = os.lseek(fd, start, os.SEEK_HOLE)
        out[start:end] = os.pread(fd, end - start, start)
        pos = end
    t.results["sparse_copy"] = "ok:match" if out == t.data else "MISMATCH"
    os.close(fd)
    t.closed("sparse")


def fam_xattr(t, outside):
    """user.* attributes on the target; set/remove while it shares its inode with its newest version."""
    p = t.path

    def version(tag):
        fd = os.open(p, os.O_RDWR)
        t.write_at(fd, len(t.data), tag)
        os.close(fd)
        t.closed(tag)

    version("x1")
    t.rec("set_a", lambda: os.setxattr(p, "user.a", b"1"))  # shared with x1's version
    t.rec("get_a", lambda: os.getxattr(p, "user.a").decode())
    t.rec("list", lambda: ",".join(sorted(os.listxattr(p))))
    version("x2")
    t.rec("replace_a", lambda: os.setxattr(p, "user.a", b"2", os.XATTR_REPLACE))
    t.rec("create_existing", lambda: os.setxattr(p, "user.a", b"3", os.XATTR_CREATE))
    t.rec("replace_missing", lambda: os.setxattr(p, "user.q", b"3", os.XATTR_REPLACE))
    t.rec("get_missing", lambda: os.getxattr(p, "user.missing"))
    t.rec("remove_missing", lambda: os.removexattr(p, "user.missing"))
    t.rec("set_big", lambda: os.setxattr(p, "user.big", bytes(range(256)) * 15))
    t.rec("get_big", lambda: len(os.getxattr(p, "user.big")))
    t.rec("set_bad_namespace", lambda: os.setxattr(p, "nosuch.a", b"1"))
    t.rec("get_capability", lambda: os.getxattr(p, "security.capability"))
    t.rec("set_trusted", lambda: os.setxattr(p, "trusted.t", b"1"))  # root only, as on a plain file
    if t.results["set_trusted"] == "ok":
        os.removexattr(p, "trusted.t")
    fd = os.open(p, os.O_RDONLY)
    t.rec("fset", lambda: os.setxattr(fd, "user.f", b"fd"))
    t.rec("fget", lambda: os.getxattr(fd, "user.f").decode())
    os.close(fd)
    version("x3")
    t.rec("remove_a", lambda: os.removexattr(p, "user.a"))  # shared with x3's version
    fd = os.open(p, os.O_RDONLY)
    t.rec("fremove", lambda: os.removexattr(fd, "user.f"))
    os.close(fd)
    t.rec("list_after", lambda: ",".join(sorted(os.listxattr(p))))
    # Without following symlinks: in symlink mode the target's name is a symlink.
    t.rec("lset", lambda: os.setxattr(p, "user.l", b"1", follow_symlinks=False))
    if t.results["lset"] == "ok":
        os.removexattr(p, "user.l", follow_symlinks=False)
    version("x4")
    # A file beside the target that is not versioned (in directory mode: passed through).
    with open("fo-other.txt", "w") as f:
        f.write("other\n")
    t.rec("other_set", lambda: os.setxattr("fo-other.txt", "user.o", b"1"))
    t.rec("other_list", lambda: ",".join(os.listxattr("fo-other.txt")))
    t.rec("other_remove", lambda: os.removexattr("fo-other.txt", "user.o"))
    t.readback("readback")


def fam_io(t, outside):
    """flock and fcntl locks, O_APPEND, O_DIRECT, mmap writes (msync; close while mapped; munmap after close)."""
    p = t.path

    def in_child(fn):
        """fn's outcome in another process (a lock held here must be seen there)."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            c = Target.__new__(Target)
            c.results = {}
            c.rec("x", fn)
            os.write(w, c.results["x"].encode())
            os._exit(0)
        os.close(w)
        out = os.read(r, 200).decode()
        os.close(r)
        os.waitpid(pid, 0)
        return out

    def child_flock():
        fd = os.open(p, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)

    def child_getlk():
        fd = os.open(p, os.O_RDONLY)
        try:
            got = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi4x", fcntl.F_RDLCK, 0, 0, 100, 0))
            typ, _, start, length, pid = struct.unpack("hhqqi4x", got)
            return "%s@%d+%d%s" % ({fcntl.F_WRLCK: "W", fcntl.F_RDLCK: "R", fcntl.F_UNLCK: "U"}[typ], start, length,
                                   " by parent" if pid == os.getppid() else "")
        finally:
            os.close(fd)

    def child_setlk():
        fd = os.open(p, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 100, 0)
        finally:
            os.close(fd)

    fd = os.open(p, os.O_RDWR)
    t.rec("flock", lambda: fcntl.flock(fd, fcntl.LOCK_EX))
    t.results["flock_other_process"] = in_child(child_flock)
    t.write_at(fd, 0, "locked")
    fcntl.flock(fd, fcntl.LOCK_UN)
    t.results["flock_after_unlock"] = in_child(child_flock)
    t.rec("fcntl_setlk", lambda: fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0))
    t.results["fcntl_getlk_other"] = in_child(child_getlk)
    t.results["fcntl_setlk_other"] = in_child(child_setlk)
    os.close(fd)  # drops the fcntl lock
    t.closed("locks")
    t.results["fcntl_after_close"] = in_child(child_setlk)

    # O_APPEND: every write goes to the real end, even after another descriptor extended the file.
    fa = os.open(p, os.O_WRONLY | os.O_APPEND)
    fb = os.open(p, os.O_RDWR)

    def append(tag):
        b = t.unique(tag)
        t.rec(tag, lambda: os.write(fa, b))
        t.put(len(t.data), b)

    append("append-1")
    t.write_at(fb, 0, "over")
    t.write_at(fb, len(t.data) + 10, "past-end")
    append("append-2")  # after the end fb made
    os.close(fb)
    t.closed("append-b")
    append("append-3")
    os.close(fa)
    t.closed("append-a")
    t.readback("append_readback")

    # O_DIRECT: aligned buffers (anonymous mmap memory), aligned offsets.
    fd = t.rec("o_direct_open", lambda: os.open(p, os.O_RDWR | os.O_DIRECT))
    if fd not in (None, True):
        t.results["o_direct_open"] = "ok"
        buf = mmap.mmap(-1, 4096)
        buf.write(t.unique("direct").ljust(4096, b"d"))
        t.rec("o_direct_write", lambda: os.pwrite(fd, buf, 8192))
        t.put(8192, bytes(buf))
        back = mmap.mmap(-1, 4096)
        t.rec("o_direct_read", lambda: os.preadv(fd, [back], 8192))
        t.results["o_direct_read"] += ":match" if bytes(back) == bytes(t.data[8192:12288]) else ":MISMATCH"
        os.close(fd)
        t.closed("direct")

    # mmap MAP_SHARED (Python's mmap keeps a dup of the descriptor: closing the map closes it).
    size = len(t.data)
    fd = os.open(p, os.O_RDWR)
    m = mmap.mmap(fd, size)
    b = t.unique("mmap-msync")
    m[100:100 + len(b)] = b
    t.put(100, b)
    t.rec("msync", lambda: m.flush())
    m.close()  # munmap, then close of the dup: a close after a write
    t.closed("mmap-msync")
    os.close(fd)
    fd = os.open(p, os.O_RDWR)
    m = mmap.mmap(fd, size)
    b = t.unique("mmap-no-msync")
    m[300:300 + len(b)] = b
    t.put(300, b)
    os.close(fd)  # still mapped, never synced: the kernel writes dirty pages back before the flush
    t.closed("mmap-close-while-mapped")
    m.close()
    # Raw mmap, close(), write through the mapping, munmap: no close comes after the write.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(p, os.O_RDWR)
    addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), "mmap failed: errno %d" % ctypes.get_errno()
    os.close(fd)
    b = t.unique("mmap-after-close")
    ctypes.memmove(addr + 500, b, len(b))
    t.put(500, b)
    t.results["munmap_after_close"] = "ok" if libc.munmap(addr, size) == 0 else "errno %d" % ctypes.get_errno()
    t.readback("readback")  # kept in the final file (and its final-unclosed version)


FAMILIES = {"copy": fam_copy, "clone": fam_clone, "ioctl": fam_ioctl, "seek": fam_seek, "xattr": fam_xattr, "io": fam_io}


def check(vdir, result_path):
    with open(result_path) as f:
        res = json.load(f)
    rows = []
    with open(os.path.join(vdir, "manifest.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if m.get("version") is not None and m.get("status") == "saved":
                rows.append(m)
    problems = []
    pos = 0
    for c in res["closes"]:
        found = next((i for i in range(pos, len(rows)) if rows[i]["sha256"] == c["sha256"]), None)
        if found is None:
            problems.append("close %s: no version (after #%d) has its content %s" % (c["label"], pos, c["sha256"][:12]))
            continue
        pos = found + 1
        path = os.path.join(vdir, rows[found]["path"])
        with open(path, "rb") as f:
            if sha(f.read()) != c["sha256"]:
                problems.append("close %s: version %s changed" % (c["label"], rows[found]["path"]))
        xa = user_xattrs(path, follow=False)
        if xa != c["xattrs"]:
            problems.append("close %s: version %s has attributes %s, the file had %s at that close"
                            % (c["label"], rows[found]["path"], xa, c["xattrs"]))
        fl = inode_flags(path)
        if c["flags"] is not None and fl is not None and (fl ^ c["flags"]) & FS_NODUMP_FL:
            problems.append("close %s: version %s has flags %#x, the file had %#x at that close"
                            % (c["label"], rows[found]["path"], fl, c["flags"]))
    if not any(r["sha256"] == res["final"] for r in rows):
        problems.append("the final content %s is in no version" % res["final"][:12])
    for p in problems:
        print(p)
    return 1 if problems else 0


def main(argv):
    if argv[1] == "check":
        return check(argv[2], argv[3])
    family, target, outside, out = argv[1:5]
    t = Target(target)
    FAMILIES[family](t, outside)
    with open(out, "w") as f:
        json.dump({"results": t.results, "closes": t.closes, "final": sha(t.data)}, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
