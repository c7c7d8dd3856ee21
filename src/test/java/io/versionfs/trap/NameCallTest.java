package io.versionfs.trap;

import io.versionfs.sys.LibC;
import io.versionfs.sys.Seccomp;
import io.versionfs.sys.Seccomp.Notification;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** Every trapped form decodes to one shape; the filter program traps exactly those numbers. */
class NameCallTest {
    private static final int X64 = Seccomp.AUDIT_ARCH_X86_64, I386 = Seccomp.AUDIT_ARCH_I386;

    private static NameCall decode(int arch, int nr, long... args) {
        long[] a = new long[6];
        System.arraycopy(args, 0, a, 0, args.length);
        return NameCall.decode(new Notification(1, 2, nr, arch, a));
    }

    @Test
    void everyFormOfRenameUnlinkAndLink() {
        assertEquals(new NameCall(NameCall.Op.RENAME, new NameCall.PathArg(LibC.AT_FDCWD, 10), new NameCall.PathArg(LibC.AT_FDCWD, 20), 0),
                decode(X64, 82, 10, 20));
        assertEquals(new NameCall(NameCall.Op.RENAME, new NameCall.PathArg(3, 10), new NameCall.PathArg(4, 20), 1),
                decode(X64, 316, 3, 10, 4, 20, 1));
        assertEquals(NameCall.Op.RMDIR, decode(X64, 263, 3, 10, LibC.AT_REMOVEDIR).op());
        assertEquals(NameCall.Op.UNLINK, decode(X64, 263, 3, 10, 0).op());
        assertEquals(NameCall.Op.LINK, decode(X64, 265, 3, 10, 4, 20, 0).op());
        assertEquals(NameCall.Op.RENAME, decode(X64, 82 | 0x40000000, 10, 20).op(), "x32 numbers fold onto x86_64");
        NameCall i386 = decode(I386, 302, 0xFFFFFF9CL, 0x8000_0010L, 5, 20);
        assertEquals(LibC.AT_FDCWD, i386.src().dirFd(), "a 32-bit AT_FDCWD is still AT_FDCWD");
        assertEquals(0x8000_0010L, i386.src().addr());
        assertNull(decode(X64, 0, 0));
    }

    /** Runs the filter program on (arch, nr) with a tiny classic-BPF interpreter (the four opcodes it uses). */
    static int run(int[][] p, int arch, int nr) {
        int acc = 0;
        for (int pc = 0; pc < p.length; pc++) {
            int[] i = p[pc];
            switch (i[0]) {
                case 0x20 -> acc = i[3] == 4 ? arch : i[3] == 0 ? nr : 0;
                case 0x54 -> acc &= i[3];
                case 0x15 -> pc += acc == i[3] ? i[1] : i[2];
                case 0x06 -> {
                    return i[3];
                }
                default -> throw new AssertionError("opcode " + i[0]);
            }
        }
        throw new AssertionError("fell off the end");
    }

    @Test
    void theFilterTrapsExactlyTheNameCalls() {
        int[][] p = Seccomp.program();
        int notify = 0x7fc00000, allow = 0x7fff0000, kill = 0x80000000;
        for (Seccomp.Call c : Seccomp.Call.values()) {
            assertEquals(notify, run(p, X64, c.x8664), c + " x86_64");
            assertEquals(notify, run(p, X64, c.x8664 | 0x40000000), c + " x32");
            assertEquals(notify, run(p, I386, c.i386), c + " i386");
        }
        for (int nr : new int[] {0, 1, 2, 257, 3, 60, 231}) assertEquals(allow, run(p, X64, nr), "x86_64 " + nr);
        for (int nr : new int[] {3, 4, 5, 6, 295}) assertEquals(allow, run(p, I386, nr), "i386 " + nr);
        assertEquals(kill, run(p, 0xC00000B7, 35), "an architecture we cannot read is not let through");
    }

    @Test
    void pathsSplitAsTheKernelSeesTheLastComponent() {
        assertEquals(new NameResolver.Split("", "job.gbw"), NameResolver.split("job.gbw"));
        assertEquals(new NameResolver.Split("a/b", "c", true), NameResolver.split("a/b/c//"));
        assertEquals(new NameResolver.Split("/", "x"), NameResolver.split("/x"));
        assertNull(NameResolver.split("/"));
        assertNull(NameResolver.split("a/.."));
        assertNull(NameResolver.split("."));
    }
}
