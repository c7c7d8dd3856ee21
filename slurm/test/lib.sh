# Shared by slurm-up.sh and two-nodes-up.sh (sourced, after they define say and die): the Slurm
# packages, munge's key and daemon, and the small waits both scripts use.

# install_slurm [EXTRA_PACKAGE...]: installs slurmctld, slurmd, slurm-client and munge when one of
# their commands is missing (apt-get; one update and retry if the install fails), and the extra
# packages whenever some are given.
install_slurm() {
  local need=() cmd
  for cmd in slurmctld slurmd sbatch munged mungekey; do
    command -v "$cmd" >/dev/null 2>&1 || need+=("$cmd")
  done
  (( ${#need[@]} + $# )) || return 0
  local pkgs=(slurmctld slurmd slurm-client munge "$@")
  say "installing ${pkgs[*]}${need[*]:+ (missing: ${need[*]})}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o DPkg::Lock::Timeout=600 "${pkgs[@]}" >&2; then
    say "install failed; running apt-get update and retrying"
    apt-get update -o DPkg::Lock::Timeout=600 >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o DPkg::Lock::Timeout=600 "${pkgs[@]}" >&2 || die "could not install ${pkgs[*]}"
  fi
}

# munge_key KEYFILE: creates the key once; munged wants it root-owned and 0400.
munge_key() {
  if [[ ! -s $1 ]]; then
    rm -f "$1"
    mungekey --create --keyfile="$1" >&2
  fi
  chown root:root "$1"
  chmod 0400 "$1"
}

# alive PIDFILE NAME: the pid in PIDFILE is a running process called NAME.
alive() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]
}

# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds (quietly), at most SECONDS.
wait_for() {
  local deadline=$(( SECONDS + $1 )); shift 2
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
}

# start_munge DIR KEYFILE SOCKET: munged with its pid, log and seed files in DIR (unless it runs),
# then waits until it answers on SOCKET.
start_munge() {
  if ! alive "$1/munged.pid" munged; then
    say "starting munged"
    rm -f "$3" "$3.lock"
    munged --key-file="$2" --socket="$3" --pid-file="$1/munged.pid" \
      --log-file="$1/munged.log" --seed-file="$1/munged.seed" >&2 \
      || die "munged did not start; see $1/munged.log"
  fi
  wait_for 10 munge munge --socket="$3" -n -o /dev/null \
    || die "munge does not answer on $3; see $1/munged.log"
}
