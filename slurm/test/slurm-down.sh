#!/usr/bin/env bash
# Stops the one-node test Slurm started by slurm-up.sh: cancels every job, stops slurmd,
# slurmctld and munged by their pid files (TERM, then KILL after 10 s), KILLs processes of this
# cluster's jobs that outlived it, and lazily unmounts (fusermount -u -z) every fuse.versionfs
# mount in /proc/mounts left stale by a killed job. Idempotent: safe to run when nothing runs.
# Keeps $VERSIONFS_SLURM_DIR (logs for post-mortem); --purge deletes it as well.
#
#   slurm/test/slurm-down.sh [--purge] [--all-mounts]
set -uo pipefail

root=${VERSIONFS_SLURM_DIR:-/tmp/versionfs-slurm}
say() { echo "slurm-down: $*" >&2; }
export SLURM_CONF=$root/etc/slurm.conf

alive() { # alive PIDFILE NAME
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]
}

# 1. Cancel all jobs while the controller still runs, and give them KillWait to end.
if alive "$root/run/slurmctld.pid" slurmctld && command -v scancel >/dev/null; then
  if [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
    say "cancelling jobs: $(squeue -h -o %i | tr '\n' ' ')"
    scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
    for _ in $(seq 1 75); do   # up to 15 s
      [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
fi

# 2. Stop the daemons: slurmd first (it owns the job processes), then the controller, then munge.
stop() { # stop PIDFILE NAME
  alive "$1" "$2" || { rm -f "$1"; return 0; }
  local pid; pid=$(<"$1")
  say "stopping $2 (pid $pid)"
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$1"; return 0; }
    sleep 0.2
  done
  say "$2 (pid $pid) still running after 10 s: KILL"
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
  rm -f "$1"
}
stop "$root/run/slurmd.pid" slurmd
stop "$root/run/slurmctld.pid" slurmctld
stop "$root/munge/munged.pid" munged

# 3. Processes of this cluster that outlived slurmd (a slurmstepd, or a job process that ignored
#    TERM) would keep mounts busy: KILL those whose environment names this cluster's SLURM_CONF
#    and that are slurmstepd or job processes (SLURM_JOB_ID set). Never this script or its callers.
mine=" $$ $(ps -o ppid= -p $$ | tr -d ' ') $PPID "
for env in $(grep -lsxzF "SLURM_CONF=$SLURM_CONF" /proc/[0-9]*/environ); do
  pid=${env#/proc/}; pid=${pid%/environ}
  [[ $mine == *" $pid "* ]] && continue
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
  if [[ $comm == slurmstepd ]] || grep -qsz '^SLURM_JOB_ID=' "$env"; then
    say "killing leftover $comm (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
sleep 0.2

# 4. versionfs mounts left behind. Every process of this cluster is gone by now, so a mount one of
#    its jobs left is stale (its daemon is dead: "Transport endpoint is not connected"): lazily
#    unmount every stale fuse.versionfs mount. A mount that still answers belongs to a live
#    versionfs outside this cluster (another test run on the machine) and is left alone, unless
#    --all-mounts is given.
for arg in "$@"; do [[ $arg == --all-mounts ]] && all_mounts=1; done
while read -r _ mnt fstype _; do
  [[ $fstype == fuse.versionfs ]] || continue
  mnt=$(printf '%b' "$mnt")   # /proc/mounts escapes spaces as \040
  if [[ -z ${all_mounts:-} ]] && timeout 3 stat -c %i -- "$mnt" >/dev/null 2>&1; then
    say "leaving live versionfs mount $mnt (its daemon still answers; --all-mounts to unmount it too)"
    continue
  fi
  say "unmounting leftover versionfs mount $mnt"
  fusermount -u -z "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null \
    || say "could not unmount $mnt"
done < /proc/mounts

for arg in "$@"; do [[ $arg == --purge ]] && purge=1; done
if [[ -n ${purge:-} ]]; then
  say "removing $root"
  rm -rf -- "$root"
fi
exit 0
