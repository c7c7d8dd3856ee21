import os, sys, time
f = sys.argv[1]; mb = int(os.environ.get('MB', '300'))
fd = os.open(f, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
chunk = bytes(range(256)) * 4096  # 1 MiB
for i in range(mb): os.write(fd, chunk)
os.close(fd)
open(os.environ['MARK'], 'w').write(str(os.getpid()))
time.sleep(float(os.environ.get('SLEEP', '600')))
# after sleep: edit in place
fd = os.open(f, os.O_RDWR); os.pwrite(fd, b'EDITED', 1000); os.close(fd)
