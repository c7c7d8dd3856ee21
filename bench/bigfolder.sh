#!/usr/bin/env bash
# Times list / verify / prune on big versions folders (issue 20, item 5): wall time, CPU and peak
# RSS (GNU time) of each command through the launcher, at its default heap.
#
#   bash bench/bigfolder.sh [WORK]          # WORK: where the folders go (default bench/results/big)
#   BENCH_JARS="old.jar new.jar" bash bench/bigfolder.sh   # compare jars (VERSIONFS_JAR each)
#
# Folders: 1M versions (manifest only, 267 MB) for list; 100k versions with their files for verify
# and prune (prune runs on a fresh copy each time). Put WORK on tmpfs to time the CPU alone:
# on a disk, unlinking 100k files is most of prune's time and varies with the disk's other load.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${1:-$here/results/big}
jars=${BENCH_JARS:-$here/../target/versionfs.jar}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (/usr/bin/time)" >&2; exit 2; }
mkdir -p "$work"
[[ -f $work/m1m/manifest.jsonl ]] || python3 "$here/bigfolder.py" "$work/m1m" 1000000 --no-files
[[ -f $work/f100k/manifest.jsonl ]] || python3 "$here/bigfolder.py" "$work/f100k" 100000
unset VERSIONFS_HEAP VERSIONFS_JAVA_OPTS
run() {  # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e s wall, %U s user, %S s sys, peak RSS %M KB, exit %x" -o "$work/time.txt" "$@" >/dev/null 2>"$work/err.txt" || true
  printf '%-34s %s' "$label" "$(tail -1 "$work/time.txt")"
  if grep -q OutOfMemoryError "$work/err.txt"; then printf '  (OutOfMemoryError)'; fi
  echo
}
for jar in $jars; do
  export VERSIONFS_JAR=$jar
  echo "== $jar"
  run "list --json, 1M versions" "$here/../bin/versionfs" list --json "$work/m1m"
  run "list, 1M versions" "$here/../bin/versionfs" list "$work/m1m"
  run "verify, 100k versions" "$here/../bin/versionfs" verify "$work/f100k"
  rm -rf "$work/p100k" && mkdir "$work/p100k" && cp -a "$work/f100k/." "$work/p100k/" && sync
  run "prune --keep-last 10, 100k" "$here/../bin/versionfs" prune --keep-last 10 "$work/p100k"
  rm -rf "$work/p100k"
done
