#!/usr/bin/env bash
# How long the end of a run takes (child exit -> versionfs exit: final versions, separating the
# live file from its last version, unmount, putting the file back), by file size, for the two
# shapes a job has:
#   quiet   the job writes its file, then computes for a while (the usual ORCA step) and exits
#   last    the job writes its file and exits at once (nothing had time to happen in between)
# next to a plain `cp` of the same file on the same disk (what a full end-of-run copy would cost).
#
#   bash bench/end.sh [--sizes-mib "256 1024 4096"] [--quiet-sec 10] [--dir DIR]
#
# Needs free space of about 3x the largest size in DIR (default: /var/tmp). Prints a table and
# writes bench/results/end.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
sizes="256 1024 4096" quiet=10 base=/var/tmp
while (( $# )); do
  case $1 in
    --sizes-mib) sizes=$2; shift ;;
    --quiet-sec) quiet=$2; shift ;;
    --dir) base=$2; shift ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "end bench: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ -f ${VERSIONFS_JAR:-$repo/target/versionfs.jar} ]] || (cd "$repo" && mvn -q -B -ntp package -DskipTests)
vfs=$repo/bin/versionfs
work=$(mktemp -d "$base/versionfs-end.XXXXXX")
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }

rows=()
for s in $sizes; do
  src=$work/src.bin
  head -c $((s << 20)) /dev/urandom > "$src"
  for shape in quiet last; do
    d=$work/$shape-$s; mkdir -p "$d"; cd "$d"
    echo start > job.gbw
    pause=0; [[ $shape == quiet ]] && pause=$quiet
    "$vfs" run -q --min-free 0 --target job.gbw -- sh -c "cat '$src' > job.gbw; sleep $pause; date +%s.%N > '$d/t_child_end'" \
      >/dev/null 2>"$d/err.txt" || { cat "$d/err.txt" >&2; exit 1; }
    t_exit=$(now)
    end=$(secs "$(cat "$d/t_child_end")" "$t_exit")
    cmp -s "$src" job.gbw || { echo "end bench: final content differs ($shape, $s MiB)" >&2; exit 1; }
    grep -q 'still shares' "$d/err.txt" && echo "end bench: left shared ($shape, $s MiB)" >&2
    eval "end_$shape=$end"
    cd "$work"; rm -rf "$d"
  done
  sync
  t0=$(now); cp "$src" "$work/copy.bin"; sync "$work/copy.bin"; t1=$(now)
  cp_s=$(secs "$t0" "$t1"); rm -f "$work/copy.bin" "$src"
  rows+=("| $s MiB | $end_quiet s | $end_last s | $cp_s s |")
done

{
  echo "End of a run (child exit to versionfs exit), $(date -u +%F), $(nproc) cores, $(stat -f -c %T "$work") at $base"
  echo
  echo "| file | written, then ${quiet} s of work | written just before exit | plain cp + sync of the file |"
  echo "| --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
} | tee "$here/results/end.md"
