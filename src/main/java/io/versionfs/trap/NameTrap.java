package io.versionfs.trap;

import io.versionfs.text.Log;
import io.versionfs.sys.Errno;
import io.versionfs.sys.Seccomp;
import io.versionfs.sys.Seccomp.Notification;
import io.versionfs.trap.TrapRules.Action;
import io.versionfs.trap.TrapRules.Decision;
import io.versionfs.trap.TrapRules.Facts;

import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.LongAdder;

/**
 * Holds the job's rename, unlink and link calls while versionfs decides (seccomp user
 * notification): exactly as close() waits for FUSE's flush, the job waits here, so it can never
 * run ahead of what versionfs does to a target's name.
 *
 * <p>Life: {@link #prepare} starts the supervisor thread from an unfiltered thread (a thread
 * started after the filter would carry it and trap its own calls); {@link #installHere} then
 * puts the filter on the thread that starts the job; {@link #close} at the very end. If the
 * filter cannot be installed, {@link #abandon} and the run falls back to following names after
 * the fact.
 */
public final class NameTrap implements AutoCloseable {

    /** What the run knows of its names: targets by (folder, name), and the folders it stands on. */
    public record Scope(List<TargetName> targets, Set<Inode> anchors, Set<Inode> versionsFolders) {
        int targetAt(Inode folder, String name) {
            for (int i = 0; i < targets.size(); i++) {
                TargetName t = targets.get(i);
                if (t.folder().equals(folder) && t.name().equals(name)) return i;
            }
            return -1;
        }
    }

    public record TargetName(Inode folder, String name) {}

    /** A handler's answer meaning "not mine after all: let the kernel run the call". */
    public static final int PROCEED = Integer.MIN_VALUE;

    /** Does a call on target number {@code t}; each returns 0 or -errno, the job's result, or {@link #PROCEED}. */
    public interface Handler {
        int renameOnto(int t, Name src, boolean noReplace, int tid);

        int renameAway(int t, Name dst, boolean noReplace, int tid);

        int renameBetween(int from, int to, boolean noReplace, int tid);

        int unlink(int t, int tid);

        int linkOut(int t, Name dst, int tid);

        int linkOnto(int t, Name src, int tid);

        int linkBetween(int from, int to, int tid);
    }

    private final Scope scope;
    private final Handler handler;
    private final CompletableFuture<Integer> listener = new CompletableFuture<>();
    private final Thread supervisor;
    private volatile boolean stopping;
    /** Written by {@link #close}: the supervisor's poll ends at once (no periodic wake-up while the job runs). */
    private final int wakeFd = Seccomp.wakeFd();
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
    private final Set<TrapRules.Why> said = EnumSet.noneOf(TrapRules.Why.class);
    private boolean saidIoUring;
    private final LongAdder trapped = new LongAdder(), handled = new LongAdder();

    private NameTrap(Scope scope, Handler handler) {
        this.scope = scope;
        this.handler = handler;
        supervisor = new Thread(this::serve, "versionfs-name-trap");
        supervisor.setDaemon(true);
    }

    /** Starts the supervisor; call from a thread without the filter. */
    public static NameTrap prepare(Scope scope, Handler handler) {
        NameTrap t = new NameTrap(scope, handler);
        t.supervisor.start();
        return t;
    }

    /** Installs the filter on the calling thread (the one about to start the job). */
    public void installHere() throws Seccomp.TrapUnavailable {
        try {
            listener.complete(Seccomp.installListener());
        } catch (Seccomp.TrapUnavailable e) {
            listener.completeExceptionally(e);
            throw e;
        }
    }

    /** The filter was never installed: the supervisor ends. */
    public void abandon() {
        listener.completeExceptionally(new IllegalStateException("not installed"));
    }

    public boolean installed() {
        return listener.isDone() && !listener.isCompletedExceptionally();
    }

    /** Why the filter is not installed (null if it is, or was never tried). */
    public String failure() {
        Throwable t = installError();
        return t == null ? null : t instanceof Seccomp.TrapUnavailable u ? u.getMessage() : String.valueOf(t);
    }

    /** EBUSY from the kernel: a listener already exists in this process's filter chain (a versionfs run around this one). */
    public boolean nested() {
        return installError() instanceof Seccomp.TrapUnavailable u && u.errno == Errno.EBUSY.code;
    }

    private Throwable installError() {
        if (!listener.isCompletedExceptionally()) return null;
        try {
            listener.join();
            return null;
        } catch (java.util.concurrent.CompletionException e) {
            return e.getCause();
        }
    }

    /** Calls trapped so far, and of those the ones versionfs did itself (the rest ran natively). */
    public long trappedCalls() {
        return trapped.sum();
    }

    public long handledCalls() {
        return handled.sum();
    }

    private void serve() {
        int fd;
        try {
            fd = listener.get();
        } catch (Exception e) {
            return;
        }
        Seccomp.Buffers b = new Seccomp.Buffers();
        while (true) {
            // With the wake descriptor the timeout is only a backstop; without one, the stop is seen within 200 ms.
            int ready = Seccomp.poll(fd, wakeFd, wakeFd >= 0 ? 5_000 : 200, b);
            if (ready < 0) return; // no task carries the filter any more: nothing can be trapped again
            if (ready == 0) {
                if (stopping) return;
                continue;
            }
            Notification n = Seccomp.receive(fd, b);
            if (n == null) continue; // the caller was killed meanwhile
            trapped.increment();
            handle(fd, n, b);
        }
    }

