package io.versionfs.fs;

import io.versionfs.sys.FuseSession;
import io.versionfs.text.Log;
import jnr.ffi.Pointer;

import java.nio.file.Path;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * libfuse's multi-threaded request loop ({@code fuse_session_loop_mt} of libfuse 2.9), run on
 * Java threads instead of libfuse's own.
 *
 * <p>Why: libfuse's workers are native threads, and jffi attaches such a thread to the JVM for
 * each callback and detaches it afterwards, until that thread has made 1000 calls (jffi's
 * THREAD_ATTACH_THRESHOLD). An attach creates a java.lang.Thread and the stack guard pages, a
 * detach tears them down: strace showed mmap/mprotect of the guard pages, sched_getaffinity and
 * sigprocmask around every request of a short job, and a fresh mount spent ~180-200 µs of CPU
 * per open/flush/release request for its first few thousand requests against ~60 µs later
 * (bench/README.md, "Per-request cost"). A Java thread is attached from its start.
 *
 * <p>The rules are fuse_loop_mt's: a worker that takes a request when no other is waiting for
 * one starts another first (so a callback that blocks never stalls the mount, and there is no
 * fixed limit that could deadlock it), except for FORGET requests; one that finds more than 10
 * others waiting when it is done ends. Lock order: {@link #lock} only, never held across a
 * native call.
 */
final class FuseLoop {
    /** {@code -Dversionfs.fuseLoop=libfuse}: libfuse's own loop (fuse_main_real), to compare or as a way out. */
    static final boolean JAVA_THREADS = !"libfuse".equals(System.getProperty("versionfs.fuseLoop"));

    private static final FuseSession.Lib F = FuseSession.FUSE;
    private static final int MAX_IDLE = 10;
    private static final int EINTR = 4;

    private final Pointer se;
    private final Pointer ch;
    private final long bufSize;
    private final Object lock = new Object();
    /** Guarded by {@link #lock}: workers waiting for a request, all workers, the loop ending. */
    private int available, workers, serial;
    private boolean exiting;
    private final Set<Thread> threads = ConcurrentHashMap.newKeySet();
    private final Semaphore ended = new Semaphore(0);
    private volatile boolean failed;

    private FuseLoop(Pointer se) {
        this.se = se;
        this.ch = F.fuse_session_next_chan(se, null);
        this.bufSize = F.fuse_chan_bufsize(ch);
    }

    /**
     * As fuse_main_real: mounts with {@code args}, serves until unmounted, tears down. 0 when the
     * mount ended normally, 1 when it could not be made or a request could not be read.
     */
    static int run(String[] args, Pointer ops, long opsSize, Path mountPoint) {
        Pointer mp = FuseSession.allocate(8);
        Pointer fuse;
        synchronized (io.versionfs.sys.Spawns.LOCK) { // fuse_setup forks fusermount: see Spawns
            fuse = FuseSession.setup(args, ops, opsSize, mp);
        }
        if (fuse == null) return 1;
        FuseLoop loop = new FuseLoop(F.fuse_get_session(fuse));
        loop.serve(mountPoint);
        if (loop.threads.isEmpty()) {
            FuseSession.teardown(fuse, mp);
        } else {
            // Tearing down frees what those threads still use: leave it (the process ends soon).
            Log.warn(loop.threads.size() + " FUSE worker(s) still busy after " + mountPoint + " was unmounted; left running");
        }
        return loop.failed ? 1 : 0;
    }

    private void serve(Path mountPoint) {
        synchronized (lock) {
            startWorker();
        }
        // The mount's life: ends when it is unmounted (every reader then gets ENODEV) or fails.
        while (F.fuse_session_exited(se) == 0 && !threads.isEmpty()) {
            try {
                ended.tryAcquire(1, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        synchronized (lock) {
            exiting = true;
        }
        if (!joinAll(2_000)) {
            // A worker still waits for a request on a connection that is up (the session was
            // ended some other way): unmounting wakes it, as fuse_loop_mt's pthread_cancel would.
            FuseMount.lazyUnmount(mountPoint);
            joinAll(10_000);
        }
        F.fuse_session_reset(se);
    }

    /** Caller holds {@link #lock}. */
    private void startWorker() {
        Thread t = new Thread(this::work, "versionfs-fuse-" + (++serial));
        t.setDaemon(true);
        threads.add(t);
        workers++;
        available++;
        try {
            t.start();
        } catch (Throwable e) { // no more threads: this request is still served, by the caller
            threads.remove(t);
            workers--;
            available--;
            Log.warnOnce("fuse-thread", "cannot start another FUSE worker (" + e + "); serving with " + workers);
        }
    }

    private void work() {
        Pointer mem = FuseSession.allocate(bufSize);
        Pointer fbuf = FuseSession.allocate(FuseSession.BUF_SIZE);
        Pointer chp = FuseSession.allocate(8);
        try {
            while (F.fuse_session_exited(se) == 0) {
                FuseSession.resetBuf(fbuf, mem, bufSize);
                chp.putAddress(0, ch.address());
                int res = F.fuse_session_receive_buf(se, fbuf, chp);
                if (res == -EINTR) continue;
                if (res <= 0) {
                    if (res < 0) {
                        F.fuse_session_exit(se);
                        failed = true;
                    }
                    return;
                }
                if (!serveOne(fbuf, mem, chp)) return;
            }
        } finally {
            threads.remove(Thread.currentThread());
            ended.release();
        }
    }

    /** Processes the request read into {@code fbuf}; false when this worker is to end. */
    private boolean serveOne(Pointer fbuf, Pointer mem, Pointer chp) {
        boolean forget = FuseSession.isForget(fbuf, mem);
        synchronized (lock) {
            if (exiting) return false;
            if (!forget) available--;
            if (available == 0) startWorker();
        }
        F.fuse_session_process_buf(se, fbuf, chp.getPointer(0));
        synchronized (lock) {
            if (!forget) available++;
            if (available > MAX_IDLE && !exiting) {
                available--;
                workers--;
                return false;
            }
        }
        return true;
    }

    private boolean joinAll(long millis) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        for (Thread t : threads) {
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0) break;
            try {
                t.join(left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return threads.isEmpty();
    }
}
