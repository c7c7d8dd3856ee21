#!/usr/bin/env python3
"""Writers for NameTrapIT: programs that save their output by renaming, rotating, deleting and
re-creating it, as real programs do (GROMACS' temp file + rename, ORCA AutoStart, CP2K .bak-N).

Every checkpoint a writer completes is appended to a TRUTH log outside the versions folder, one
line per checkpoint, in the order they were completed:

    TAG I SIZE SHA256

The content is payload(TAG, I, SIZE) (the same function as fsops.py and TestSupport.payload), so
a test regenerates every checkpoint byte for byte and compares it with the versions.

Checks the writers make while they run (read-back of what they just wrote, the state of the names
right after a rename or unlink) are counted; the writer prints "mismatches=N" on stdout, each
mismatch on stderr, and exits 1 when N > 0. With --names (the default mode of versionfs, renames
held) the names are checked too: right after rename(X, X~) X~ is a regular file (not a symlink)
holding X's content and X does not exist for stat(); right after unlink(X) X does not exist.
"""
import hashlib
import os
import stat
import sys
import time


def payload(tag, i, size):
    head = f"{tag}:{i}:{size}\n".encode()
    fill = bytes([65 + (i * 7 + sum(tag.encode())) % 26])
    return (head + fill * max(0, size - len(head)))[:size] if size >= len(head) else head


def size_of(i, base=3000):
    """Sizes differ from one checkpoint to the next (a stale tail would show)."""
    return base + (i * 7919) % 60000


class Writer:
    def __init__(self, truth, names=False):
        self.truth = truth
        self.names = names
        self.mismatches = 0

    def log(self, tag, i, data):
        # One line per completed checkpoint, flushed before the writer goes on.
        with open(self.truth, "a") as f:
            f.write(f"{tag} {i} {len(data)} {hashlib.sha256(data).hexdigest()}\n")

    def bad(self, what):
        self.mismatches += 1
        print("MISMATCH: " + what, file=sys.stderr, flush=True)

    def finish(self):
        print(f"mismatches={self.mismatches}", flush=True)
        return 1 if self.mismatches else 0

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def expect(self, path, data, what):
        try:
            got = self.read(path)
        except OSError as e:
            self.bad(f"{what}: cannot read {path}: {e}")
            return
        if got != data:
            self.bad(f"{what}: {path} holds {got[:40]!r}... ({len(got)} B), not {data[:40]!r}... ({len(data)} B)")

    def renamed_away(self, old, new, data, what):
        """After rename(old, new) of the target: new is a regular file with data, old is gone."""
        if not self.names:
            return
        st = os.lstat(new)
        if not stat.S_ISREG(st.st_mode):
            self.bad(f"{what}: {new} is not a regular file right after the rename (mode {st.st_mode:o})")
        self.expect(new, data, what + " (renamed file)")
        if os.path.exists(old):
            self.bad(f"{what}: {old} still exists for stat() right after it was renamed away")

    def gone(self, path, what):
        if self.names and os.path.exists(path):
            self.bad(f"{what}: {path} still exists for stat() right after unlink")


def write_file(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC, fsync=False):
    fd = os.open(path, flags, 0o644)
    off = 0
    while off < len(data):
        off += os.write(fd, data[off:])
    if fsync:
        os.fsync(fd)
    os.close(fd)


def copy_file(src, dst):
    with open(src, "rb") as f:
        data = f.read()
    write_file(dst, data)
    return data


def atomic(w, target, n, interval, tag="save", first=0, final_close=False):
    """n atomic saves: write the step file, fsync, copy the target to TARGET_prev, rename the
    step file onto the target. The copy must be the previous checkpoint (or the starting content)."""
    prev = w.read(target) if os.path.exists(target) else None
    for i in range(first, first + n):
        if i > first and interval > 0:
            time.sleep(interval)
        data = payload(tag, i, size_of(i))
        step = target + ".step"
        write_file(step, data, fsync=True)
        if os.path.exists(target):
            got = copy_file(target, target + "_prev")
            if prev is not None and got != prev:
                w.bad(f"save {i}: the target read {got[:40]!r}... ({len(got)} B), not the previous checkpoint "
                      f"{prev[:40]!r}... ({len(prev)} B)")
        elif prev is not None:
            w.bad(f"save {i}: the target does not exist before the rename")
        os.rename(step, target)
        w.log(tag, i, data)
        w.expect(target, data, f"save {i} read back")
        if w.names and os.path.exists(step):
            w.bad(f"save {i}: {step} still exists after the rename")
        prev = data
    if final_close:
        i = first + n
        data = payload(tag, i, size_of(i))
        write_file(target, data, os.O_RDWR | os.O_TRUNC)
        w.log(tag, i, data)
        w.expect(target, data, "in-place write after the saves")


