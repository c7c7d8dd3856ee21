package io.versionfs.sys;

import jnr.ffi.LibraryLoader;
import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;
import jnr.ffi.annotations.SaveError;

import java.nio.charset.StandardCharsets;

/**
 * seccomp user notification (Linux 5.0+, CONTINUE 5.5+): a filter that hands chosen system calls
 * of a process tree to a supervisor, which answers each one (runs it natively, or does the work
 * itself and returns a result) while the caller waits. Layouts, numbers and costs are in
 * {@code ../shared/notes/syscall-trap.md}; nothing here is specific to versionfs.
 *
 * <p>The filter is installed on the calling thread only (no TSYNC): that thread and what it
 * starts afterwards carry it; the JVM's other threads do not.
 */
public final class Seccomp {
    /** The calls the filter hands over, by architecture: what can move, replace or remove a name. */
    public enum Call {
        RENAME(82, 38), RENAMEAT(264, 302), RENAMEAT2(316, 353), UNLINK(87, 10), UNLINKAT(263, 301),
        LINK(86, 9), LINKAT(265, 303), RMDIR(84, 40),
        /** io_uring's RENAMEAT/UNLINKAT/LINKAT bypass seccomp: trapped only to say so once. */
        IO_URING_SETUP(425, 425);

        public final int x8664, i386;

        Call(int x8664, int i386) {
            this.x8664 = x8664;
            this.i386 = i386;
        }

        public static Call of(int arch, int nr) {
            if (arch != AUDIT_ARCH_X86_64 && arch != AUDIT_ARCH_I386) return null;
            int n = arch == AUDIT_ARCH_X86_64 ? nr & X32_BIT_CLEAR : nr;
            for (Call c : values()) if (n == (arch == AUDIT_ARCH_I386 ? c.i386 : c.x8664)) return c;
            return null;
        }
    }

    public static final int AUDIT_ARCH_X86_64 = 0xC000003E, AUDIT_ARCH_I386 = 0x40000003;
    static final int RET_ALLOW = 0x7fff0000, RET_USER_NOTIF = 0x7fc00000, RET_KILL_PROCESS = 0x80000000;
    static final int LD_W_ABS = 0x20, JEQ_K = 0x15, AND_K = 0x54, RET_K = 0x06;
    private static final int X32_BIT_CLEAR = 0xBFFFFFFF;

    private static final int SYS_SECCOMP = 317, SECCOMP_SET_MODE_FILTER = 1;
    private static final int FLAG_NEW_LISTENER = 8, FLAG_WAIT_KILLABLE_RECV = 32;
    private static final int PR_SET_NO_NEW_PRIVS = 38;
    private static final long IOCTL_RECV = 0xC0502100L, IOCTL_SEND = 0xC0182101L, IOCTL_ID_VALID = 0x40082102L,
            IOCTL_SET_FLAGS = 0x40082104L;
    private static final int FD_SYNC_WAKE_UP = 1;
    public static final int RESP_FLAG_CONTINUE = 1;
    private static final short POLLIN = 1;

    public interface Lib {
        @SaveError long syscall(long nr, long op, long flags, Pointer args);
        @SaveError int ioctl(int fd, long request, Pointer arg);
        @SaveError int ioctl(int fd, long request, long arg);
        @SaveError int prctl(int option, long a2, long a3, long a4, long a5);
        @SaveError long process_vm_readv(int pid, Pointer local, long liovcnt, Pointer remote, long riovcnt, long flags);
        @SaveError int poll(Pointer fds, long nfds, int timeoutMillis);
        @SaveError int eventfd(int initval, int flags);
        @SaveError long write(int fd, Pointer buf, long count);
        @SaveError int close(int fd);
    }

    private static final int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;

    private static final Runtime RT = Runtime.getSystemRuntime();
    private static volatile Lib lib;

    private static Lib lib() {
        Lib l = lib;
        if (l == null) lib = l = LibraryLoader.create(Lib.class).load("c");
        return l;
    }

    private Seccomp() {}

    /** True on the architectures the filter knows (x86_64 with its i386 compat calls). */
    public static boolean supportedArch() {
        return "amd64".equals(System.getProperty("os.arch")) || "x86_64".equals(System.getProperty("os.arch"));
    }

    // ---- the filter -------------------------------------------------------------------------

