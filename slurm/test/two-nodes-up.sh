#!/usr/bin/env bash
# Starts a two-node Slurm on this one machine, without systemd, for versionfs's multi-node tests
# (src/test/java/io/versionfs/slurm/TwoNodeSlurmIT.java). Run as root.
#
#   slurm/test/two-nodes-up.sh        # then: export SLURM_CONF=<the path it prints last>
#   slurm/test/two-nodes-down.sh      # cancels jobs, stops the daemons, removes the namespaces
#
# What it models: two compute nodes, node1 and node2, each a slurmd in
#   - its own network namespace (vfs2-node1, vfs2-node2): a veth pair on the bridge vfs2br0, its
#     own address (10.213.0.11, 10.213.0.12; the bridge, in the root namespace, is 10.213.0.1);
#   - its own UTS namespace: `hostname` says node1 / node2;
#   - its own mount namespace (private propagation) with a private /tmp (a bind mount of
#     $ROOT/nodeN/tmp) and a private /dev/shm (a fresh tmpfs): a mount made by a job on one node
#     is invisible on the other, as on real nodes; every step on a node shares that node's
#     namespace (there is no job_container plugin), so a later step on the same node sees it.
# Everything else is the shared filesystem: any path outside /tmp and /dev/shm (this folder,
# the project, /var/tmp) is the same on both nodes and on the "login node" (the root namespaces),
# where slurmctld and munged run, and where sbatch/squeue/scontrol are run.
# With VERSIONFS_SLURM2_PRIVATE_TMP=DIR every job step (the batch step too) gets a mount namespace
# of its own with a fresh tmpfs on DIR, as the private-tmpdir SPANK plugin gives real sites: a
# mount made by one step is invisible to every other step. The plugin (private-tmp-spank.c beside
# this script) is compiled here (gcc, Slurm's spank.h from libslurm-dev) and named in the
# cluster's plugstack.conf; without the variable plugstack.conf is empty.
# What it does not model: one kernel, one page cache, one PID namespace (every job process is
# visible to ps on the machine), one CPU set: both nodes report all CPUs of the machine.
#
# Everything it creates (slurm.conf, state, spools, logs, pid files, munge key and socket, the
# nodes' /tmp folders, the shared folder $ROOT/shared) lives under one folder,
# $VERSIONFS_SLURM2_DIR (default /var/tmp/versionfs-slurm2; not under /tmp, which each node
# replaces by its own); nothing in /etc is touched. Ports 6917 (slurmctld) and 6918 (slurmd), so
# it runs beside the one-node cluster of slurm-up.sh (6817/6818). Idempotent: daemons, namespaces
# and links already there are kept, missing ones made. The last line on stdout is the SLURM_CONF
# path; progress goes to stderr.
set -euo pipefail

root=${VERSIONFS_SLURM2_DIR:-/var/tmp/versionfs-slurm2}
kill_wait=${VERSIONFS_SLURM_KILLWAIT:-5}
# The source tree this script is in stays visible on the nodes if it is under /tmp (a CI clone).
keep=${VERSIONFS_SLURM2_KEEP:-$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)}
net=${VERSIONFS_SLURM2_NET:-10.213.0}   # a /24: .1 the bridge (slurmctld), .11 node1, .12 node2
ctld_port=${VERSIONFS_SLURM2_CTLD_PORT:-6917}
slurmd_port=${VERSIONFS_SLURM2_SLURMD_PORT:-6918}
private_tmp=${VERSIONFS_SLURM2_PRIVATE_TMP:-}
bridge=vfs2br0
# VERSIONFS_SLURM2_NODES=N models N nodes (node1 .. nodeN, 2 to 9; default 2); two-nodes-down.sh
# finds them in the cluster's folder.
count=${VERSIONFS_SLURM2_NODES:-2}
[[ $count =~ ^[2-9]$ ]] || { echo "two-nodes-up: error: VERSIONFS_SLURM2_NODES must be 2 to 9, not '$count'" >&2; exit 1; }
nodes=(); for ((i = 1; i <= count; i++)); do nodes+=("node$i"); done
t0=${EPOCHREALTIME/./}
# Progress on stderr, with the seconds since the start (EPOCHREALTIME: no fork).
say() { local us=$(( ${EPOCHREALTIME/./} - t0 )); printf 'two-nodes-up: [%d.%01ds] %s\n' $(( us / 1000000 )) $(( us / 100000 % 10 )) "$*" >&2; }
die() { echo "two-nodes-up: error: $*" >&2; exit 1; }
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "$0")")/lib.sh"