def rotate(w, target, n, tag="rot"):
    """n times: rename(X, X~), at once open(X, O_RDWR|O_CREAT|O_TRUNC), write checkpoint i, close."""
    bak = target + "~"
    prev = w.read(target)
    for i in range(n):
        os.rename(target, bak)
        w.renamed_away(target, bak, prev, f"rotation {i}")
        data = payload(tag, i, size_of(i))
        write_file(target, data, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        w.log(tag, i, data)
        w.expect(target, data, f"rotation {i} read back")
        prev = data


def unlink_recreate(w, target, n, tag="re"):
    for i in range(n):
        os.unlink(target)
        w.gone(target, f"unlink {i}")
        data = payload(tag, i, size_of(i))
        write_file(target, data, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        w.log(tag, i, data)
        w.expect(target, data, f"re-create {i} read back")


def rename_loop(w, gbw, ges, n, tag="loop"):
    """n times: write gbw, rename it onto ges, read ges back (must be what was just written);
    then one last write of gbw."""
    for i in range(n):
        data = payload(tag, i, size_of(i, 1000))
        write_file(gbw, data)
        w.log(tag, i, data)
        os.rename(gbw, ges)
        w.renamed_away(gbw, ges, data, f"loop {i}")
        w.expect(ges, data, f"loop {i} read back")
    data = payload(tag, n, size_of(n, 1000))
    write_file(gbw, data)
    w.log(tag, n, data)
    w.expect(gbw, data, "last write read back")


def checkpoint(w, target, tag, i):
    """One checkpoint: open(O_WRONLY|O_CREAT|O_TRUNC), write, close."""
    data = payload(tag, i, size_of(i))
    write_file(target, data)
    w.log(tag, i, data)
    w.expect(target, data, f"checkpoint {i} read back")


def rename_away_later(w, target, away, delay, tag="later"):
    """rename(X, away); sleep DELAY; create X again (checkpoint 0) and rewrite it (checkpoint 1)."""
    prev = w.read(target)
    os.rename(target, away)
    w.expect(away, prev, "renamed file")
    time.sleep(delay)
    for i in range(2):
        checkpoint(w, target, tag, i)


def link_other(w, target, other, tag="ln"):
    """Write the target, hard-link it (link(2), not following the name) to OTHER, read OTHER."""
    checkpoint(w, target, tag, 0)
    data = payload(tag, 0, size_of(0))
    os.link(target, other, follow_symlinks=False)
    w.expect(other, data, "the link")


def mpi(w, target, ranks, saves, truth, here, names):
    """An mpirun-like launcher: forks RANKS processes that exec this script as 'rank R'. Rank 0
    makes SAVES atomic saves onto the target while the others rename their own scratch files back
    and forth as fast as they can until rank 0 is done."""
    kids = []
    for r in range(ranks):
        pid = os.fork()
        if pid == 0:
            try:
                os.execv(sys.executable, [sys.executable, here, "rank", str(r), str(ranks), target, str(saves), truth]
                         + (["--names"] if names else []))
            finally:
                os._exit(127)
        kids.append(pid)
    failed = 0
    for pid in kids:
        _, st = os.waitpid(pid, 0)
        if st != 0:
            failed += 1
            w.bad(f"rank pid {pid} ended with status {st}")
    return failed


def rank(w, r, ranks, target, saves):
    started = f"rank{r}.started"
    done = "ranks.done"
    open(started, "w").close()
    if r == 0:
        deadline = time.time() + 30
        while not all(os.path.exists(f"rank{k}.started") for k in range(1, ranks)):
            if time.time() > deadline:
                w.bad("the other ranks did not start")
                break
            time.sleep(0.01)
        atomic(w, target, saves, 0.05, tag="rank0")
        open(done, "w").close()
        return
    a, b = f"scratch.{r}.a", f"scratch.{r}.b"
    mine = payload(f"scratch{r}", r, 5000 + r)
    write_file(a, mine)
    count = 0
    src, dst = a, b
    deadline = time.time() + 60
    while (not os.path.exists(done) or count < 200) and time.time() < deadline:
        os.rename(src, dst)
        count += 1
        if count % 50 == 0:
            w.expect(dst, mine, f"rank {r} scratch after {count} renames")
            if os.path.exists(src):
                w.bad(f"rank {r}: {src} still exists after it was renamed")
        src, dst = dst, src
    w.expect(src, mine, f"rank {r} scratch at the end")
    with open(f"rank{r}.count", "w") as f:
        f.write(f"{count}\n")


def main(argv):
    names = "--names" in argv
    argv = [a for a in argv if a != "--names"]
    cmd = argv[0]
    if cmd == "atomic":          # atomic TARGET N INTERVAL TRUTH [final]
        w = Writer(argv[4], names)
        atomic(w, argv[1], int(argv[2]), float(argv[3]), final_close=len(argv) > 5 and argv[5] == "final")
    elif cmd == "rotate":        # rotate TARGET N TRUTH
        w = Writer(argv[3], names)
        rotate(w, argv[1], int(argv[2]))
    elif cmd == "unlink-recreate":  # unlink-recreate TARGET N TRUTH
        w = Writer(argv[3], names)
        unlink_recreate(w, argv[1], int(argv[2]))
    elif cmd == "loop":          # loop GBW GES N TRUTH
        w = Writer(argv[4], names)
        rename_loop(w, argv[1], argv[2], int(argv[3]))
    elif cmd == "ck":            # ck TARGET TRUTH TAG I
        w = Writer(argv[2], names)
        checkpoint(w, argv[1], argv[3], int(argv[4]))
    elif cmd == "away-later":    # away-later TARGET AWAY DELAY TRUTH
        w = Writer(argv[4], names)
        rename_away_later(w, argv[1], argv[2], float(argv[3]))
    elif cmd == "link":          # link TARGET OTHER TRUTH
        w = Writer(argv[3], names)
        link_other(w, argv[1], argv[2])
    elif cmd == "mpi":           # mpi TARGET RANKS SAVES TRUTH
        w = Writer(argv[4], names)
        mpi(w, argv[1], int(argv[2]), int(argv[3]), argv[4], os.path.abspath(__file__), names)
    elif cmd == "rank":          # rank R RANKS TARGET SAVES TRUTH (started by mpi)
        w = Writer(argv[5], names)
        rank(w, int(argv[1]), int(argv[2]), argv[3], int(argv[4]))
    else:
        print("unknown command " + cmd, file=sys.stderr)
        return 2
    return w.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
