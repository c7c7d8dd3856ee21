#!/usr/bin/env python3
"""versionfs benchmark suite: every measurement side by side in one run (see bench/README.md).

Started by bench/run.sh, which installs tools, builds the jar, compiles vfsbench.c and cleans up
mounts on any exit. This script mounts versionfs (one `versionfs mount` daemon per scenario, so the
daemon's peak RSS can be read per scenario), runs the same workload through the mount and directly
on the same disk, and prints a table plus results/latest.csv and results/latest.json.
"""
import argparse
import csv
import datetime
import glob
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VERSIONFS = os.environ.get("BENCH_VERSIONFS") or os.path.join(REPO, "bin", "versionfs")
BLACKBOX = os.path.join(REPO, "examples", "blackbox.sh")
# The C floor: libfuse2's own example pass-through (fusexmp_fh.c, compiled by run.sh), mounted with
# the options versionfs mounts with (FuseMount.BASE_OPTIONS; keep the two in step).
FLOOR = os.environ.get("BENCH_FLOOR", "")
FLOOR_OPTIONS = os.environ.get("BENCH_FLOOR_OPTIONS", "")

PROBLEMS = []      # versionfs misbehaviour seen during the run (hang, mount left, bad exit, ...)
SESSIONS = []      # one entry per versionfs daemon: scenario, file size, versions, peak RSS
LIVE_MOUNTS = []   # mounts currently up, for emergency cleanup


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def problem(msg):
    PROBLEMS.append(msg)
    log("PROBLEM: " + msg)


def sh(cmd, timeout=600, **kw):
    """Runs a command, returns CompletedProcess; a timeout is recorded as a problem (hang)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        problem(f"command timed out after {timeout}s (hang?): {' '.join(map(str, cmd))}")
        raise


def run_json(cmd, timeout=900):
    r = sh(cmd, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}): {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def drop_caches():
    """Writes back dirty data and drops the guest page cache (root only)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def fuse_mounted(mnt, fstype="fuse.versionfs"):
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] == mnt and parts[2] == fstype:
                return True
    return False


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM", "VmRSS")):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])  # kB
    except OSError:
        pass
    return out


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(1, math.ceil(p / 100 * len(s)))
    return s[k - 1]


class RssSampler:
    """Samples VmHWM of a process every 50 ms (for daemons we cannot ask before they exit)."""

    def __init__(self, pid):
        self.pid = pid
        self.hwm_kb = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            st = proc_status(self.pid)
            if "VmHWM" in st:
                self.hwm_kb = max(self.hwm_kb, st["VmHWM"])
            self._stop.wait(0.05)

    def stop(self):
        self._stop.set()
        self._t.join()
        return self.hwm_kb