    /**
     * The BPF program, as (code, jt, jf, k) rows: per architecture, each trapped number goes to
     * USER_NOTIF, everything else is allowed; an unknown architecture is killed (a call we cannot
     * read must not slip past). x32 numbers are folded onto the 64-bit ones.
     */
    public static int[][] program() {
        Call[] calls = Call.values();
        int n = calls.length;
        // Layout: [0] ld arch, [1] jeq x86_64, [2] ld nr, [3] and, [4..4+n) jeq, [4+n] ret allow,
        // [5+n] jeq i386, [6+n] ld nr, [7+n..7+2n) jeq, [7+2n] ret allow, [8+2n] kill, [9+2n] notify.
        int i386At = 5 + n, kill = 8 + 2 * n, notify = 9 + 2 * n;
        int[][] p = new int[notify + 1][];
        p[0] = new int[] {LD_W_ABS, 0, 0, 4};
        p[1] = new int[] {JEQ_K, 0, i386At - 2, AUDIT_ARCH_X86_64};
        p[2] = new int[] {LD_W_ABS, 0, 0, 0};
        p[3] = new int[] {AND_K, 0, 0, X32_BIT_CLEAR};
        for (int i = 0; i < n; i++) p[4 + i] = new int[] {JEQ_K, notify - (4 + i) - 1, 0, calls[i].x8664};
        p[4 + n] = new int[] {RET_K, 0, 0, RET_ALLOW};
        p[i386At] = new int[] {JEQ_K, 0, kill - i386At - 1, AUDIT_ARCH_I386};
        p[6 + n] = new int[] {LD_W_ABS, 0, 0, 0};
        for (int i = 0; i < n; i++) p[7 + n + i] = new int[] {JEQ_K, notify - (7 + n + i) - 1, 0, calls[i].i386};
        p[7 + 2 * n] = new int[] {RET_K, 0, 0, RET_ALLOW};
        p[kill] = new int[] {RET_K, 0, 0, RET_KILL_PROCESS};
        p[notify] = new int[] {RET_K, 0, 0, RET_USER_NOTIF};
        return p;
    }

    /**
     * Installs the filter on the calling thread and returns the listener descriptor. As root the
     * filter goes on without no_new_privs (setuid programs in the job keep working); otherwise
     * no_new_privs is set first, as the kernel requires. Throws with the errno's text on failure
     * (EBUSY: a listener already exists in this thread's chain, e.g. a nested versionfs run).
     */
    public static int installListener() throws TrapUnavailable {
        int[][] p = program();
        Pointer filter = Memory.allocateDirect(RT, p.length * 8);
        for (int i = 0; i < p.length; i++) {
            filter.putShort(i * 8L, (short) p[i][0]);
            filter.putByte(i * 8L + 2, (byte) p[i][1]);
            filter.putByte(i * 8L + 3, (byte) p[i][2]);
            filter.putInt(i * 8L + 4, p[i][3]);
        }
        Pointer prog = Memory.allocateDirect(RT, 16);
        prog.putShort(0, (short) p.length);
        prog.putAddress(8, filter.address());
        int fd = install(prog, FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV);
        if (fd < 0 && Posix.errno() == Errno.EINVAL.code) fd = install(prog, FLAG_NEW_LISTENER); // kernel < 5.19
        if (fd < 0 && Posix.errno() == Errno.EACCES.code) {
            if (lib().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw new TrapUnavailable("prctl(NO_NEW_PRIVS)", Posix.errno());
            fd = install(prog, FLAG_NEW_LISTENER | FLAG_WAIT_KILLABLE_RECV);
            if (fd < 0 && Posix.errno() == Errno.EINVAL.code) fd = install(prog, FLAG_NEW_LISTENER);
        }
        if (fd < 0) throw new TrapUnavailable("seccomp(SET_MODE_FILTER, NEW_LISTENER)", Posix.errno());
        lib().ioctl(fd, IOCTL_SET_FLAGS, FD_SYNC_WAKE_UP); // 6.6+: wake-ups on the same CPU; optional
        filter.hashCode(); // keep the filter memory reachable until the kernel has copied it
        return fd;
    }

    private static int install(Pointer prog, int flags) {
        return (int) lib().syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, flags, prog);
    }

    /** The filter could not be installed: why, as the call and its errno. */
    public static final class TrapUnavailable extends Exception {
        public final int errno;

        TrapUnavailable(String call, int errno) {
            super(call + ": " + Posix.strerror(errno));
            this.errno = errno;
        }
    }

    // ---- notifications ----------------------------------------------------------------------

    /** One trapped call as the kernel reports it. {@code tid} is the calling thread, in our pid namespace. */
    public record Notification(long id, int tid, int nr, int arch, long[] args) {
        public Call call() {
            return Call.of(arch, nr);
        }

        /** Argument {@code i} as a C int (i386 passes 32 bits; AT_FDCWD is negative). */
        public int intArg(int i) {
            return (int) args[i];
        }
    }

    /** Per-supervisor buffers: one thread uses them. */
    public static final class Buffers {
        final Pointer notif = Memory.allocateDirect(RT, 80);
        final Pointer resp = Memory.allocateDirect(RT, 24);
        final Pointer id = Memory.allocateDirect(RT, 8);
        final Pointer pollfd = Memory.allocateDirect(RT, 16);
        final Pointer iovLocal = Memory.allocateDirect(RT, 16);
        final Pointer iovRemote = Memory.allocateDirect(RT, 32);
        final Pointer path = Memory.allocateDirect(RT, PATH_MAX);
    }

