#!/usr/bin/env bash
# A stand-in for a closed-source, multi-process program such as ORCA: it keeps overwriting one
# output file and reads it back, with no option to keep the intermediate copies.
#
#   examples/blackbox.sh FILE [ITERATIONS] [WORKERS] [KIB]
#
# Each iteration:
#   1. WORKERS forked worker processes compute in parallel (each writes its own scratch file,
#      as MPI ranks do);
#   2. one worker (they take turns) rewrites FILE completely: header line + KIB KiB of payload;
#   3. the main process reads FILE back and checks the header, like an SCF restart read.
# Exits 0 when every read-back matched, 3 otherwise. Run it under versionfs to keep every version:
#
#   bin/versionfs run --target job.gbw -- examples/blackbox.sh job.gbw 20 4
set -euo pipefail
file=${1:?usage: blackbox.sh FILE [ITERATIONS] [WORKERS] [KIB]}
iterations=${2:-10}
workers=${3:-4}
kib=${4:-256}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/blackbox.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

payload() { # deterministic bytes for iteration $1: easy to check, not compressible to nothing
  head -c $(( kib * 1024 )) /dev/zero | tr '\0' "$(printf "\\$(printf '%03o' $(( 65 + $1 % 26 )))")"
}

for (( i = 1; i <= iterations; i++ )); do
  for (( w = 0; w < workers; w++ )); do
    ( payload "$i" > "$scratch/rank$w.tmp" ) &   # parallel scratch work, one process per "rank"
  done
  wait
  writer=$(( i % workers ))
  ( # the writing "rank" is its own process, as in an MPI job
    { printf 'iteration %d written by rank %d pid %s\n' "$i" "$writer" "$BASHPID"; cat "$scratch/rank$writer.tmp"; } > "$file"
  )
  read -r header < "$file"                      # read it back, as the program does
  case $header in
    "iteration $i written by rank $writer "*) ;;
    *) echo "blackbox: read back '$header' at iteration $i" >&2; exit 3 ;;
  esac
done
echo "blackbox: $iterations iterations by $workers worker processes done; $file has $(wc -c < "$file") bytes"