[[ $(id -u) == 0 ]] || die "must run as root (it makes namespaces and network links, and starts slurmd)"
case $root in
  /*) ;;
  *) die "VERSIONFS_SLURM2_DIR must be an absolute path, not '$root'" ;;
esac
root=$(realpath -m -- "$root")
case $root/ in
  /tmp/*|/dev/shm/*) die "the cluster folder ($root) must not be under /tmp or /dev/shm: each node gets its own
  /tmp and /dev/shm, which would hide it from the slurmd there (set VERSIONFS_SLURM2_DIR)" ;;
esac
for cmd in ip unshare nsenter mount; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is missing (packages iproute2, util-linux, mount)"
done

# ---- 1. packages (as slurm-up.sh) --------------------------------------------------------------
extra=()
if [[ -n $private_tmp ]] && { [[ ! -f /usr/include/slurm/spank.h ]] || ! command -v gcc >/dev/null 2>&1; }; then
  extra=(libslurm-dev gcc libc6-dev)   # the private-tmp SPANK plugin is compiled here
fi
install_slurm "${extra[@]}"

# ---- 2. layout and config ----------------------------------------------------------------------
host=$(hostname -s)
mkdir -p "$root"/{etc,state,log,run,munge/run,shared}
for n in "${nodes[@]}"; do mkdir -p "$root/$n"/{tmp,spool}; done
# Nodes of an earlier, larger cluster go (two-nodes-down.sh stops the nodes it finds here).
for d in "$root"/node[1-9]; do
  [[ -d $d && ${d##*/node} -gt $count ]] && rm -rf --one-file-system -- "$d"
done
# munged refuses group/world-writable folders on the path to its key, socket and logs; the socket's
# folder must be world-executable so that job processes (any user) can reach it.
chmod 0755 "$root" "$root"/{etc,state,log,run,munge,munge/run}
for n in "${nodes[@]}"; do chmod 0755 "$root/$n" "$root/$n/spool"; chmod 1777 "$root/$n/tmp"; done
chmod 1777 "$root/shared"
conf=$root/etc/slurm.conf
plugstack=$root/etc/plugstack.conf
key=$root/munge/munge.key
sock=$root/munge/run/munge.socket.2

munge_key "$key"