    static final int PATH_MAX = 4096;

    /**
     * Waits up to {@code millis} for a notification, or until {@link #wake} is called on {@code wakeFd}
     * (an {@link #wakeFd}; -1: none): 1 ready, 0 none (timeout or woken), -1 the listener is gone (no
     * process holds the filter). The wake descriptor lets the supervisor sleep for as long as the job
     * runs instead of waking up every few hundred milliseconds to look for the end.
     */
    public static int poll(int fd, int wakeFd, int millis, Buffers b) {
        b.pollfd.putInt(0, fd);
        b.pollfd.putShort(4, POLLIN);
        b.pollfd.putShort(6, (short) 0);
        b.pollfd.putInt(8, wakeFd);
        b.pollfd.putShort(12, POLLIN);
        b.pollfd.putShort(14, (short) 0);
        int r = lib().poll(b.pollfd, wakeFd >= 0 ? 2 : 1, millis);
        if (r <= 0) return 0;
        short rev = b.pollfd.getShort(6);
        if (rev == 0) return 0; // only the wake descriptor
        return (rev & POLLIN) != 0 ? 1 : -1;
    }

    /** A descriptor for {@link #poll}'s early wake-up (an eventfd), or -1 if none could be made. */
    public static int wakeFd() {
        return lib().eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }

    /** Makes {@code wakeFd} readable: a {@link #poll} on it returns now, and every later one at once. */
    public static void wake(int wakeFd) {
        if (wakeFd < 0) return;
        Pointer one = Memory.allocateDirect(RT, 8);
        one.putLong(0, 1);
        lib().write(wakeFd, one, 8);
    }

    public static void closeWakeFd(int wakeFd) {
        if (wakeFd >= 0) lib().close(wakeFd);
    }

    /** Receives one notification; null if it vanished (the caller was killed) or on EINTR. */
    public static Notification receive(int fd, Buffers b) {
        b.notif.setMemory(0, 80, (byte) 0);
        if (lib().ioctl(fd, IOCTL_RECV, b.notif) != 0) return null;
        long[] args = new long[6];
        for (int i = 0; i < 6; i++) args[i] = b.notif.getLong(32 + 8L * i);
        return new Notification(b.notif.getLong(0), b.notif.getInt(8), b.notif.getInt(16), b.notif.getInt(20), args);
    }

    /** True while the trapped call is still waiting (its thread not killed, its pid not reused). */
    public static boolean stillValid(int fd, long id, Buffers b) {
        b.id.putLong(0, id);
        return lib().ioctl(fd, IOCTL_ID_VALID, b.id) == 0;
    }

    /** Lets the kernel run the call itself. */
    public static void proceed(int fd, long id, Buffers b) {
        respond(fd, id, 0, 0, RESP_FLAG_CONTINUE, b);
    }

    /** Answers the call with a result: 0, or -errno. The call itself never runs. */
    public static void answer(int fd, long id, int result, Buffers b) {
        respond(fd, id, 0, result < 0 ? result : 0, 0, b);
    }

    private static void respond(int fd, long id, long val, int error, int flags, Buffers b) {
        b.resp.putLong(0, id);
        b.resp.putLong(8, val);
        b.resp.putInt(16, error);
        b.resp.putInt(20, flags);
        lib().ioctl(fd, IOCTL_SEND, b.resp); // ENOENT: the caller died meanwhile; nothing to do
    }

    /**
     * Reads a NUL-terminated string at {@code addr} in thread {@code tid}; null if it cannot be
     * read (EPERM for a process that made itself undumpable, EFAULT, the process gone) or has no
     * NUL within PATH_MAX. The remote range is split at the page boundary so a path near the end
     * of a mapping is still read.
     */
    public static String readString(int tid, long addr, Buffers b) {
        if (addr == 0) return null;
        long firstPage = 4096 - (addr & 4095);
        long first = Math.min(firstPage, PATH_MAX);
        b.iovLocal.putAddress(0, b.path.address());
        b.iovLocal.putLong(8, PATH_MAX);
        b.iovRemote.putAddress(0, addr);
        b.iovRemote.putLong(8, first);
        b.iovRemote.putAddress(16, addr + first);
        b.iovRemote.putLong(24, PATH_MAX - first);
        long got = lib().process_vm_readv(tid, b.iovLocal, 1, b.iovRemote, first < PATH_MAX ? 2 : 1, 0);
        if (got <= 0) return null;
        byte[] bytes = new byte[(int) got];
        b.path.get(0, bytes, 0, bytes.length);
        for (int i = 0; i < bytes.length; i++) {
            if (bytes[i] == 0) return strictUtf8(bytes, i);
        }
        return null;
    }

    /** Null for bytes that are not UTF-8: such a path is passed through, never guessed at. */
    private static String strictUtf8(byte[] bytes, int len) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                    .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(bytes, 0, len)).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            return null;
        }
    }

    public static int close(int fd) {
        return Posix.C.close(fd);
    }
}
