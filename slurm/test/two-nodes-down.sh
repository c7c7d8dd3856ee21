#!/usr/bin/env bash
# Stops the two-node test Slurm started by two-nodes-up.sh and removes its namespaces and links:
#   1. cancels every job (while slurmctld runs) and gives them up to 15 s to end;
#   2. per node: lazily unmounts what jobs left mounted in the node's mount namespace (every FUSE
#      mount there, and every mount the root namespace does not have), entering it by its slurmd's
#      pid; stops that slurmd by its pid file (TERM, KILL after 10 s); then KILLs any process still
#      in the node's network or mount namespace (all of them were started by that slurmd: job
#      processes that outlived it). With its last process the node's mount namespace ends, and
#      every mount left in it with it;
#   3. stops slurmctld and munged by their pid files;
#   4. deletes the network namespaces, the veth pairs and the bridge.
# Idempotent: safe to run when nothing runs. Keeps $VERSIONFS_SLURM2_DIR (logs for post-mortem;
# the nodes' /tmp folders are emptied at the next start); --purge deletes it as well.
#
#   slurm/test/two-nodes-down.sh [--purge]
set -uo pipefail

root=${VERSIONFS_SLURM2_DIR:-/var/tmp/versionfs-slurm2}
root=$(realpath -m -- "$root")
bridge=vfs2br0
# The nodes two-nodes-up.sh made (VERSIONFS_SLURM2_NODES): their folders in the cluster's folder.
nodes=(); for d in "$root"/node[1-9]; do [[ -d $d ]] && nodes+=("${d##*/}"); done
(( ${#nodes[@]} )) || nodes=(node1 node2)
t0=${EPOCHREALTIME/./}
# Progress on stderr, with the seconds since the start (EPOCHREALTIME: no fork).
say() { local us=$(( ${EPOCHREALTIME/./} - t0 )); printf 'two-nodes-down: [%d.%01ds] %s\n' $(( us / 1000000 )) $(( us / 100000 % 10 )) "$*" >&2; }
export SLURM_CONF=$root/etc/slurm.conf

[[ $(id -u) == 0 ]] || { say "error: must run as root"; exit 1; }

alive() { # alive PIDFILE NAME
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]
}
# stop PIDFILE:NAME...: TERM each that runs, all at once; KILL those still running after 10 s.
stop() {
  local arg pf name pid pids=() files=()
  for arg in "$@"; do
    pf=${arg%:*} name=${arg##*:}
    if alive "$pf" "$name"; then
      pid=$(<"$pf")
      say "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null
      pids+=("$pid") files+=("$pf")
    else
      rm -f "$pf"
    fi
  done
  (( ${#pids[@]} )) || return 0
  local deadline=$(( SECONDS + 10 ))
  any_alive() { local p; for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
  while any_alive "${pids[@]}"; do
    if (( SECONDS >= deadline )); then
      say "still running after 10 s: KILL ${pids[*]}"
      kill -KILL "${pids[@]}" 2>/dev/null
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  rm -f "${files[@]}"
}

# 1. Cancel all jobs while the controller still runs, and give them KillWait to end.
if alive "$root/run/slurmctld.pid" slurmctld && command -v scancel >/dev/null; then
  if [[ -n $(squeue -h -o %i 2>/dev/null) ]]; then
    say "cancelling jobs: $(squeue -h -o %i | tr '\n' ' ')"
    scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
    deadline=$(( SECONDS + 15 ))
    while [[ -n $(squeue -h -o %i 2>/dev/null) ]] && (( SECONDS < deadline )); do
      sleep 0.1
    done
  fi
fi

# 2. The nodes.
# in_ns KIND INODE: pids of the processes in that namespace (KIND net or mnt). One find, not a
# readlink per process: forks are slow on a loaded machine.
in_ns() {
  find /proc/[0-9]*/ns/"$1" -maxdepth 0 -lname "$1:\\[$2\\]" 2>/dev/null | cut -d/ -f3
}
ns_inode() { readlink "$1" 2>/dev/null | sed -n 's/.*:\[\([0-9]*\)\]$/\1/p'; }
# The mounts of the root namespace, as "mountpoint fstype" lines, to tell the node's own apart.
root_mounts=$(awk '{ print $2 " " $3 }' /proc/self/mounts | sort -u)

declare -A net_ino=() mnt_ino=()
for n in "${nodes[@]}"; do
  ns=vfs2-$n pidfile=$root/run/slurmd-$n.pid
  [[ -e /run/netns/$ns ]] && net_ino[$n]=$(stat -L -c %i "/run/netns/$ns" 2>/dev/null)
  alive "$pidfile" slurmd || continue
  pid=$(<"$pidfile")
  mnt_ino[$n]=$(ns_inode "/proc/$pid/ns/mnt")
  # What jobs left mounted on this node: FUSE mounts, and mounts the root namespace lacks
  # (besides the node's own /tmp and /dev/shm). Deepest first; lazily (a busy mount goes when
  # its last user does, and the namespace ends just after).
  left=$(awk '{ print $2 " " $3 }' "/proc/$pid/mounts" | sort -u | comm -23 - <(printf '%s\n' "$root_mounts") \
         | awk '$1 != "/tmp" && $1 != "/dev/shm" { print $1 }')
  left+=$'\n'$(awk '$3 ~ /^fuse/ { print $2 }' "/proc/$pid/mounts")
  while read -r m; do
    [[ -n $m ]] || continue
    m=$(printf '%b' "$m")   # /proc/mounts escapes spaces as \040
    say "$n: unmounting $m (left by a job)"
    nsenter -t "$pid" -m umount -l -- "$m" 2>/dev/null || say "$n: could not unmount $m"
  done < <(printf '%s\n' "$left" | sort -ru)
done
slurmds=(); for n in "${nodes[@]}"; do slurmds+=("$root/run/slurmd-$n.pid:slurmd"); done
stop "${slurmds[@]}"
# Processes still in a node's namespaces: job processes that outlived slurmd (slurmd starts every
# process there; nothing else enters them).
for n in "${nodes[@]}"; do
  for _ in 1 2 3; do
    left_pids=$( { [[ -n ${net_ino[$n]:-} ]] && in_ns net "${net_ino[$n]}"
                   [[ -n ${mnt_ino[$n]:-} ]] && in_ns mnt "${mnt_ino[$n]}"; } | sort -un)
    [[ -z $left_pids ]] && break
    for p in $left_pids; do
      say "$n: killing leftover $(cat "/proc/$p/comm" 2>/dev/null) (pid $p)"
      kill -KILL "$p" 2>/dev/null
    done
    sleep 0.3
  done
  [[ -n $left_pids ]] && say "$n: processes still in its namespaces: $left_pids"
done

# 3. The controller and munge.
stop "$root/run/slurmctld.pid:slurmctld" "$root/munge/munged.pid:munged"

# 4. Network: the namespaces (their veth ends go with them), the host ends, the bridge.
for i in "${!nodes[@]}"; do
  ns=vfs2-${nodes[$i]} veth=vfs2n$((i + 1))
  if [[ -e /run/netns/$ns ]] || ip netns list | grep -qx "$ns\( .*\)\?"; then
    say "deleting network namespace $ns"
    ip netns del "$ns" || say "could not delete $ns"
  fi
  ip link show "$veth" >/dev/null 2>&1 && { ip link del "$veth" 2>/dev/null || say "could not delete $veth"; }
done
if ip link show "$bridge" >/dev/null 2>&1; then
  say "deleting bridge $bridge"
  ip link del "$bridge" || say "could not delete $bridge"
fi

for arg in "$@"; do [[ $arg == --purge ]] && purge=1; done
if [[ -n ${purge:-} ]]; then
  say "removing $root"
  rm -rf --one-file-system -- "$root"
fi
say "stopped"
exit 0
