#!/usr/bin/env python3
# many writers at disjoint offsets over NF files; expected final content written to EXP.<file>
import os, sys, time, random
W = int(os.environ.get('W', '40')); K = int(os.environ.get('K', '10')); NF = int(os.environ.get('NF', '1')); Q = float(os.environ.get('Q', '0.2'))
R = 4096
files = ['job.gbw'] + ['f%d.gbw' % i for i in range(1, NF)]
for f in files:
    if not os.path.exists(f):
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644); os.close(fd)
pids = []
for w in range(W):
    p = os.fork()
    if p == 0:
        rnd = random.Random(w)
        for k in range(K):
            f = files[(w + k) % NF]
            fd = os.open(f, os.O_RDWR)
            os.pwrite(fd, (b'%03d-%03d|' % (w, k)) * (R // 8), w * R)
            if rnd.random() < 0.3: os.fsync(fd)
            os.close(fd)
            time.sleep(rnd.random() * Q * 2)
        os._exit(0)
    pids.append(p)
bad = 0
for p in pids:
    _, st = os.waitpid(p, 0); bad |= st
exp = os.environ['EXP']
for i, f in enumerate(files):
    buf = bytearray(W * R)
    for w in range(W):
        ks = [k for k in range(K) if (w + k) % NF == i]
        if ks: buf[w*R:(w+1)*R] = (b'%03d-%03d|' % (w, ks[-1])) * (R // 8)
        else: buf[w*R:(w+1)*R] = b'\0' * R
    # trailing zero regions beyond the max written are not part of the file
    last = max([w for w in range(W) if any((w + k) % NF == i for k in range(K))], default=-1)
    open(exp + '.' + f, 'wb').write(bytes(buf[:(last+1)*R]))
sys.exit(1 if bad else 0)
