#!/bin/sh
# A stand-in for an ORCA restart job (AutoStart). When job.gbw exists, ORCA renames it to
# job.ges (its starting guess), reads it, spends a while on integrals and the first SCF, and only
# then writes a fresh job.gbw, which it rewrites at every step.
#
# Usage: autostart.sh FILE [STEPS=8] [PAUSE_SECONDS=1.5] [KIB=64]
set -eu
f=$1
steps=${2:-8}
pause=${3:-1.5}
kib=${4:-64}
guess="${f%.*}.ges"
if [ -e "$f" ]; then
  mv "$f" "$guess"                      # AutoStart: the old orbitals become the guess
  cat "$guess" > /dev/null              # ... and are read
fi
sleep "$pause"                          # integrals, first SCF
i=1
while [ "$i" -le "$steps" ]; do
  # Content made first, then one open-write-close, as a program saving its orbitals does.
  body=$(head -c $((kib * 1024)) /dev/zero | tr '\0' "$(printf '\\%03o' $((65 + i % 26)))")
  printf 'step %d\n%s\n' "$i" "$body" > "$f"
  i=$((i + 1))
done