class Mount:
    """One `versionfs mount` daemon; always unmounted on exit, problems recorded."""

    def __init__(self, work, scenario, target, label=None):
        self.scenario = scenario
        self.label = label or scenario
        self.target = target
        self.base = os.path.join(work, "vfs-" + scenario)
        self.mnt = os.path.join(self.base, "mnt")
        self.vdir = os.path.join(self.base, "versions")
        self.live = os.path.join(self.vdir, ".versionfs", "live")
        self.logpath = os.path.join(self.base, "daemon.log")
        self.proc = None
        self.hwm_kb = None
        self.max_size = 0

    @property
    def path(self):
        return os.path.join(self.mnt, self.target)

    def __enter__(self):
        os.makedirs(self.mnt, exist_ok=True)
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen([VERSIONFS, "mount", "--target", self.target, "--target-dir", self.vdir, self.mnt],
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        LIVE_MOUNTS.append(self)
        deadline = time.monotonic() + 60
        while not fuse_mounted(self.mnt):
            if self.proc.poll() is not None:
                raise RuntimeError(f"versionfs mount exited with {self.proc.returncode}: see {self.logpath}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"versionfs mount at {self.mnt} not ready after 60 s")
            time.sleep(0.02)
        return self

    def rss(self):
        return proc_status(self.proc.pid)

    def versions(self):
        stem, ext = os.path.splitext(self.target)
        return sorted(glob.glob(os.path.join(self.vdir, glob.escape(stem) + ".[0-9][0-9][0-9][0-9][0-9][0-9]*" + ext)))

    def manifest(self):
        p = os.path.join(self.vdir, "manifest.jsonl")
        if not os.path.exists(p):
            return []
        with open(p) as f:
            return [json.loads(line) for line in f if line.strip()]

    def __exit__(self, *exc):
        st = self.rss()
        self.hwm_kb = st.get("VmHWM")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
            if rc != 0:
                problem(f"[{self.scenario}] versionfs mount exited with code {rc} after SIGTERM (see {self.logpath})")
        except subprocess.TimeoutExpired:
            problem(f"[{self.scenario}] versionfs mount did not exit within 60 s of SIGTERM (hang); killed")
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if fuse_mounted(self.mnt):
            problem(f"[{self.scenario}] mount {self.mnt} left behind after the daemon exited; lazy-unmounting")
            subprocess.run(["fusermount", "-u", "-z", self.mnt])
        self.logf.close()
        LIVE_MOUNTS.remove(self)
        man = self.manifest()
        SESSIONS.append({
            "scenario": self.label,
            "key": self.scenario,
            "largest_file_bytes": self.max_size,
            "versions": sum(1 for m in man if "version" in m),
            "lost": sum(1 for m in man if m.get("status") == "lost"),
            "peak_rss_kib": self.hwm_kb,
        })
        return False


class FloorMount:
    """libfuse2's fusexmp_fh (the C floor) over the whole root, with versionfs's mount options;
    a file DIR/x on the work disk is reached as MNT/DIR/x. Unmounted on exit."""

    def __init__(self, work):
        self.base = os.path.join(work, "floor")
        self.mnt = os.path.join(self.base, "mnt")
        self.data = os.path.join(self.base, "data")
        self.proc = None

    def path(self, name):
        return self.mnt + os.path.join(self.data, name)

    def __enter__(self):
        os.makedirs(self.mnt, exist_ok=True)
        os.makedirs(self.data, exist_ok=True)
        self.logf = open(os.path.join(self.base, "floor.log"), "w")
        self.proc = subprocess.Popen([FLOOR, "-f", self.mnt, "-o", "fsname=floor,subtype=floor," + FLOOR_OPTIONS],
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not fuse_mounted(self.mnt, "fuse.floor"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fusexmp_fh did not mount at {self.mnt}: see {self.base}/floor.log")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        subprocess.run(["fusermount", "-u", self.mnt])
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if fuse_mounted(self.mnt, "fuse.floor"):
            subprocess.run(["fusermount", "-u", "-z", self.mnt])
        self.logf.close()
        shutil.rmtree(self.base, ignore_errors=True)
        return False


def settle_copy(live_dir, name, timeout=300):
    """Waits for versionfs's background copy-on-write copy of `name` to finish; returns seconds or None."""
    t0 = time.monotonic()
    live = os.path.join(live_dir, name)
    seen = False
    while time.monotonic() - t0 < timeout:
        try:
            size = os.stat(live).st_size
        except FileNotFoundError:
            return None
        tmps = glob.glob(os.path.join(live_dir, ".versionfs~" + glob.escape(name) + "~*"))
        if tmps:
            seen = True
            try:
                if all(os.stat(t).st_size >= size for t in tmps):
                    return time.monotonic() - t0
            except FileNotFoundError:
                pass
        elif time.monotonic() - t0 > 3:
            return None if not seen else time.monotonic() - t0
        time.sleep(0.01)
    problem(f"background copy of {name} not finished after {timeout}s")
    return None


# ---- measurements ------------------------------------------------------------------------------

def bench_seq(cfg, R):
    mib, reps = cfg.seq_mib, cfg.seq_reps
    direct = os.path.join(cfg.work, "direct", "seq")
    os.makedirs(direct, exist_ok=True)
    dpath = os.path.join(direct, "seq.dat")
    res = {k: {"vfs": [], "direct": [], "floor": []} for k in ("write_fsync", "write_buffered", "read_cold", "read_warm")}
    copy_s = []
    with Mount(cfg.work, "seq", "seq.dat", f"seq write/read {mib} MiB") as m, FloorMount(cfg.work) as fl:
        m.max_size = mib << 20
        for rep in range(reps):
            order = [("direct", dpath), ("floor", fl.path("seq.dat")), ("vfs", m.path)]
            order = order[rep % 3:] + order[:rep % 3]   # rotate: each side goes first in turn
            if rep % 2:
                order.reverse()
            for side, path in order:   # durable write: write() + fsync() + close()
                drop_caches()
                r = run_json([cfg.tool, "seqwrite", path, str(mib), "1024", "fsync"])
                res["write_fsync"][side].append(r["bytes"] / r["total_s"] / 1e6)
                if side == "vfs":
                    c = settle_copy(m.live, "seq.dat")
                    if c is not None:
                        copy_s.append(c)
            for side, path in order:   # cold read, then warm read
                drop_caches()
                r = run_json([cfg.tool, "seqread", path, "1024"])
                if r["bytes"] != mib << 20:
                    problem(f"seqread of {path} returned {r['bytes']} bytes, expected {mib << 20}")
                res["read_cold"][side].append(r["bytes"] / r["read_s"] / 1e6)
                r = run_json([cfg.tool, "seqread", path, "1024"])
                res["read_warm"][side].append(r["bytes"] / r["read_s"] / 1e6)
            for side, path in order:   # buffered write: write() + close(), page cache absorbs it
                drop_caches()
                r = run_json([cfg.tool, "seqwrite", path, str(mib), "1024", "nofsync"])
                res["write_buffered"][side].append(r["bytes"] / r["total_s"] / 1e6)
                if side == "vfs":
                    settle_copy(m.live, "seq.dat")
            log(f"seq rep {rep + 1}/{reps}: " + ", ".join(
                f"{k} vfs {v['vfs'][-1]:.0f} floor {v['floor'][-1]:.0f} direct {v['direct'][-1]:.0f} MB/s"
                for k, v in res.items()))
        R["raw"]["seq"] = {"mib": mib, "reps": reps, "mb_per_s": res, "cow_copy_s": copy_s}
    shutil.rmtree(m.base, ignore_errors=True)
    os.unlink(dpath)
    med = {k: {s: statistics.median(v[s]) for s in v} for k, v in res.items()}
    note = f"{mib} MiB file, 1 MiB blocks, median of {reps}; C floor = libfuse2 fusexmp_fh, same mount options"

    def paired(k, other):  # median of the per-repetition ratios (the sides ran minutes apart at most)
        return statistics.median(a / b for a, b in zip(res[k]["vfs"], res[k][other]))
    for k, label, goal in (("write_fsync", "seq write MB/s (write+fsync+close)", 0.6),
                           ("write_buffered", "seq write MB/s (buffered, no fsync)", 0.6),
                           ("read_cold", "seq read MB/s (cold: caches dropped)", 0.7),
                           ("read_warm", "seq read MB/s (warm: page cache)", 0.7)):
        R["rows"].append(row(label, med[k]["vfs"], med[k]["direct"], f"vfs/direct >= {goal}",
                             med[k]["vfs"] / med[k]["direct"] >= goal,
                             note + f"; paired ratios vfs/direct {paired(k, 'direct'):.2f}, vfs/floor"
                             f" {paired(k, 'floor'):.2f}, floor/direct"
                             f" {statistics.median(a / b for a, b in zip(res[k]['floor'], res[k]['direct'])):.2f}",
                             floor=med[k]["floor"]))
    if copy_s:
        R["rows"].append(row(f"background CoW copy after close, s ({mib} MiB)", statistics.median(copy_s), None,
                             "info", None, "versionfs only: copy of the live file made after each capture"))


# ---- back-to-back rewrites: the daemon's CPU -------------------------------------------------

THREAD_GROUPS = (("hasher", ("versionfs-hashe",)), ("copier", ("versionfs-copie", "versionfs-separ")),
                 ("jit", ("C1 CompilerThre", "C2 CompilerThre")), ("gc", ("GC Thread", "G1 ", "VM Thread")))


def cpu_s(pid):
    """CPU seconds (user + sys) of a process, exited threads included; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_cpu(pid):
    """CPU seconds of a versionfs daemon by thread group: hasher, copier (copy-on-write copies and the
    separator), jit, gc, and the rest ("fuse": libfuse's worker threads answering the requests, and
    anything else, exited threads included), from /proc/PID/task/*/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {k: 0.0 for k, _ in THREAD_GROUPS}
    total = cpu_s(pid) or 0.0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tids = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        for group, prefixes in THREAD_GROUPS:
            if name.startswith(prefixes):
                out[group] += (int(fields[11]) + int(fields[12])) / tick
                break
    out["fuse"] = total - sum(out[k] for k, _ in THREAD_GROUPS)
    out["total"] = total
    return out


def cpu_delta(a, b):
    return {k: round(b[k] - a[k], 3) for k in a}


def wait_named(m, n, timeout=120):
    """Waits until n version files are on disk; their number. The newest version gets its name
    only once the program can no longer write its inode (the live file separated from it, after a
    quiet moment: README, "What you get"), so right after the last close it is not there yet."""
    t0 = time.monotonic()
    while len(m.versions()) < n and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return len(m.versions())


def wait_listed(m, n, timeout=600):
    """Waits until the mount's manifest lists n saved versions, each with its sha256; seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        done = [x for x in m.manifest() if "version" in x and x.get("status") == "saved" and x.get("sha256")]
        if len(done) >= n:
            return time.monotonic() - t0
        time.sleep(0.05)
    problem(f"[{m.scenario}] {n} versions not listed with their sha256 after {timeout} s")
    return None


def check_hashes(m):
    """Every saved version's file against its manifest sha256 (read here, outside any timing); then
    the files are removed (they are 512 MiB each). Returns the number checked."""
    import hashlib
    checked = 0
    for x in m.manifest():
        if "version" not in x or x.get("status") != "saved":
            continue
        p = os.path.join(m.vdir, x["path"])
        if not os.path.exists(p):
            continue
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != x.get("sha256"):
            problem(f"[{m.scenario}] version {x['path']}: sha256 {h.hexdigest()} but the manifest says {x.get('sha256')}")
        checked += 1
        os.unlink(p)
    return checked


def bench_b2b(cfg, R):
    """Back-to-back rewrites, as a program that checkpoints a big file in a loop: K rewrites of MIB MiB
    in a row (each open(O_TRUNC), 1 MiB writes, [fsync], close: on versionfs each is a version),
    through versionfs, through the C floor and directly, alternating sides every repetition. The
    sides never overlap: before the next side starts, versionfs has listed every version with its
    sha256 (the time that takes after the job's last close is reported: the hashing that did not fit
    in the job's own time). The daemon's CPU is read from /proc per thread group over the job's
    time and over the whole, the floor daemon's over the job's time."""
    mib, k, reps = cfg.b2b_mib, cfg.b2b_rewrites, cfg.b2b_reps
    direct = os.path.join(cfg.work, "direct", "b2b")
    os.makedirs(direct, exist_ok=True)
    dpath = os.path.join(direct, "b2b.dat")
    raw = {}
    seed = 1000
    with Mount(cfg.work, "b2b", "b2b.dat", f"back-to-back rewrites {mib} MiB") as m, FloorMount(cfg.work) as fl:
        m.max_size = mib << 20
        listed = 0
        for mode in ("fsync", "nofsync"):
            res = raw[mode] = {"vfs": [], "floor": [], "direct": [], "vfs_cpu_job": [], "vfs_cpu_all": [],
                               "floor_cpu_job": [], "vfs_listed_after_s": []}
            for rep in range(reps):
                order = [("vfs", m.path), ("floor", fl.path("b2b.dat")), ("direct", dpath)]
                order = order[rep % 3:] + order[:rep % 3]
                if rep % 2:
                    order.reverse()
                for side, path in order:
                    drop_caches()
                    pid = m.proc.pid if side == "vfs" else fl.proc.pid if side == "floor" else None
                    c0 = daemon_cpu(pid) if side == "vfs" else cpu_s(pid) if pid else None
                    t0 = time.monotonic()
                    for _ in range(k):
                        seed += 1
                        run_json([cfg.tool, "seqwrite", path, str(mib), "1024", mode, str(seed)])
                    wall = time.monotonic() - t0
                    res[side].append(k * (mib << 20) / wall / 1e6)
                    if side == "vfs":
                        res["vfs_cpu_job"].append(cpu_delta(c0, daemon_cpu(pid)))
                        listed += k
                        res["vfs_listed_after_s"].append(wait_listed(m, listed))
                        res["vfs_cpu_all"].append(cpu_delta(c0, daemon_cpu(pid)))
                    elif side == "floor":
                        res["floor_cpu_job"].append(round(cpu_s(pid) - c0, 3))
                log(f"b2b {mode} rep {rep + 1}/{reps}: vfs {res['vfs'][-1]:.0f} floor {res['floor'][-1]:.0f} "
                    f"direct {res['direct'][-1]:.0f} MB/s; vfs daemon CPU during the job {res['vfs_cpu_job'][-1]}, "
                    f"floor daemon {res['floor_cpu_job'][-1]} s; last version listed "
                    f"{res['vfs_listed_after_s'][-1]:.2f} s after the job")
                res.setdefault("checked", 0)
                res["checked"] += check_hashes(m)
    shutil.rmtree(m.base, ignore_errors=True)
    if os.path.exists(dpath):
        os.unlink(dpath)
    R["raw"]["b2b"] = {"mib": mib, "rewrites": k, "reps": reps, "mb_per_s": raw}
    for mode, label in (("fsync", "write+fsync"), ("nofsync", "buffered write")):
        res = raw[mode]
        ratios = [a / b for a, b in zip(res["vfs"], res["floor"])]
        med = statistics.median(ratios)
        cj = {g: statistics.median(c[g] for c in res["vfs_cpu_job"]) for g in res["vfs_cpu_job"][0]}
        ca = {g: statistics.median(c[g] for c in res["vfs_cpu_all"]) for g in res["vfs_cpu_all"][0]}
        R["rows"].append(row(f"{k} x {mib} MiB back-to-back, {label}, MB/s", statistics.median(res["vfs"]),
                             statistics.median(res["direct"]), "vfs/floor >= 0.95", med >= 0.95,
                             f"vfs/floor per repetition {', '.join(f'{r:.2f}' for r in ratios)} (median {med:.2f}); "
                             f"every version listed with its sha256 {statistics.median(res['vfs_listed_after_s']):.2f} s"
                             f" after the job (median); {res['checked']} versions checked against their sha256",
                             floor=statistics.median(res["floor"])))
        R["rows"].append(row(f"daemon CPU s during {k} x {mib} MiB {label}: versionfs / C floor", cj["total"],
                             None, "info", None,
                             f"versionfs by thread during the job: " + ", ".join(f"{g} {cj[g]:.2f}" for g in cj if g != "total")
                             + f"; until every version is listed: total {ca['total']:.2f} (hasher {ca['hasher']:.2f},"
                             f" copier {ca['copier']:.2f}); medians of {reps}",
                             floor=statistics.median(res["floor_cpu_job"])))


def bench_close(cfg, R):
    """close() latency of a full rewrite, captured (versionfs) vs plain (direct), two ways:
    back to back (the program rewrites as fast as it can: the daemon's background hash and copy of
    the previous version still run) and paced (the program computes between rewrites)."""
    direct = os.path.join(cfg.work, "direct", "close")
    os.makedirs(direct, exist_ok=True)
    dpath = os.path.join(direct, "close.dat")
    R["raw"]["close"] = {}
    for mib, count, pcount, pause_ms in cfg.close_counts:
        res = {}
        with Mount(cfg.work, f"close{mib}", "close.dat", f"close() latency {mib} MiB") as m:
            m.max_size = mib << 20
            for mode, n, pause in (("b2b", count, 0), ("paced", pcount, pause_ms)):
                drop_caches()
                d = run_json([cfg.tool, "closelat", dpath, str(mib), str(n), str(pause)])
                drop_caches()
                before = len(m.versions())
                v = run_json([cfg.tool, "closelat", m.path, str(mib), str(n), str(pause)])
                nver = wait_named(m, before + n) - before
                if nver != n:
                    problem(f"close-latency {mib} MiB {mode}: {n} rewrites closed but {nver} new versions on disk")
                res[mode] = {"vfs": v, "direct": d, "versions": nver}
                for f in m.versions():  # keep the disk from filling up with 512 MiB versions
                    os.unlink(f)
        shutil.rmtree(m.base, ignore_errors=True)
        os.unlink(dpath)
        R["raw"]["close"][str(mib)] = res
        for mode in ("b2b", "paced"):
            v, d = res[mode]["vfs"], res[mode]["direct"]
            n = len(v["close_us"])
            vm, vp = statistics.median(v["close_us"]) / 1000, pct(v["close_us"], 99) / 1000
            dm, dp = statistics.median(d["close_us"]) / 1000, pct(d["close_us"], 99) / 1000
            label = "back-to-back" if mode == "b2b" else f"paced {v['pause_ms']} ms"
            log(f"close {mib} MiB {label} x{n}: vfs median {vm:.3f} p99 {vp:.3f} ms; "
                f"direct median {dm:.3f} p99 {dp:.3f} ms")
            goal = mib == 512
            note = f"n={n}, {label}; p99 = nearest rank" + (" (= max for n < 100)" if n < 100 else "")
            R["rows"].append(row(f"close() median ms @ {mib} MiB, {label}", vm, dm, "<= 2 ms" if goal else "info",
                                 (vm <= 2.0) if goal else None, note))
            R["rows"].append(row(f"close() p99 ms @ {mib} MiB, {label}", vp, dp, "<= 2 ms" if goal else "info",
                                 (vp <= 2.0) if goal else None, note))
        if mib == 512:
            v, d = res["b2b"]["vfs"], res["b2b"]["direct"]
            R["rows"].append(row(f"open(O_TRUNC) p99 ms @ {mib} MiB, back-to-back", pct(v["open_us"], 99) / 1000,
                                 pct(d["open_us"], 99) / 1000, "info", None,
                                 f"the next rewrite's open right after a capture (median vfs "
                                 f"{statistics.median(v['open_us']) / 1000:.3f} ms)"))
            R["rows"].append(row(f"write 512 MiB s (before close), back-to-back", statistics.median(v["write_us"]) / 1e6,
                                 statistics.median(d["write_us"]) / 1e6, "info", None,
                                 "median time of the write() calls of one rewrite (buffered)"))


def bench_rss(cfg, R):
    """Daemon memory against version count: one mount, the 4-writer workload repeated."""
    points = []
    with Mount(cfg.work, "rss-growth", "target.txt", "memory vs version count") as m:
        m.max_size = cfg.rw_size
        lock = os.path.join(cfg.work, "rss.lock")
        st = m.rss()
        points.append({"versions": 0, "rss_kib": st.get("VmRSS"), "hwm_kib": st.get("VmHWM")})
        for b in range(cfg.rss_batches):
            run_json([cfg.tool, "rewriters", m.path, str(cfg.writers), str(cfg.rewrites), str(cfg.rw_size),
                      str(cfg.rw_chunk), lock])
            n = len(m.versions())
            st = m.rss()
            points.append({"versions": n, "rss_kib": st.get("VmRSS"), "hwm_kib": st.get("VmHWM")})
            log(f"rss growth: {n} versions, VmRSS {st.get('VmRSS', 0) / 1024:.1f} MiB, VmHWM {st.get('VmHWM', 0) / 1024:.1f} MiB")
    shutil.rmtree(m.base, ignore_errors=True)
    R["raw"]["rss_growth"] = points
    first = next((p for p in points if p["versions"] > 0), None)
    last = points[-1]
    if first and last is not first and first["hwm_kib"] and last["hwm_kib"]:
        R["rows"].append(row(f"daemon peak RSS MiB, {last['versions']} vs {first['versions']} versions (same mount)",
                             last["hwm_kib"] / 1024, first["hwm_kib"] / 1024, "flat (report)", None,
                             "VmHWM after each batch of 4x250 64 KiB rewrites: " +
                             ", ".join(f"{p['versions']}: {p['hwm_kib'] / 1024:.0f}" for p in points)))


def verify(cfg, files):
    """Runs vfsbench verify; returns (set of valid (w, seq), torn list, duplicates)."""
    valid, torn, dup = set(), [], 0
    for i in range(0, len(files), 200):
        r = sh([cfg.tool, "verify"] + files[i:i + 200])
        for line in r.stdout.splitlines():
            parts = line.split()
            if parts[0] == "OK":
                key = (int(parts[1]), int(parts[2]))
                if key in valid:
                    dup += 1
                valid.add(key)
            else:
                torn.append(line)
    return valid, torn, dup


INOTIFY_LOOP = r'''i=0; inotifywait -m . -e close_write 2>"$1" | while read path action file; do if [[ "$file" = "target.txt" ]]; then i=$((i+1)); cp $path/$file versions/$i.txt; fi; done'''


def wait_stable(dirpath, quiet=3.0, timeout=300):
    last, t_last = -1, time.monotonic()
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        n = len(os.listdir(dirpath))
        if n != last:
            last, t_last = n, time.monotonic()
        elif time.monotonic() - t_last >= quiet:
            return n
        time.sleep(0.1)
    return last


def bench_rewriters(cfg, R):
    W, N, size, chunk = cfg.writers, cfg.rewrites, cfg.rw_size, cfg.rw_chunk
    tot = {"vfs": {"completed": 0, "valid": 0, "torn": 0, "missed": 0, "dup": 0, "wall": []},
           "inotify": {"completed": 0, "valid": 0, "torn": 0, "missed": 0, "dup": 0, "wall": []},
           "direct": {"wall": []}}
    examples = {"vfs": [], "inotify": []}
    lock = os.path.join(cfg.work, "rewriters.lock")
    for rnd in range(cfg.rw_rounds):
        # 1. plain direct, nothing watching: the workload's own speed
        d = os.path.join(cfg.work, "direct", "rw")
        os.makedirs(d, exist_ok=True)
        r = run_json([cfg.tool, "rewriters", os.path.join(d, "target.txt"), str(W), str(N), str(size), str(chunk), lock])
        tot["direct"]["wall"].append(r["wall_s"])
        shutil.rmtree(d)

        # 1b. the same through the C floor (libfuse2 fusexmp_fh, no versioning)
        if FLOOR:
            with FloorMount(cfg.work) as fl:
                r = run_json([cfg.tool, "rewriters", fl.path("target.txt"), str(W), str(N), str(size), str(chunk), lock])
                tot.setdefault("floor", {"wall": []})["wall"].append(r["wall_s"])

        # 2. the seed README's inotifywait loop on a direct folder
        d = os.path.join(cfg.work, "inotify")
        os.makedirs(os.path.join(d, "versions"), exist_ok=True)
        err = os.path.join(cfg.work, "inotifywait.err")
        open(err, "w").close()
        loop = subprocess.Popen(["bash", "-c", INOTIFY_LOOP, "inotify-loop", err], cwd=d, start_new_session=True,
                                stdout=subprocess.DEVNULL)
        t0 = time.monotonic()
        while "Watches established" not in open(err).read():
            if time.monotonic() - t0 > 30:
                raise RuntimeError("inotifywait did not start: " + open(err).read())
            time.sleep(0.02)
        r = run_json([cfg.tool, "rewriters", os.path.join(d, "target.txt"), str(W), str(N), str(size), str(chunk), lock])
        wait_stable(os.path.join(d, "versions"))
        os.killpg(loop.pid, signal.SIGTERM)
        loop.wait()
        files = sorted(glob.glob(os.path.join(d, "versions", "*.txt")))
        valid, torn, dup = verify(cfg, files)
        t = tot["inotify"]
        t["completed"] += sum(r["completed"]); t["valid"] += len(valid); t["torn"] += len(torn); t["dup"] += dup
        t["missed"] += sum(r["completed"]) - len(valid); t["wall"].append(r["wall_s"])
        t.setdefault("copies", 0)
        t["copies"] += len(files)
        examples["inotify"] += torn[:3]
        shutil.rmtree(d)

        # 3. versionfs
        with Mount(cfg.work, "rewriters", "target.txt", f"{W} x {N} rewriters") as m:
            m.max_size = size
            r = run_json([cfg.tool, "rewriters", m.path, str(W), str(N), str(size), str(chunk), lock])
        files = m.versions()
        valid, torn, dup = verify(cfg, files)
        man = m.manifest()
        lost = [x for x in man if x.get("status") == "lost"]
        t = tot["vfs"]
        t["completed"] += sum(r["completed"]); t["valid"] += len(valid); t["torn"] += len(torn); t["dup"] += dup
        t["missed"] += sum(r["completed"]) - len(valid); t["wall"].append(r["wall_s"])
        t.setdefault("versions", 0); t.setdefault("manifest_lost", 0)
        t["versions"] += len(files); t["manifest_lost"] += len(lost)
        if torn or sum(r["completed"]) != len(valid) or lost or any(r["errors"]):
            problem(f"rewriters round {rnd + 1}: versionfs kept {len(valid)} valid versions of {sum(r['completed'])}"
                    f" completed rewrites; {len(torn)} torn (e.g. {torn[:3]}), {dup} duplicates, {len(lost)} lost in"
                    f" manifest, writer errors {r['errors']}; files kept in {m.base}")
            examples["vfs"] += torn[:3]
        else:
            shutil.rmtree(m.base, ignore_errors=True)
        log(f"rewriters round {rnd + 1}/{cfg.rw_rounds}: vfs missed {t['missed']} torn {t['torn']}; "
            f"inotify missed {tot['inotify']['missed']} torn {tot['inotify']['torn']} (cumulative)")
    R["raw"]["rewriters"] = {"writers": W, "rewrites": N, "size": size, "chunk": chunk, "rounds": cfg.rw_rounds,
                             "totals": tot, "torn_examples": examples}
    v, i = tot["vfs"], tot["inotify"]
    note = f"{cfg.rw_rounds} round(s) of {W} x {N} rewrites of {size // 1024} KiB in {chunk // 1024} KiB writes; baseline = inotifywait loop"
    R["rows"] += [
        row(f"versions missed ({W}x{N} rewrites)", v["missed"], i["missed"], "0", v["missed"] == 0,
            note + f"; completed vfs {v['completed']}, inotify {i['completed']}"),
        row(f"versions torn ({W}x{N} rewrites)", v["torn"], i["torn"], "0", v["torn"] == 0,
            f"inotify made {i.get('copies', 0)} copies, {i['dup']} duplicate(s)"),
    ]
    vw, dw = statistics.median(v["wall"]), statistics.median(tot["direct"]["wall"])
    fw = statistics.median(tot["floor"]["wall"]) if "floor" in tot else None
    R["rows"].append(row(f"rewrites/s ({W} writers, {size // 1024} KiB)", W * N / vw, W * N / dw, "info", None,
                         "baseline = same workload direct, nothing watching; C floor = same through fusexmp_fh",
                         floor=W * N / fw if fw else None))


def check_blackbox_versions(files, iterations, kib):
    """Each version must be one complete iteration: header line + kib KiB of its letter; all iterations present."""
    seen, bad = set(), []
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        nl = data.find(b"\n")
        mo = re.match(rb"iteration (\d+) written by rank (\d+) pid \d+$", data[:nl]) if nl > 0 else None
        if not mo:
            bad.append(f"{f}: bad header")
            continue
        i = int(mo.group(1))
        body = data[nl + 1:]
        letter = bytes([65 + i % 26])
        if len(body) != kib * 1024 or body.count(letter) != len(body):
            bad.append(f"{f}: incomplete body for iteration {i} ({len(body)} bytes)")
            continue
        seen.add(i)
    missed = iterations - len(seen & set(range(1, iterations + 1)))
    return missed, bad


def run_available():
    try:
        r = subprocess.run([VERSIONFS, "run", "--help"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0 and "--target" in (r.stdout + r.stderr)


def run_job(cfg, d, args, cwd, it, kib, label):
    """One `versionfs run` of the example job; returns (wall seconds, peak RSS KiB, versions check)."""
    t0 = time.monotonic()
    p = subprocess.Popen([VERSIONFS, "run"] + args + ["--json", "--", "bash", BLACKBOX] + cfg.ex_args(d if cwd is None else "job.gbw"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=cwd)
    sampler = RssSampler(p.pid)
    try:
        out, err = p.communicate(timeout=1800)
    except subprocess.TimeoutExpired:
        problem(f"versionfs run ({label}) of the example job did not finish within 1800 s (hang)")
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
    wall = time.monotonic() - t0
    hwm = sampler.stop()
    if p.returncode != 0:
        problem(f"versionfs run ({label}) of the example job exited {p.returncode}: {err.strip()[-500:]}")
    job = os.path.join(d, "job.gbw")
    if os.path.islink(job) or not os.path.isfile(job):
        problem(f"after versionfs run ({label}), {job} is not a regular file")
    vdir = os.path.join(d, "job.gbw.versions")
    files = sorted(glob.glob(os.path.join(vdir, "job.[0-9][0-9][0-9][0-9][0-9][0-9]*.gbw")))
    missed, bad = check_blackbox_versions(files, it, kib)
    if missed or bad or len(files) != it:
        problem(f"example job (versionfs run, {label}): {len(files)} versions for {it} iterations, "
                f"{missed} iterations missing, bad: {bad[:3]}; kept in {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)
    return wall, hwm, {"variant": label, "versions": len(files), "missed": missed, "bad": bad[:5]}


def bench_example(cfg, R):
    it, workers, kib, reps = cfg.ex_iterations, 4, 256, cfg.ex_reps
    cfg.ex_args = lambda d: [d if d == "job.gbw" else os.path.join(d, "job.gbw"), str(it), str(workers), str(kib)]
    has_run = run_available()
    names = {"direct": "plain", "run": "versionfs run", "run-dir": "versionfs run --mode dir",
             "premounted": "pre-mounted versionfs mount"}
    walls = {k: [] for k in names}
    peak = {"run": 0, "run-dir": 0}
    details = []
    for rep in range(reps):
        variants = ["direct", "premounted"] + (["run", "run-dir"] if has_run else [])
        if rep % 2:
            variants.reverse()
        for var in variants:
            if var == "direct":
                d = os.path.join(cfg.work, "direct", "example")
                os.makedirs(d, exist_ok=True)
                t0 = time.monotonic()
                r = sh(["bash", BLACKBOX] + cfg.ex_args(d), timeout=1800)
                walls[var].append(time.monotonic() - t0)
                if r.returncode != 0:
                    raise RuntimeError("blackbox.sh failed: " + r.stderr)
                shutil.rmtree(d)
            elif var == "premounted":
                with Mount(cfg.work, "example", "job.gbw", "example job, pre-mounted") as m:
                    m.max_size = kib * 1024
                    t0 = time.monotonic()
                    r = sh(["bash", BLACKBOX] + cfg.ex_args(m.mnt), timeout=1800)
                    walls[var].append(time.monotonic() - t0)
                if r.returncode != 0:
                    problem(f"blackbox.sh under a premounted versionfs exited {r.returncode}: {r.stderr.strip()}")
                missed, bad = check_blackbox_versions(m.versions(), it, kib)
                details.append({"variant": var, "versions": len(m.versions()), "missed": missed, "bad": bad[:5]})
                if missed or bad or len(m.versions()) != it:
                    problem(f"example job (premounted): {len(m.versions())} versions for {it} iterations, "
                            f"{missed} iterations missing, bad: {bad[:3]}; kept in {m.base}")
                else:
                    shutil.rmtree(m.base, ignore_errors=True)
            else:
                d = os.path.join(cfg.work, var + "-example")
                os.makedirs(d, exist_ok=True)
                if var == "run":
                    w, hwm, det = run_job(cfg, d, ["--target", os.path.join(d, "job.gbw")], None, it, kib, var)
                else:
                    w, hwm, det = run_job(cfg, d, ["--mode", "dir", "--target", "job.gbw"], d, it, kib, var)
                walls[var].append(w)
                peak[var] = max(peak[var], hwm)
                details.append(det)
            log(f"example rep {rep + 1}/{reps} {names[var]}: {walls[var][-1]:.2f} s")
    for var in ("run", "run-dir"):
        if peak[var]:
            SESSIONS.append({"scenario": f"example job, {names[var]}", "largest_file_bytes": kib * 1024 + 64,
                             "versions": it, "lost": None, "peak_rss_kib": peak[var]})
    fixed = []
    if has_run:   # the fixed cost of the wrapper: JVM start, mount, symlink, unmount, restore
        for _ in range(reps):
            d = os.path.join(cfg.work, "run-true")
            os.makedirs(d, exist_ok=True)
            t0 = time.monotonic()
            r = sh([VERSIONFS, "run", "--target", os.path.join(d, "job.gbw"), "--", "true"], timeout=300)
            fixed.append(time.monotonic() - t0)
            if r.returncode != 0:
                problem(f"versionfs run -- true exited {r.returncode}: {r.stderr.strip()[-300:]}")
            shutil.rmtree(d, ignore_errors=True)
    R["raw"]["example"] = {"iterations": it, "workers": workers, "kib": kib, "reps": reps, "wall_s": walls,
                           "run_available": has_run, "checks": details, "run_true_s": fixed}

    def paired(var):  # each repetition ran every variant back to back: the ratio within a repetition
        return statistics.median(a / b for a, b in zip(walls[var], walls["direct"]))
    dm = statistics.median(walls["direct"])
    note = f"examples/blackbox.sh {it} iterations x {workers} workers x {kib} KiB, median of {reps}, plain = no versionfs"
    if has_run:
        rm = statistics.median(walls["run"])
        R["rows"].append(row("example job wall s: versionfs run / plain", rm, dm, "ratio <= 1.3", rm / dm <= 1.3,
                             note + f"; includes JVM start, mount, unmount, restore; median of per-repetition"
                             f" ratios {paired('run'):.2f}"))
        rd = statistics.median(walls["run-dir"])
        R["rows"].append(row("example job wall s: run --mode dir / plain", rd, dm, "info", None,
                             f"working folder served through versionfs; median of per-repetition ratios"
                             f" {paired('run-dir'):.2f}"))
        R["rows"].append(row("versionfs run -- true: fixed cost s", statistics.median(fixed), None, "info", None,
                             f"JVM start + mount + unmount + restore, no work; median of {len(fixed)}"))
    else:
        R["rows"].append(row("example job wall s: versionfs run / plain", None, dm, "ratio <= 1.3", None,
                             "'versionfs run' not available in this build: not measured"))
    pm = statistics.median(walls["premounted"])
    R["rows"].append(row("example job wall s: pre-mounted / plain", pm, dm, "info" if has_run else "ratio <= 1.3",
                         None if has_run else pm / dm <= 1.3, "mount already up (no JVM start in the timing);"
                         f" median of per-repetition ratios {paired('premounted'):.2f}"))


SCRATCH_JOB = r"""
set -e
for i in 1 2; do
  dd if=/dev/zero of=scratch$i.tmp bs=1M count=$1 conv=fsync status=none   # large scratch files
  for k in 1 2 3; do head -c 65536 /dev/zero > job.gbw; done               # the target, small
done
cat scratch1.tmp scratch2.tmp > /dev/null                                   # read the scratch back
rm -f scratch1.tmp scratch2.tmp
"""


def bench_scratch(cfg, R):
    """Directory mode serves every file of the working folder, scratch files included: what that
    costs a job that streams large scratch files next to a small target, side by side with
    symlink mode (only the target goes through FUSE) and with no versionfs."""
    mib, reps = cfg.scratch_mib, cfg.scratch_reps
    walls = {"plain": [], "symlink": [], "dir": []}
    for rep in range(reps):
        order = ["plain", "symlink", "dir"] if rep % 2 == 0 else ["dir", "symlink", "plain"]
        for var in order:
            d = os.path.join(cfg.work, "scratch-" + var)
            os.makedirs(d, exist_ok=True)
            cmd = ["bash", "-c", SCRATCH_JOB, "job", str(mib)]
            if var == "symlink":
                cmd = [VERSIONFS, "run", "--target", "job.gbw", "--"] + cmd
            elif var == "dir":
                cmd = [VERSIONFS, "run", "--mode", "dir", "--target", "job.gbw", "--"] + cmd
            drop_caches()
            t0 = time.monotonic()
            r = sh(cmd, timeout=1800, cwd=d)
            walls[var].append(time.monotonic() - t0)
            if r.returncode != 0:
                problem(f"scratch job ({var}) exited {r.returncode}: {r.stderr.strip()[-300:]}")
            if var != "plain":
                n = len(glob.glob(os.path.join(d, "job.gbw.versions", "job.[0-9]*.gbw")))
                if n != 6:
                    problem(f"scratch job ({var}): {n} versions of job.gbw, expected 6")
            shutil.rmtree(d, ignore_errors=True)
            log(f"scratch rep {rep + 1}/{reps} {var}: {walls[var][-1]:.2f} s")
    R["raw"]["scratch"] = {"mib_per_file": mib, "files": 2, "reps": reps, "wall_s": walls}
    pm = statistics.median(walls["plain"])
    note = (f"2 x {mib} MiB scratch files written (fsync) and read back + 6 rewrites of a 64 KiB target,"
            f" median of {reps}")
    R["rows"].append(row("scratch job wall s: run (symlink) / plain", statistics.median(walls["symlink"]), pm,
                         "info", None, note + "; scratch files bypass FUSE"))
    R["rows"].append(row("scratch job wall s: run --mode dir / plain", statistics.median(walls["dir"]), pm,
                         "info", None, note + "; scratch files go through FUSE"))


def bench_loaded(cfg, R):
    """A node whose every core runs the job: N processes on N cores each burn CPU and rewrite one
    file (vfsbench loaded; 60 rewrites of 256 KiB in all, each a version), plain and under
    `versionfs run` in turn. What versionfs costs such a job is its wall time and the CPU its own
    JVM took (the summary's daemon_cpu): every CPU-second of the daemon is one the job did not get."""
    n = os.cpu_count() or 1
    rewrites, kib = 60, 256
    reps = 2 if cfg.quick else 5
    walls = {"plain": [], "run": []}
    job_cpu, daemon, groups = [], [], []
    for secs in cfg.loaded_secs:
        burn_ms = secs * 1000.0 * n / rewrites  # each process: rewrites/n steps of burn_ms of its own CPU
        walls = {"plain": [], "run": []}
        job_cpu, daemon, groups = [], [], []
        for rep in range(reps):
            order = ["plain", "run"] if rep % 2 == 0 else ["run", "plain"]
            for var in order:
                d = os.path.join(cfg.work, f"loaded-{var}")
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d)
                f = os.path.join(d, "job.gbw")
                cmd = [cfg.tool, "loaded", f, str(n), str(rewrites), str(kib), f"{burn_ms:.1f}", os.path.join(d, "lock")]
                if var == "run":
                    cmd = [VERSIONFS, "run", "--quiet", "--json", "--target", f, "--"] + cmd
                t0 = time.monotonic()
                r = sh(cmd, timeout=1800, cwd=d)
                walls[var].append(time.monotonic() - t0)
                lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
                if r.returncode != 0 or not lines:
                    problem(f"loaded node ({var}) exited {r.returncode}: {r.stderr.strip()[-300:]}")
                    continue
                job = json.loads(lines[0])
                if var == "plain":
                    job_cpu.append(job["cpu_s"])
                elif len(lines) > 1:
                    summ = json.loads(lines[-1])
                    saved = summ["files"][0]["saved"] if summ.get("files") else 0
                    if saved < rewrites:
                        problem(f"loaded node: {saved} versions for {rewrites} rewrites")
                    if "daemon_cpu" in summ:
                        daemon.append(summ["daemon_cpu"]["total_ms"] / 1000.0)
                        groups.append(summ["daemon_cpu"]["threads_ms"])
                shutil.rmtree(d, ignore_errors=True)
        if not walls["plain"] or not walls["run"]:
            continue
        R["raw"].setdefault("loaded", []).append({"job_cpu_s": secs * n, "walls": walls, "plain_job_cpu_s": job_cpu,
                                                   "daemon_cpu_s": daemon, "daemon_threads_ms": groups})
        pw, rw = statistics.median(walls["plain"]), statistics.median(walls["run"])
        pairs = [a / b for a, b in zip(walls["run"], walls["plain"])]
        label = f"loaded node, {n} procs on {n} cores, ~{secs} s of CPU each, {rewrites} rewrites"
        R["rows"].append(row(f"{label}: wall s, versionfs run / plain", rw, pw, "<= 1.05" if secs >= 5 else "info",
                             (rw / pw <= 1.05) if secs >= 5 else None,
                             f"median of {reps}, alternating; per-pair ratios {min(pairs):.3f}-{max(pairs):.3f}"))
        if daemon and job_cpu:
            dc, jc = statistics.median(daemon), statistics.median(job_cpu)
            split = ", ".join(f"{g} {statistics.median([x[g] for x in groups]) / 1000:.2f}" for g in groups[0])
            R["rows"].append(row(f"{label}: versionfs's own CPU s / the job's CPU s", dc, jc, "<= 0.05", dc / jc <= 0.05,
                                 f"daemon CPU {min(daemon):.2f}-{max(daemon):.2f} s; by thread group (median s): {split}"))
        log(f"loaded ~{secs} s: wall run {rw:.2f} s / plain {pw:.2f} s; daemon CPU {daemon}")


class RunSession:
    """A `versionfs run --target BIG --target SMALL -- cat` kept running while the bench reads through
    the targets' symlinks: the very mount a job on one node gets (or, with
    -Dversionfs.acrossNodesMount=true, the one a job on several nodes gets on each node). The job
    (`cat`) ends when its stdin is closed, and the run with it; unmounted and checked on exit."""

    def __init__(self, work, side, targets, java_opts=""):
        self.side, self.targets = side, targets
        self.base = os.path.dirname(targets[0])
        self.mnt = self.base  # for the emergency cleanup's log line
        self.java_opts = java_opts
        self.mounts = []

    def __enter__(self):
        env = dict(os.environ)
        env["VERSIONFS_JAVA_OPTS"] = (env.get("VERSIONFS_JAVA_OPTS", "") + " " + self.java_opts).strip()
        self.logpath = os.path.join(self.base, "run.log")
        self.logf = open(self.logpath, "w")
        cmd = [VERSIONFS, "run", "--quiet"]
        for t in self.targets:
            cmd += ["--target", t]
        self.proc = subprocess.Popen(cmd + ["--", "cat"], stdin=subprocess.PIPE, stdout=self.logf,
                                     stderr=subprocess.STDOUT, cwd=self.base, env=env, start_new_session=True)
        LIVE_MOUNTS.append(self)
        deadline = time.monotonic() + 60
        while not all(os.path.islink(t) and os.path.exists(t) for t in self.targets):
            if self.proc.poll() is not None:
                raise RuntimeError(f"versionfs run exited with {self.proc.returncode}: see {self.logpath}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"versionfs run ({self.side}) not serving its targets after 60 s: see {self.logpath}")
            time.sleep(0.02)
        with open("/proc/mounts") as f:
            fuse = [ln.split()[1] for ln in f if ln.split()[2:3] == ["fuse.versionfs"]]
        for t in self.targets:
            real = os.path.realpath(t)
            self.mounts += [m for m in fuse if real.startswith(m + "/")]
        return self

    def __exit__(self, *exc):
        try:
            self.proc.stdin.close()
            rc = self.proc.wait(timeout=120)
            if rc != 0:
                problem(f"[coherence {self.side}] versionfs run exited with code {rc} (see {self.logpath})")
        except subprocess.TimeoutExpired:
            problem(f"[coherence {self.side}] versionfs run did not end within 120 s of its job's end (hang); killed")
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for m in self.mounts:
            if fuse_mounted(m):
                problem(f"[coherence {self.side}] mount {m} left behind after the run ended; lazy-unmounting")
                subprocess.run(["fusermount", "-u", "-z", m])
        for t in self.targets:
            if os.path.islink(t) or not os.path.isfile(t):
                problem(f"[coherence {self.side}] {t} is not a regular file after the run")
        self.logf.close()
        LIVE_MOUNTS.remove(self)
        return False


def bench_coherence(cfg, R):
    """What the mount options of a job on several nodes (FuseMount.ACROSS_NODES_OPTIONS: no
    kernel_cache, attribute/entry/negative timeouts 0) cost reads, on one node: two `versionfs run`
    sessions side by side, one as on one node, one with -Dversionfs.acrossNodesMount=true, read in
    turn (A B A B ...). Reads only: no version is made after the initial one."""
    mib, reps, opens = cfg.coh_mib, cfg.coh_reps, cfg.coh_opens
    sides = ("default", "across")
    files = {}
    for side in sides:
        d = os.path.join(cfg.work, "coherence-" + side)
        os.makedirs(d, exist_ok=True)
        big, small = os.path.join(d, "big.dat"), os.path.join(d, "small.dat")
        run_json([cfg.tool, "seqwrite", big, str(mib), "1024", "nofsync"])
        with open(small, "wb") as f:
            f.write(os.urandom(64 * 1024))
        files[side] = (big, small)
    os.sync()
    res = {side: {"first": [], "reread": [], "open_us": [], "open_median_us": []} for side in sides}
    opts = {"default": "", "across": "-Dversionfs.acrossNodesMount=true"}
    with RunSession(cfg.work, "default", list(files["default"]), opts["default"]) as a, \
            RunSession(cfg.work, "across", list(files["across"]), opts["across"]) as b:
        runs = {"default": a, "across": b}
        for side in sides:  # warm-up, not counted: the backing files into the page cache, the daemons' JIT
            big, small = files[side]
            run_json([cfg.tool, "seqread", big, "1024"])
            run_json([cfg.tool, "openloop", small, str(max(200, opens // 10)), "1024"])
        for rep in range(reps):
            order = list(sides) if rep % 2 == 0 else list(reversed(sides))
            for side in order:
                big, small = files[side]
                sh([cfg.tool, "dropcache", big])  # the mount's pages of it; the backing file stays cached
                r = run_json([cfg.tool, "seqread", big, "1024"])
                res[side]["first"].append(r["bytes"] / r["read_s"] / 1e6)
                r = run_json([cfg.tool, "seqread", big, "1024"])  # close, open again, read again
                if r["bytes"] != mib << 20:
                    problem(f"[coherence {side}] read {r['bytes']} bytes of {big}, expected {mib << 20}")
                res[side]["reread"].append(r["bytes"] / r["read_s"] / 1e6)
                r = run_json([cfg.tool, "openloop", small, str(opens), "1024"])
                if r["bytes"] != opens * 64 * 1024:
                    problem(f"[coherence {side}] open loop read {r['bytes']} bytes, expected {opens * 64 * 1024}")
                res[side]["open_us"].append(r["total_s"] / opens * 1e6)
                res[side]["open_median_us"].append(r["median_us"])
            log(f"coherence rep {rep + 1}/{reps}: " + "; ".join(
                f"{side} first {res[side]['first'][-1]:.0f} MB/s, re-read {res[side]['reread'][-1]:.0f} MB/s,"
                f" open+read+close {res[side]['open_us'][-1]:.0f} us" for side in sides))
        mounts = {side: runs[side].mounts for side in sides}
    for side in sides:
        for t in files[side]:
            vdir = t + ".versions"
            n = len(glob.glob(os.path.join(vdir, "*.[0-9][0-9][0-9][0-9][0-9][0-9]*.dat")))
            if n != 1:
                problem(f"[coherence {side}] {n} versions of {t} after reads only, expected 1 (initial)")
    shutil.rmtree(os.path.join(cfg.work, "coherence-default"), ignore_errors=True)
    shutil.rmtree(os.path.join(cfg.work, "coherence-across"), ignore_errors=True)
    R["raw"]["coherence"] = {"mib": mib, "reps": reps, "opens": opens, "samples": res, "mounts": mounts}

    def rng(v, unit):
        return f"{min(v):.0f}-{max(v):.0f} {unit}"
    for key, label, unit in (("first", f"read MB/s, {mib} MiB, 1st after open (backing file cached)", "MB/s"),
                             ("reread", f"read MB/s, {mib} MiB, re-read after close/open", "MB/s"),
                             ("open_us", f"open+read+close us, 64 KiB file, x{opens}", "us")):
        acr, dft = res["across"][key], res["default"][key]
        pairs = [x / y for x, y in zip(acr, dft)]
        note = (f"across-nodes options / one-node options; median of {reps}, alternating A B A B; per-pair ratios"
                f" {min(pairs):.2f}-{max(pairs):.2f}; across {rng(acr, unit)}, default {rng(dft, unit)}")
        if key == "open_us":
            note += (f"; median iteration {statistics.median(res['across']['open_median_us']):.0f} us vs"
                     f" {statistics.median(res['default']['open_median_us']):.0f} us")
        R["rows"].append(row("coherence: " + label, statistics.median(acr), statistics.median(dft), "info", None, note))


def bench_start(cfg, R):
    """Cold start: `versionfs run --target X -- true` (JVM start, mount, symlink, unmount, file put
    back) against a bare `java -Xshare:auto -version` on the same machine, alternating, medians.
    The first run of a new jar writes the class-data archive (reported on its own)."""
    java = shutil.which("java") or "java"
    d = os.path.join(cfg.work, "start")

    def one_run():
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "job.gbw"), "w") as f:
            f.write("x\n")
        t0 = time.monotonic()
        r = sh([VERSIONFS, "run", "--quiet", "--target", os.path.join(d, "job.gbw"), "--", "true"], timeout=300)
        t = time.monotonic() - t0
        if r.returncode != 0:
            problem(f"versionfs run -- true exited {r.returncode}: {r.stderr.strip()[-300:]}")
        shutil.rmtree(d, ignore_errors=True)
        return t
    first = one_run()
    runs, javas = [], []
    for rep in range(cfg.start_reps):
        steps = [("run", one_run), ("java", lambda: timed([java, "-Xshare:auto", "-version"]))]
        if rep % 2:
            steps.reverse()
        for name, fn in steps:
            (runs if name == "run" else javas).append(fn())
    R["raw"]["start"] = {"first_run_s": first, "run_true_s": runs, "java_version_s": javas}
    rm, jm = statistics.median(runs), statistics.median(javas)
    log(f"start: versionfs run -- true median {rm:.3f} s, java -version median {jm:.3f} s, first run {first:.3f} s")
    R["rows"].append(row("versionfs run -- true s / bare java -version s", rm, jm, "ratio <= 2", rm / jm <= 2,
                         f"median of {cfg.start_reps}, alternating; first run of this jar (writes the class-data"
                         f" archive) {first:.2f} s"))


def timed(cmd):
    t0 = time.monotonic()
    sh(cmd, timeout=120)
    return time.monotonic() - t0


def rss_rows(R):
    """One row per scenario (the largest VmHWM when the scenario ran several times)."""
    by, order = {}, []
    for sess in SESSIONS:
        if not sess["peak_rss_kib"]:
            continue
        k = sess["scenario"]
        if k not in by:
            order.append(k)
            by[k] = dict(sess, runs=0)
        by[k]["runs"] += 1
        by[k]["peak_rss_kib"] = max(by[k]["peak_rss_kib"], sess["peak_rss_kib"])
        by[k]["versions"] = max(by[k]["versions"] or 0, sess["versions"] or 0)
    for k in order:
        x = by[k]
        R["rows"].append(row(f"daemon peak RSS MiB: {k}", x["peak_rss_kib"] / 1024, None, "info", None,
                             f"largest file {x['largest_file_bytes'] / 2**20:.2f} MiB, {x['versions']} versions"
                             + (f"; max of {x['runs']} daemons" if x["runs"] > 1 else "")))
    keyed = {sess.get("key"): sess for sess in SESSIONS}
    small, big = keyed.get("close1"), keyed.get("close512")
    if small and big and small["peak_rss_kib"] and big["peak_rss_kib"]:
        R["rows"].append(row("daemon peak RSS MiB, 512 MiB vs 1 MiB file", big["peak_rss_kib"] / 1024,
                             small["peak_rss_kib"] / 1024, "flat (report)", None,
                             "versionfs column = 512 MiB close() session, baseline column = 1 MiB close() session"))


def row(metric, vfs, base, goal, ok, note="", floor=None):
    def div(a, b):
        return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
    return {"metric": metric, "versionfs": vfs, "baseline": base, "ratio": div(vfs, base), "floor": floor,
            "floor_ratio": div(vfs, floor), "goal": goal,
            "result": "n/a" if ok is None else ("PASS" if ok else "FAIL"), "note": note}


def fmt(x):
    if x is None:
        return "-"
    if isinstance(x, int):
        return str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def table(rows):
    cols = ["metric", "versionfs", "baseline", "ratio", "C floor", "vfs/floor", "goal", "result"]
    cells = [[r["metric"], fmt(r["versionfs"]), fmt(r["baseline"]), fmt(r["ratio"]), fmt(r.get("floor")),
              fmt(r.get("floor_ratio")), r["goal"], r["result"]] for r in rows]
    w = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    line = "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(cols)) + " |"
    sep = "|" + "|".join("-" * (w[i] + 2) for i in range(len(cols))) + "|"
    out = [line, sep]
    for x in cells:
        out.append("| " + " | ".join((x[i].ljust(w[i]) if i in (0, 6, 7) else x[i].rjust(w[i]))
                                     for i in range(len(cols))) + " |")
    return "\n".join(out)


def machine(cfg):
    def cmd(c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:
            return ""
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(), "cpu": cpu, "memory": mem, "kernel": platform.release(),
        "os": cmd(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "df_h": cmd(["df", "-h", "--output=source,fstype,size,used,avail,target", cfg.work]),
        "java": cmd(["sh", "-c", "java -version 2>&1 | head -1"]),
        "fuse": cmd(["sh", "-c", "dpkg-query -W -f '${Package} ${Version}\\n' libfuse2 fuse3 2>/dev/null"]),
        "git_head": cmd(["git", "-C", REPO, "log", "-1", "--format=%h %s"]),
        "git_dirty": bool(cmd(["git", "-C", REPO, "status", "--porcelain", "--", "src", "pom.xml", "bin"])),
        "jar": cfg.jar, "jar_source": os.environ.get("BENCH_JAR_SOURCE", ""), "launcher": VERSIONFS,
        "work_dir": cfg.work,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--jar", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="seq,b2b,close,rewriters,rss,example,scratch,loaded,start,coherence")
    ap.add_argument("--seq-mib", type=int, default=0, dest="seq_mib_arg", help="file size of the seq section")
    ap.add_argument("--seq-reps", type=int, default=0, dest="seq_reps_arg")
    ap.add_argument("--b2b-reps", type=int, default=0, dest="b2b_reps_arg", help="repetitions of the b2b section")
    ap.add_argument("--close-sizes", default="", help="comma-separated MiB sizes of the close section (1,64,512)")
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    cfg = ap.parse_args()
    q = cfg.quick
    cfg.seq_mib, cfg.seq_reps = (256, 1) if q else (1024, 5)
    cfg.seq_mib = cfg.seq_mib_arg or cfg.seq_mib
    cfg.seq_reps = cfg.seq_reps_arg or cfg.seq_reps
    cfg.start_reps = 3 if q else 7
    # (MiB, back-to-back count, paced count, pause ms)
    cfg.close_counts = ([(1, 20, 10, 50), (64, 5, 3, 500), (512, 5, 3, 3000)] if q
                        else [(1, 100, 50, 50), (64, 30, 10, 500), (512, 20, 10, 3000)])
    if cfg.close_sizes:
        keep = {int(x) for x in cfg.close_sizes.split(",")}
        cfg.close_counts = [c for c in cfg.close_counts if c[0] in keep]
    cfg.rss_batches = 2 if q else 4
    cfg.writers, cfg.rewrites = 4, 250
    cfg.rw_size, cfg.rw_chunk = 64 * 1024, 4096
    cfg.rw_rounds = 1 if q else 3
    cfg.ex_iterations, cfg.ex_reps = (15, 1) if q else (30, 5)
    cfg.scratch_mib, cfg.scratch_reps = (128, 1) if q else (512, 3)
    cfg.loaded_secs = [5] if q else [5, 20]  # each process's CPU: a 5 s and a 20 s job on every core
    # back-to-back rewrites: MiB, rewrites in a row, repetitions (sides alternate every repetition)
    cfg.b2b_mib, cfg.b2b_rewrites, cfg.b2b_reps = (128, 3, 1) if q else (512, 3, 3)
    cfg.b2b_reps = cfg.b2b_reps_arg or cfg.b2b_reps
    # coherence: target MiB, repetitions (A B each), opens of the 64 KiB file per repetition
    cfg.coh_mib, cfg.coh_reps, cfg.coh_opens = (256, 2, 2000) if q else (256, 5, 2000)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)

    R = {"mode": "quick" if q else "full", "machine": machine(cfg), "rows": [], "raw": {}, "problems": PROBLEMS,
         "sessions": SESSIONS}
    # Same disk for the baseline as for the mount's backing store: both live under the work dir.
    os.makedirs(os.path.join(cfg.work, "direct"), exist_ok=True)
    if os.stat(os.path.join(cfg.work, "direct")).st_dev != os.stat(cfg.work).st_dev:
        raise RuntimeError("direct baseline folder is not on the work dir's filesystem")
    fstype = subprocess.run(["df", "--output=fstype", cfg.work], capture_output=True, text=True).stdout.split()[-1]
    if fstype in ("tmpfs", "ramfs"):
        log(f"WARNING: work dir {cfg.work} is on {fstype}: 'direct' numbers are memory, not disk")
    R["machine"]["work_fstype"] = fstype
    R["machine"]["drop_caches"] = drop_caches()
    t_start = time.monotonic()
    only = set(cfg.only.split(","))
    # Load average before/after each section: this is a shared 2-core machine, anything else
    # running (a build, tests) shows up here and in the numbers.
    R["loadavg"] = {}
    sections = [("seq", "sequential write/read", bench_seq),
                ("b2b", "back-to-back rewrites and the daemon's CPU", bench_b2b), ("close", "close() latency", bench_close),
                ("rewriters", "concurrent rewriters vs inotify loop", bench_rewriters),
                ("rss", "daemon memory vs version count", bench_rss), ("example", "example job wall time", bench_example),
                ("scratch", "directory mode vs symlink mode with large scratch files", bench_scratch),
                ("loaded", "loaded node: a job on every core, wrapped vs plain", bench_loaded),
                ("start", "cold start: versionfs run -- true vs java -version", bench_start),
                ("coherence", "reads under the mount options of a job on several nodes vs one node", bench_coherence)]
    try:
        for key, title, fn in sections:
            if key in only:
                before = loadavg()
                log(f"{title} ... (load average {before})")
                fn(cfg, R)
                R["loadavg"][key] = {"before": before, "after": loadavg()}
    finally:
        for m in list(LIVE_MOUNTS):
            try:
                m.__exit__(None, None, None)
            except Exception as e:  # keep cleaning up
                log(f"cleanup of {m.mnt}: {e}")
    rss_rows(R)
    R["elapsed_s"] = round(time.monotonic() - t_start, 1)
    os.makedirs(cfg.results, exist_ok=True)
    with open(os.path.join(cfg.results, "latest.json"), "w") as f:
        json.dump(R, f, indent=1)
    with open(os.path.join(cfg.results, "latest.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["metric", "versionfs", "baseline", "ratio", "c_floor", "vfs_over_floor", "goal", "result", "note"])
        for r in R["rows"]:
            wr.writerow([r["metric"], r["versionfs"], r["baseline"], r["ratio"], r["floor"], r["floor_ratio"], r["goal"],
                         r["result"], r["note"]])
    tbl = table(R["rows"])
    with open(os.path.join(cfg.results, "latest.md"), "w") as f:
        mch = R["machine"]
        f.write(f"versionfs bench ({R['mode']}), {mch['date_utc']}, git {mch['git_head']}; jar: {mch['jar_source']}"
                f"{' (working tree has uncommitted changes)' if mch['git_dirty'] and 'HEAD' not in mch['jar_source'] else ''}\n\n")
        f.write(f"machine: {mch['nproc']} cores ({mch['cpu']}), {mch['memory']} RAM, kernel {mch['kernel']}, "
                f"{mch['os']}, {mch['java']}\n\n```\n{mch['df_h']}\n```\n\n{tbl}\n")
        f.write("\nload average (1, 5, 15 min) before -> after each section: " + "; ".join(
            f"{k} {v['before']} -> {v['after']}" for k, v in R["loadavg"].items()) + "\n")
        if PROBLEMS:
            f.write("\nProblems seen:\n" + "".join(f"- {p}\n" for p in PROBLEMS))
    print()
    print(tbl)
    print()
    for r in R["rows"]:
        if r["note"]:
            print(f"  {r['metric']}: {r['note']}")
    print("\nload average before -> after: " + "; ".join(f"{k} {v['before']} -> {v['after']}"
                                                       for k, v in R["loadavg"].items()))
    print(f"\nelapsed {R['elapsed_s']} s; results in {cfg.results}/latest.{{csv,json,md}}")
    if PROBLEMS:
        print("\nPROBLEMS (versionfs misbehaviour, see above):")
        for p in PROBLEMS:
            print("  - " + p)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main())