    private void handle(int fd, Notification n, Seccomp.Buffers b) {
        NameCall c = NameCall.decode(n);
        if (c == null) {
            Seccomp.proceed(fd, n.id(), b);
            return;
        }
        if (c.op() == NameCall.Op.IO_URING) {
            ioUring(n);
            Seccomp.proceed(fd, n.id(), b);
            return;
        }
        Name src = null, dst = null;
        boolean acting = false;
        try {
            src = NameResolver.resolve(n.tid(), c.src(), b);
            if (c.dst() != null) dst = NameResolver.resolve(n.tid(), c.dst(), b);
            if (src == null || (c.dst() != null && dst == null)) {
                // Unreadable (an undumpable process) or unresolvable (a missing folder: the
                // kernel fails it the same way): the call runs natively.
                Seccomp.proceed(fd, n.id(), b);
                return;
            }
            if (!Seccomp.stillValid(fd, n.id(), b)) return; // killed, or its pid reused: the paths may be another's
            Decision d = TrapRules.decide(c.op(), c.flags(), facts(src), dst == null ? null : facts(dst));
            if (d.action() == Action.PROCEED) {
                Seccomp.proceed(fd, n.id(), b);
                return;
            }
            acting = true;
            int r = act(d, c, src, dst, n.tid());
            if (r == PROCEED) {
                Seccomp.proceed(fd, n.id(), b);
                return;
            }
            handled.increment();
            Seccomp.answer(fd, n.id(), r, b);
        } catch (Throwable t) {
            Log.warnOnce("trap:" + t.getClass().getName(), "internal error handling the job's " + c.op().name().toLowerCase()
                    + " (" + t + "); that call " + (acting ? "failed with EIO" : "ran unchecked") + ", everything else goes on. Please report it.");
            if (acting) Seccomp.answer(fd, n.id(), Errno.EIO.negated(), b);
            else Seccomp.proceed(fd, n.id(), b);
        } finally {
            if (src != null) src.close();
            if (dst != null) dst.close();
        }
    }

    private Facts facts(Name n) {
        boolean anchor = n.kind() == Name.Kind.DIR && scope.anchors().contains(n.entry().inode());
        return new Facts(targetOf(n), n.kind(), anchor, scope.versionsFolders().contains(n.parent()));
    }

    /** Which target a name is (-1: none). "job.gbw/" is not the target: the kernel answers it (ENOTDIR). */
    private int targetOf(Name n) {
        return n == null || n.dirOnly() ? -1 : scope.targetAt(n.parent(), n.base());
    }

    private int act(Decision d, NameCall c, Name src, Name dst, int tid) {
        boolean noReplace = (c.flags() & NameCall.RENAME_NOREPLACE) != 0;
        int srcT = targetOf(src), dstT = targetOf(dst);
        return switch (d.action()) {
            case REFUSE -> {
                refused(d, c, src, dst, tid);
                yield -d.errno();
            }
            case RENAME_ONTO -> handler.renameOnto(dstT, src, noReplace, tid);
            case RENAME_AWAY -> handler.renameAway(srcT, dst, noReplace, tid);
            case RENAME_TARGET_ONTO_TARGET -> handler.renameBetween(srcT, dstT, noReplace, tid);
            case UNLINK_TARGET -> handler.unlink(srcT, tid);
            case LINK_OUT -> handler.linkOut(srcT, dst, tid);
            case LINK_ONTO -> handler.linkOnto(dstT, src, tid);
            case LINK_TARGET_ONTO_TARGET -> handler.linkBetween(srcT, dstT, tid);
            case PROCEED, WARN_IO_URING -> throw new AssertionError(d);
        };
    }

    private void refused(Decision d, NameCall c, Name src, Name dst, int tid) {
        if (d.why() == TrapRules.Why.NONE || !said.add(d.why())) return;
        String call = c.op().name().toLowerCase() + "(" + src + (dst != null ? ", " + dst : "") + ")";
        Log.warn(d.why().text + ": " + call + " by pid " + tid + " was refused (" + io.versionfs.sys.Posix.strerror(d.errno())
                + "); nothing was changed. Fix: let the job work beside these folders, or run with --mode dir (README: 'Renames').");
    }

    private void ioUring(Notification n) {
        if (saidIoUring) return;
        saidIoUring = true;
        Log.warn("the job (pid " + n.tid() + ") set up io_uring: renames and deletes it makes through io_uring are not"
                + " held, only followed after the fact (README: 'Renames')");
    }

    /** Stops the supervisor and closes the listener: later trapped calls of a task still carrying the filter fail with ENOSYS. */
    @Override
    public void close() {
        // Once only: a second close must not write to or close descriptor numbers the process may have reused.
        if (!closed.compareAndSet(false, true)) return;
        stopping = true;
        Seccomp.wake(wakeFd);
        abandon();
        try {
            supervisor.join(2_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (installed()) Seccomp.close(listener.join());
        if (!supervisor.isAlive()) Seccomp.closeWakeFd(wakeFd); // not under a supervisor still in poll()
    }
}
