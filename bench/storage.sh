#!/usr/bin/env bash
# Disk used by versions, side by side on ext4 and on XFS with reflink=1 (both loop-mounted here),
# for a program that edits a large file in place (each version needs a copy: reflinks share the
# unchanged extents) and for one that rewrites identical content (versions stored once).
#
#   sudo bash bench/storage.sh [--size-mib 256] [--versions 10]
#
# Needs root (loop mounts); installs xfsprogs if missing. Prints a table and writes
# bench/results/storage.md. Every loop mount made here is unmounted on exit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
size_mib=256 n=10
while (( $# )); do
  case $1 in
    --size-mib) size_mib=$2; shift ;;
    --versions) n=$2; shift ;;
    -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "storage bench: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $(id -u) == 0 ]] || { echo "storage bench: needs root for loop mounts (sudo bash bench/storage.sh)" >&2; exit 2; }
command -v mkfs.xfs >/dev/null || { echo "storage bench: installing xfsprogs" >&2; apt-get install -y -q xfsprogs >/dev/null; }
[[ -f ${VERSIONFS_JAR:-$repo/target/versionfs.jar} ]] || (cd "$repo" && mvn -q -B -ntp package -DskipTests)
vfs=$repo/bin/versionfs
work=$(mktemp -d /var/tmp/versionfs-storage.XXXXXX)
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
disk_mib=$(( size_mib * (n + 3) + 512 ))
mkfs_of() { case $1 in ext4) mkfs.ext4 -q -F "$2" ;; xfs) mkfs.xfs -q -f -m reflink=1 "$2" ;; esac; }
used_kib() { df -k --output=used "$1" | tail -1 | tr -d ' '; }

results=()
for fs in ext4 xfs; do
  img=$work/$fs.img mnt=$work/$fs
  truncate -s "${disk_mib}M" "$img"
  mkfs_of "$fs" "$img"
  mkdir -p "$mnt"; mount -o loop "$img" "$mnt"; mounts+=("$mnt")
  for scenario in inplace identical; do
    d=$mnt/$scenario; mkdir -p "$d"; cd "$d"
    head -c $((size_mib << 20)) /dev/urandom > big.dat; sync
    before=$(used_kib "$mnt")
    if [[ $scenario == inplace ]]; then
      # each step overwrites 1 MiB in the middle, in place: a new version each time
      job="for i in \$(seq 1 $n); do python3 -c \"import os; fd=os.open('big.dat', os.O_RDWR); os.pwrite(fd, os.urandom(1<<20), ((\$i*7919) % $size_mib) << 20); os.close(fd)\"; done"
    else
      # each step rewrites the same content from scratch
      job="cp big.dat same.src; for i in \$(seq 1 $n); do cat same.src > big.dat; done; rm same.src"
    fi
    "$vfs" run --min-free 0 --target big.dat -- sh -c "$job" >/dev/null 2>"$d/err.txt" || { cat "$d/err.txt" >&2; exit 1; }
    sync
    after=$(used_kib "$mnt")
    versions=$(ls big.dat.versions | grep -c '\.dat$' || true)
    logical=$(du -b --apparent-size -c big.dat.versions/big.*.dat | tail -1 | cut -f1)
    extra_mib=$(( (after - before) / 1024 ))
    results+=("| $fs | $scenario | $versions | $(( logical >> 20 )) MiB | $extra_mib MiB | $(awk -v a=$extra_mib -v b=$(( logical >> 20 )) 'BEGIN{printf "%.2f", (b>0? a/b : 0)}') |")
    cd "$work"; rm -rf "$d"; sync
  done
done
out="$here/results/storage.md"
mkdir -p "$here/results"
{
  echo "Disk used by versions of a ${size_mib} MiB file, $n steps, versions folder beside the file (same filesystem)."
  echo "'on disk' is the growth of the filesystem's used space over the run (live file included: it is rewritten in place)."
  echo
  echo "| filesystem | job | versions | content of the versions | on disk | on disk / content |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
  printf '%s\n' "${results[@]}"
} | tee "$out"
