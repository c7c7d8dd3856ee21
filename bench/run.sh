#!/usr/bin/env bash
# versionfs benchmark suite: one command, every measurement side by side in the same run.
#
#   bash bench/run.sh [--quick] [--head] [--keep] [--only seq,b2b,close,...,coherence]
#
#   --quick   small sizes and one repetition (a couple of minutes) instead of the full run (~10 min)
#   --head    benchmark the committed HEAD (git archive, built in the work folder) instead of
#             target/versionfs.jar (which is built only if missing)
#   --keep    keep the work folder (bench/results/work.*) instead of deleting it at the end
#   --only    run only some sections (comma-separated): seq,b2b,close,rewriters,rss,example,scratch,loaded,start,coherence
#   --seq-mib N / --seq-reps N   size and repetitions of the seq section
#   --b2b-reps N                 repetitions of the back-to-back rewrites section (3)
#   --close-sizes 1,64,512       which file sizes the close section measures
#
# Environment: VERSIONFS_JAR=path benchmarks that jar (bin/versionfs honours it) instead of
# target/versionfs.jar. BENCH_WORK=dir puts the work folder (a fresh work.* inside dir) elsewhere;
# it must be a real disk: the "direct" baseline and the mount's backing store both live there.
#
# Prints a table and writes bench/results/latest.{csv,json,md}. Exit code 0 when the run completed
# without versionfs misbehaving (goals may still FAIL: see the table), 1 when a problem was seen,
# 2 on a setup error. Every mount made here is unmounted on exit, also on failure or Ctrl-C.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

quick=() keep=0 only=() head=0 extra=()
while (( $# )); do
  case $1 in
    --quick) quick=(--quick) ;;
    --seq-mib) extra+=(--seq-mib "$2"); shift ;;
    --seq-reps) extra+=(--seq-reps "$2"); shift ;;
    --b2b-reps) extra+=(--b2b-reps "$2"); shift ;;
    --close-sizes) extra+=(--close-sizes "$2"); shift ;;
    --keep) keep=1 ;;
    --head) head=1 ;;
    --only) only=(--only "$2"); shift ;;
    --only=*) only=(--only "${1#--only=}") ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

# ---- tools ------------------------------------------------------------------------------------
need=()
command -v inotifywait >/dev/null || need+=(inotify-tools)
command -v fusermount3 >/dev/null || need+=(fuse3)
ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || need+=(libfuse2)
# The C floor: libfuse2's example pass-through, shipped by Debian's libfuse-dev.
floor_src=/usr/share/doc/libfuse-dev/examples/fusexmp_fh.c
[[ -f $floor_src ]] && pkg-config --exists fuse 2>/dev/null || need+=(libfuse-dev pkg-config)
command -v python3 >/dev/null || need+=(python3)
command -v gcc >/dev/null || need+=(gcc)
if (( ${#need[@]} )); then
  if (( EUID == 0 )); then
    say "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "bench: missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root" >&2
    exit 2
  fi
fi
if (( EUID != 0 )); then
  say "not root: page caches cannot be dropped, 'cold' reads will be warm; run as root for honest numbers"
fi

# ---- work folder and cleanup ------------------------------------------------------------------
mkdir -p "${BENCH_WORK:-$here/results}"
work=$(mktemp -d "$(cd "${BENCH_WORK:-$here/results}" && pwd)/work.XXXXXX")

cleanup() {
  local rc=$?
  # The Python side unmounts what it mounted; this is the safety net for a crash or a kill.
  local mp
  while read -r _ mp type _; do
    if [[ ($type == fuse.versionfs || $type == fuse.floor) && $mp == "$work"/* ]]; then
      say "cleanup: unmounting leftover $mp"
      fusermount -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    fi
  done < /proc/mounts
  if (( keep )); then say "work folder kept: $work"; else rm -rf "${work:?}"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the jar ----------------------------------------------------------------------------------
jar_source="target/versionfs.jar of the working tree"
if (( head )); then
  say "building the committed HEAD ($(git -C "$repo" log -1 --format=%h)) in $work/build"
  mkdir -p "$work/build"
  git -C "$repo" archive HEAD | tar -x -C "$work/build"
  (cd "$work/build" && mvn -q -B package -DskipTests) >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; echo "bench: build of HEAD failed" >&2; exit 2; }
  jar=$work/build/target/versionfs.jar
  jar_source="committed HEAD $(git -C "$repo" log -1 --format=%h), built by --head"
  export BENCH_VERSIONFS=$work/build/bin/versionfs
elif [[ -n ${VERSIONFS_JAR:-} ]]; then
  jar_source="VERSIONFS_JAR"
  jar=$VERSIONFS_JAR
  [[ -f $jar ]] || { echo "bench: VERSIONFS_JAR=$jar not found" >&2; exit 2; }
else
  jar=$repo/target/versionfs.jar
  if [[ ! -f $jar ]]; then
    say "building $jar (mvn package)"
    (cd "$repo" && mvn -q -B package -DskipTests) || { echo "bench: build failed" >&2; exit 2; }
  elif [[ -n $(find "$repo/src/main" "$repo/pom.xml" -newer "$jar" -type f 2>/dev/null | head -1) ]]; then
    say "WARNING: $jar is older than the sources; benchmarking it anyway (rebuild: mvn -q -B package -DskipTests)"
  fi
fi
export VERSIONFS_JAR=$jar

export BENCH_JAR_SOURCE=$jar_source
tool=$work/vfsbench
gcc -O2 -Wall -o "$tool" "$here/vfsbench.c"
# The floor: the same libfuse2, same mount options as versionfs (FuseMount.BASE_OPTIONS without
# fsname/subtype; BENCH_FLOOR_OPTIONS overrides), no versioning, no JVM.
export BENCH_FLOOR=$work/fusexmp_fh
if [[ -z ${BENCH_FLOOR_OPTIONS:-} ]]; then
  fm=$repo/src/main/java/io/versionfs/fs/FuseMount.java
  BENCH_FLOOR_OPTIONS=$(sed -n 's/.*"fsname=versionfs,subtype=versionfs,\([^"]*\)".*/\1/p' "$fm")
  for s in $(sed -n 's/.*DEFAULT_SPLICE = "\([^"]*\)".*/\1/p' "$fm" | tr , ' '); do
    BENCH_FLOOR_OPTIONS+=",splice_$s"
  done
fi
export BENCH_FLOOR_OPTIONS
gcc -O2 -Wall -o "$BENCH_FLOOR" "$floor_src" $(pkg-config fuse --cflags --libs) -lulockmgr
say "C floor: $floor_src, -o $BENCH_FLOOR_OPTIONS"

say "work folder $work on $(df --output=source,fstype "$work" | tail -1 | tr -s ' '); jar $jar"
set +e
python3 "$here/bench.py" --work "$work" --tool "$tool" --jar "$jar" "${quick[@]}" "${only[@]}" "${extra[@]}" &
py=$!
trap 'kill -TERM $py 2>/dev/null; wait $py; exit 130' INT
trap 'kill -TERM $py 2>/dev/null; wait $py; exit 143' TERM
wait $py
rc=$?
set -e
exit $rc
