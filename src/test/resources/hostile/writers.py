#!/usr/bin/env python3
# writer scenarios; writes expected final content to $EXP
import os, sys, time, mmap
sc = sys.argv[1]; f = sys.argv[2]; exp = os.environ['EXP']; Q = float(os.environ.get('Q', '0.2'))
def pw(fd, data, off):
    n = os.pwrite(fd, data, off); assert n == len(data)
buf = bytearray(open(f, 'rb').read()) if os.path.exists(f) else bytearray()
def mod(data, off):
    global buf
    if len(buf) < off: buf.extend(b'\0' * (off - len(buf)))
    buf[off:off+len(data)] = data
if sc == 'inplace':  # write, close, wait > quiet, reopen, pwrite in place
    for i in range(int(os.environ.get('N', '8'))):
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        d = (b'%d' % i) * 1000; off = (i * 777) % 5000
        pw(fd, d, off); mod(d, off); os.close(fd)
        time.sleep(Q * (1 + (i % 3)))
elif sc == 'heldopen':  # keep an fd open across quiet times (read-only + rw)
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    for i in range(int(os.environ.get('N', '8'))):
        w = os.open(f, os.O_RDWR)
        d = (b'<%d>' % i) * 500; off = i * 100
        pw(w, d, off); mod(d, off); os.close(w)  # version, shared
        time.sleep(Q * 3)  # background separation while fd is open
        d2 = b'X%d' % i; pw(fd, d2, 3); mod(d2, 3)  # write through the old fd
        assert os.pread(fd, len(buf) + 10, 0) == bytes(buf), "read back differs at %d" % i
    os.close(fd)
elif sc == 'append':
    for i in range(int(os.environ.get('N', '8'))):
        fd = os.open(f, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        d = b'line %d\n' % i; os.write(fd, d); buf.extend(d); os.close(fd)
        time.sleep(Q * 2)
elif sc == 'truncate':
    for i in range(int(os.environ.get('N', '8'))):
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        d = b'T%d' % i * 300; pw(fd, d, 0); mod(d, 0); os.close(fd)
        time.sleep(Q * 2)
        n = 100 + i * 50; os.truncate(f, n); buf = buf[:n] + b'\0' * max(0, n - len(buf))
        time.sleep(Q * 2)
elif sc == 'chmod':
    for i in range(int(os.environ.get('N', '6'))):
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        d = b'C%d' % i * 300; pw(fd, d, 10); mod(d, 10); os.close(fd)
        time.sleep(Q * 2)
        os.chmod(f, 0o600 if i % 2 else 0o640)
        time.sleep(Q * 0.5)
elif sc == 'mmap':
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    if len(buf) < 65536: os.ftruncate(fd, 65536); buf.extend(b'\0' * (65536 - len(buf)))
    os.close(fd)
    for i in range(int(os.environ.get('N', '6'))):
        fd = os.open(f, os.O_RDWR)
        m = mmap.mmap(fd, 65536)
        d = b'M%d' % i * 100; m[i*1000:i*1000+len(d)] = d; mod(d, i*1000)
        m.flush(); m.close(); os.close(fd)
        time.sleep(Q * 3)
elif sc == 'mmapheld':  # mapping kept across the background swap
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    if len(buf) < 65536: os.ftruncate(fd, 65536); buf.extend(b'\0' * (65536 - len(buf)))
    m = mmap.mmap(fd, 65536)
    for i in range(int(os.environ.get('N', '6'))):
        d = b'H%d' % i * 100; m[i*1000:i*1000+len(d)] = d; mod(d, i*1000)
        m.flush()
        w = os.open(f, os.O_RDWR); dd = b'w%d' % i; pw(w, dd, 60000); mod(dd, 60000); os.close(w)  # a version
        time.sleep(Q * 3)
    m.close(); os.close(fd)
elif sc == 'renameopen':  # rename while open, keep writing via old fd, rename back
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    d = b'A' * 4000; pw(fd, d, 0); mod(d, 0); os.close(fd)
    fd = os.open(f, os.O_RDWR)
    time.sleep(Q * 3)
    os.rename(f, f + '.moved')
    time.sleep(Q * 3)
    d = b'B' * 100; pw(fd, d, 50); mod(d, 50); os.close(fd)
    time.sleep(Q * 3)
    fd = os.open(f + '.moved', os.O_RDWR); d = b'C' * 10; pw(fd, d, 0); mod(d, 0); os.close(fd)
    time.sleep(Q * 3)
    os.rename(f + '.moved', f)
    time.sleep(Q * 3)
elif sc == 'hardlink':
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    d = b'L' * 3000; pw(fd, d, 0); mod(d, 0); os.close(fd)
    time.sleep(Q * 3)
    os.link(f, f + '.hl')
    time.sleep(Q * 3)
    fd = os.open(f + '.hl', os.O_RDWR); d = b'via-link'; pw(fd, d, 100); mod(d, 100); os.close(fd)
    time.sleep(Q * 3)
    assert open(f, 'rb').read() == bytes(buf), "link not seen via main name"
    fd = os.open(f, os.O_RDWR); d = b'via-main'; pw(fd, d, 200); mod(d, 200); os.close(fd)
    time.sleep(Q * 3)
    assert open(f + '.hl', 'rb').read() == bytes(buf), "main not seen via link"
    os.unlink(f + '.hl')
    time.sleep(Q * 2)
elif sc == 'unlinkopen':
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    d = b'U' * 3000; pw(fd, d, 0); os.close(fd)
    fd = os.open(f, os.O_RDWR)
    time.sleep(Q * 3)
    os.unlink(f)
    time.sleep(Q * 3)
    pw(fd, b'ghost', 0); os.close(fd)
    time.sleep(Q * 3)
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644); d = b'reborn'; pw(fd, d, 0); os.close(fd)
    buf = bytearray(d)
    time.sleep(Q * 3)
elif sc == 'atomicsave':
    for i in range(int(os.environ.get('N', '6'))):
        t = f + '.tmp'
        fd = os.open(t, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644); d = b'S%d' % i * 2000; os.write(fd, d); os.close(fd)
        os.rename(t, f); buf = bytearray(d)
        time.sleep(Q * (1 + i % 3))
        fd = os.open(f, os.O_RDWR); dd = b'e%d' % i; pw(fd, dd, 5); mod(dd, 5); os.close(fd)
        time.sleep(Q * (i % 2) * 2)
open(exp, 'wb').write(bytes(buf))
