#!/usr/bin/env bash
# A job inside a real container under versionfs: builds a tiny image from the static busybox of
# Debian's busybox-static (no network), and runs a job in it that rewrites job.gbw 5 times, reads
# each back, then renames it away (job.ges, as ORCA AutoStart does) and writes a sixth.
#   examples/container.sh ch-run    # Charliecloud (charliecloud-runtime)
#   examples/container.sh podman    # Podman (podman, runc; on small VMs see ContainerIT's containers.conf)
# Run it in an empty folder outside /tmp; versionfs on PATH (or VERSIONFS=bin/versionfs).
set -euo pipefail
runtime=${1:-ch-run}
vfs=${VERSIONFS:-versionfs}
img=$PWD/.img
[[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1 || { echo "needs a static /bin/busybox (apt-get install busybox-static)" >&2; exit 2; }
rm -rf "$img" && mkdir -p "$img"/{bin,etc,tmp,proc,sys,dev,root,"${PWD#/}"}
cp /bin/busybox "$img/bin/" && for a in sh cat echo mv; do ln -s busybox "$img/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$img/etc/passwd"; echo 'root:x:0:' > "$img/etc/group"
cat > job.sh <<'JOB'
#!/bin/sh
for i in 1 2 3 4 5; do echo "iteration $i" > job.gbw; [ "$(cat job.gbw)" = "iteration $i" ] || exit 3; done
mv job.gbw job.ges && echo "iteration 6" > job.gbw
JOB
chmod +x job.sh
echo start > job.gbw
case $runtime in
  ch-run) USER=${USER:-$(id -un)} "$vfs" run --target job.gbw -- ch-run -b "$PWD" -c "$PWD" "$img" -- ./job.sh ;;
  podman) tar -C "$img" -cf .img.tar . && podman import -q .img.tar localhost/vfs-example >/dev/null
          "$vfs" run --target job.gbw -- podman run --rm --network none -v "$PWD:$PWD" -w "$PWD" localhost/vfs-example ./job.sh ;;
  *) echo "usage: $0 ch-run|podman" >&2; exit 2 ;;
esac
ls -a . job.gbw.versions   # job.000001.gbw (start) ... job.000007.gbw (iteration 6); job.ges: iteration 5