# Node hardware as slurmd sees it (both nodes see the whole machine); RealMemory: half of it each,
# a little below (more than slurmd finds drains the node).
hw=$(slurmd -C | head -1)
field() { sed -n "s/.*\<$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
cpus=$(field CPUs); boards=$(field Boards); sockets=$(field SocketsPerBoard)
cores=$(field CoresPerSocket); threads=$(field ThreadsPerCore); mem=$(field RealMemory)
mem=$(( mem * 95 / 100 / 2 ))

node_lines=""
for i in "${!nodes[@]}"; do
  node_lines+="NodeName=${nodes[$i]} NodeAddr=$net.$((11 + i)) NodeHostname=${nodes[$i]} CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem TmpDisk=0 State=UNKNOWN"$'\n'
done

new_conf=$(cat <<CONF
# Generated by versionfs slurm/test/two-nodes-up.sh: a two-node test cluster on one machine (each
# node a slurmd in its own network, UTS and mount namespace). Do not use in production.
ClusterName=versionfs-test2
SlurmctldHost=$host($net.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MailProg=/bin/true
# SPANK plugins: none, or the private /tmp per step of VERSIONFS_SLURM2_PRIVATE_TMP.
PlugStackConfig=$plugstack
TmpFS=/tmp
# Seconds between TERM and KILL at scancel / time limit (Slurm's default is 30).
KillWait=$kill_wait
# Keep finished jobs visible to 'scontrol show job' for 10 minutes (tests poll it).
MinJobAge=600
StateSaveLocation=$root/state
# %n: the node name given to slurmd -N (each node its own spool, pid file and log).
SlurmdSpoolDir=$root/%n/spool
SlurmctldPidFile=$root/run/slurmctld.pid
SlurmdPidFile=$root/run/slurmd-%n.pid
SlurmctldLogFile=$root/log/slurmctld.log
SlurmdLogFile=$root/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
${node_lines}PartitionName=debug Nodes=$(IFS=,; echo "${nodes[*]}") Default=YES MaxTime=INFINITE State=UP
CONF
)
if [[ ! -f $conf ]] || [[ $(cat "$conf") != "$new_conf" ]]; then
  printf '%s\n' "$new_conf" > "$conf"
  conf_changed=1
else
  conf_changed=0
fi
export SLURM_CONF=$conf

if [[ -n $private_tmp ]]; then
  case $private_tmp in /tmp|/tmp/*|/dev/shm|/dev/shm/*) ;; *) die "VERSIONFS_SLURM2_PRIVATE_TMP must be /tmp, /dev/shm or below (node-private), not '$private_tmp'" ;; esac
  so=$root/etc/private-tmp-spank.so
  src=$(dirname "$(readlink -f "$0")")/private-tmp-spank.c
  if [[ ! -f $so || $src -nt $so ]]; then
    say "compiling the private-tmp SPANK plugin"
    gcc -shared -fPIC -Wall -Werror -o "$so.tmp" "$src" >&2 && mv -f "$so.tmp" "$so" || die "could not compile $src"
  fi
  new_stack="required $so $private_tmp"
else
  new_stack=""
fi
if [[ ! -f $plugstack ]] || [[ $(cat "$plugstack") != "$new_stack" ]]; then
  printf '%s\n' "$new_stack" > "$plugstack"
  conf_changed=1   # slurmd reads plugstack.conf when it starts
fi

# ---- 3. network: a bridge in the root namespace, one namespace + veth pair per node ------------
# The bridge's address must be ours alone: another interface with an address in $net.0/24 means
# another setup uses the subnet.
if other=$(ip -o -4 addr show | awk -v net="$net." -v br="$bridge" '$2 != br && index($4, net) == 1 {print $2 " " $4}') \
    && [[ -n $other ]]; then
  die "subnet $net.0/24 is already used here ($other): set VERSIONFS_SLURM2_NET to another /24 prefix"
fi
if ! ip link show "$bridge" >/dev/null 2>&1; then
  say "creating bridge $bridge ($net.1/24)"
  ip link add "$bridge" type bridge
fi
ip -o -4 addr show dev "$bridge" | grep -q " $net.1/24 " || ip addr add "$net.1/24" dev "$bridge"
ip link set "$bridge" up

for i in "${!nodes[@]}"; do
  n=${nodes[$i]} ns=vfs2-${nodes[$i]} veth=vfs2n$((i + 1)) addr=$net.$((11 + i))
  if ! ip netns list | grep -qx "$ns\( .*\)\?"; then
    say "creating network namespace $ns"
    ip netns add "$ns"
  fi
  if ! ip link show "$veth" >/dev/null 2>&1; then
    say "creating veth pair $veth <-> $ns:eth0 ($addr)"
    ip -n "$ns" link del eth0 2>/dev/null || true
    ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$veth" master "$bridge" up
  ip -n "$ns" -o -4 addr show dev eth0 | grep -q " $addr/24 " || ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

# ---- 4. daemons --------------------------------------------------------------------------------
# node_alive NODE: its slurmd runs, in its network namespace.
node_alive() {
  alive "$root/run/slurmd-$1.pid" slurmd && [[ $(ip netns identify "$(<"$root/run/slurmd-$1.pid")") == "vfs2-$1" ]]
}

start_munge "$root/munge" "$key" "$sock"

if (( conf_changed )); then
  # A running daemon would keep the old settings: restart them.
  for pf in "$root"/run/slurmd-*.pid "$root/run/slurmctld.pid"; do
    d=$(basename "$pf" .pid); d=${d%%-*}
    if alive "$pf" "$d"; then say "config changed: restarting $(basename "$pf" .pid)"; kill "$(<"$pf")"; fi
  done
  for pf in "$root"/run/slurmd-*.pid "$root/run/slurmctld.pid"; do
    [[ -s $pf ]] && { wait_for 15 "stop" bash -c "! kill -0 \$(<'$pf') 2>/dev/null" || true; }
  done
fi

if ! alive "$root/run/slurmctld.pid" slurmctld; then
  say "starting slurmctld (port $ctld_port)"
  slurmctld -f "$conf" || die "slurmctld did not start; see $root/log/slurmctld.log"
fi
wait_for 20 slurmctld bash -c "scontrol ping | grep -q 'is UP'" \
  || die "slurmctld is not UP; see $root/log/slurmctld.log"

# The node's mount namespace, set up before slurmd starts in it (run by sh in the new namespaces):
# 1. drop its copies of mounts that belong to others: every FUSE or loop mount, and everything
#    below /tmp and /dev/shm (a copy would keep another program's filesystem alive: a FUSE daemon
#    only ends when the last mount of its filesystem is gone, in every namespace);
# 2. the node's own /tmp and /dev/shm; 3. its hostname; 4. slurmd, with a clean environment.
cat > "$root/etc/node-init.sh" <<'INIT'
# node-init.sh TMPDIR NODE SLURM_CONF [KEEP]: written by two-nodes-up.sh, run in a node's new
# namespaces. KEEP: folders under /tmp (colon-separated) that stay visible on the node.
set -eu
awk '($3 ~ /^fuse/ || $1 ~ /^\/dev\/loop/ || $2 ~ /^\/tmp\// || $2 ~ /^\/dev\/shm\//) && $2 != "/" { print $2 }' \
    /proc/self/mounts | sort -r | while read -r m; do
  m=$(printf '%b' "$m")   # /proc/mounts escapes spaces as \040
  umount -l -- "$m" 2>/dev/null || echo "node $2: could not drop the mount $m" >&2
done
# Folders under /tmp the jobs need (the source tree the tests run from: its launcher and jar)
# stay visible at the same path: bound aside, /tmp replaced, then moved back into the new /tmp.
stage="${1%/tmp}/keep"
kept=""
i=0
for k in $(printf '%s' "${4:-}" | tr ':' ' '); do
  case $k in /tmp/?*) [ -d "$k" ] || continue ;; *) continue ;; esac
  mkdir -p "$stage/$i"; mount --bind "$k" "$stage/$i"; kept="$kept $k"; i=$(( i + 1 ))
done
mount --bind "$1" /tmp
i=0
for k in $kept; do
  mkdir -p "$k"; mount --move "$stage/$i" "$k"; i=$(( i + 1 ))
done
mount -t tmpfs -o mode=1777,size=25% "shm-$2" /dev/shm
hostname "$2"
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin slurmd -f "$3" -N "$2"
INIT
for n in "${nodes[@]}"; do
  node_alive "$n" && continue
  if alive "$root/run/slurmd-$n.pid" slurmd; then
    die "the pid file of $n names a slurmd outside vfs2-$n (pid $(<"$root/run/slurmd-$n.pid")): stop it first"
  fi
  # A node's /tmp starts empty, as after a reboot (nothing can be mounted in it: the namespace
  # that saw it is gone with its slurmd).
  find "$root/$n/tmp" -xdev -mindepth 1 -delete 2>/dev/null || true
  say "starting slurmd -N $n in vfs2-$n (private /tmp = $root/$n/tmp, port $slurmd_port)"
  # nsenter --net rather than 'ip netns exec', which also remounts /sys for the namespace and so
  # hides /sys/fs/cgroup, without which slurmd does not start ("Unable to initialize cgroup plugin").
  nsenter --net="/run/netns/vfs2-$n" unshare --mount --uts --propagation private \
    sh "$root/etc/node-init.sh" "$root/$n/tmp" "$n" "$conf" "$keep" >&2 \
    || die "slurmd on $n did not start; see $root/log/slurmd-$n.log"
done

node_states() { sinfo -h -N -o '%N %T' 2>/dev/null; }
deadline=$(( SECONDS + 60 ))
declare -A resumed=()
while :; do
  ready=0
  while read -r n state; do
    case $state in
      idle|mixed|allocated|completing) ready=$(( ready + 1 )) ;;
      drain*|down*|fail*)
        # A node left drained/down by an earlier run (e.g. slurmd killed) is resumed once.
        if [[ -z ${resumed[$n]:-} ]]; then
          say "node $n is $state; resuming it"
          scontrol update NodeName="$n" State=RESUME >&2 || true
          resumed[$n]=1
        fi ;;
    esac
  done < <(node_states)
  (( ready == ${#nodes[@]} )) && break
  if (( SECONDS >= deadline )); then
    sinfo -N -l >&2 || true
    die "the nodes are not idle after 60 s; see $root/log/slurmd-*.log and slurmctld.log"
  fi
  sleep 0.3
done
say "nodes up: $(node_states | tr '\n' ' '); shared folder $root/shared; export SLURM_CONF=$conf"
echo "$conf"
