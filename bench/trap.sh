#!/usr/bin/env bash
# What the name trap costs a job, side by side in one run (rounds alternate: unwrapped, --no-trap,
# trap, dir mode), as ns per call measured inside the job by trapcost.c:
#   write   1-byte writes to /dev/null: every system call the filter lets through untouched
#   rename  renames of a file that is not a target: trapped, looked at, answered "run it yourself"
#   onto    atomic saves (4 KiB temp file + rename onto the target): each one a version
#
#   bash bench/trap.sh [ROUNDS]     (default 3; prints medians and ratios)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
rounds=${1:-3}
work=$(mktemp -d "${BENCH_WORK:-$repo/bench/results}/trap.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/trapcost" "$here/trapcost.c"
[[ -f $repo/target/versionfs.jar ]] || (cd "$repo" && mvn -q -B -ntp package -DskipTests)
vfs=$repo/bin/versionfs
cd "$work"
declare -A samples
measure() { # label kind n command...
  local label=$1 kind=$2 n=$3; shift 3
  local out
  out=$("$@" 2>/dev/null | awk -v k="$kind" '$1 == k {print $2}')
  samples[$label/$kind]+="$out "
}
for ((r = 1; r <= rounds; r++)); do
  for kind in write rename onto; do
    case $kind in write) n=1000000 ;; rename) n=20000 ;; onto) n=300 ;; esac
    args=("$work/trapcost" "$kind" "$n" job.dat)
    rm -rf job.dat job.dat.versions
    measure unwrapped "$kind" "$n" "${args[@]}"
    rm -rf job.dat job.dat.versions
    measure no-trap "$kind" "$n" "$vfs" run -q --no-trap --target job.dat -- "${args[@]}"
    rm -rf job.dat job.dat.versions
    measure trap "$kind" "$n" "$vfs" run -q --target job.dat -- "${args[@]}"
    rm -rf job.dat job.dat.versions
    measure dir "$kind" "$n" "$vfs" run -q --mode dir --target job.dat -- "${args[@]}"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "NA")}'; }
printf '%-8s %12s %12s %12s %12s %14s\n' call unwrapped no-trap trap dir-mode "trap/no-trap"
for kind in write rename onto; do
  u=$(echo "${samples[unwrapped/$kind]}" | median); n=$(echo "${samples[no-trap/$kind]}" | median)
  t=$(echo "${samples[trap/$kind]}" | median); d=$(echo "${samples[dir/$kind]}" | median)
  printf '%-8s %10s ns %10s ns %10s ns %10s ns %14s\n' "$kind" "$u" "$n" "$t" "$d" "$(awk -v a="$t" -v b="$n" 'BEGIN {printf "%.2f", a / b}')"
done
echo "(ns per call inside the job, median of $rounds rounds; 'onto' under no-trap replaces the target's symlink on the first save: only the trap and dir mode version every save)"
