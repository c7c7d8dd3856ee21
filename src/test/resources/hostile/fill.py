#!/usr/bin/env python3
# Run inside a small filesystem: rewrites job.gbw from scratch (a version that shares the live
# inode), fills the disk with the job's own scratch data to LEAVE MiB free, then watches the free
# space for SECONDS. Prints how many times the free space fell below 1 MiB (separate episodes) and
# how many of the job's own small writes failed with ENOSPC.
import os, sys, time, errno
mb = int(os.environ.get('MB', '15')); leave = int(os.environ.get('LEAVE', '6')); secs = float(os.environ.get('SECONDS_', '6'))
fd = os.open('job.gbw', os.O_WRONLY | os.O_TRUNC); os.write(fd, b'z' * (mb << 20)); os.close(fd)
st = os.statvfs('.'); free = st.f_bavail * st.f_frsize
s = os.open('scratch.tmp', os.O_WRONLY | os.O_CREAT, 0o644)
os.write(s, b's' * max(0, free - (leave << 20))); os.fsync(s); os.close(s)
episodes = enospc = 0; low = False; t0 = time.time()
while time.time() - t0 < secs:
    st = os.statvfs('.'); f = st.f_bavail * st.f_frsize
    if f < (1 << 20) and not low: episodes += 1
    low = f < (1 << 20)
    try:
        l = os.open("log.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try: os.write(l, b"l" * 65536)
        finally: os.close(l)
    except OSError as e:
        if e.errno != errno.ENOSPC: raise
        enospc += 1
print("episodes=%d enospc=%d" % (episodes, enospc), flush=True)
