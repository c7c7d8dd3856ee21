package io.versionfs.sys;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Lines as /proc/TID/syscall shows them (taken from bash and rm in a directory-mode run). */
class OpenCallTest {
    @Test
    void openatWithCreateAndTruncateMayCreate() {
        // bash: echo b > job.gbw is openat(AT_FDCWD, "job.gbw", O_WRONLY|O_CREAT|O_TRUNC, 0666)
        assertTrue(OpenCall.mayCreate("257 0xffffff9c 0x55877b5226f0 0x241 0x1b6 0x0 0x20 0x7ffd25aa7170 0x7fdb478c1011"));
    }

    @Test
    void openatWithExclusiveCreateOrWithoutCreateDoesNot() {
        assertFalse(OpenCall.mayCreate("257 0xffffff9c 0x55877b5226f0 0xc1 0x1b6 0x0 0x20 0x7ffd25aa7170 0x7fdb478c1011"));
        assertFalse(OpenCall.mayCreate("257 0xffffff9c 0x55877b5226f0 0x0 0x0 0x0 0x20 0x7ffd25aa7170 0x7fdb478c1011"));
    }

    @Test
    void openAndCreatByTheirOwnArguments() {
        assertTrue(OpenCall.mayCreate("2 0x55877b5226f0 0x42 0x1a4 0x0 0x0 0x0 0x7ffd25aa7170 0x7fdb478c1011"));
        assertFalse(OpenCall.mayCreate("2 0x55877b5226f0 0x2 0x1a4 0x0 0x0 0x0 0x7ffd25aa7170 0x7fdb478c1011"));
        assertTrue(OpenCall.mayCreate("85 0x55877b5226f0 0x1a4 0x0 0x0 0x0 0x0 0x7ffd25aa7170 0x7fdb478c1011"));
    }

    @Test
    void otherCallsAndStatesDoNot() {
        // rm -f: newfstatat(AT_FDCWD, "job.gbw", ..., AT_SYMLINK_NOFOLLOW); its flags word has no O_CREAT meaning
        assertFalse(OpenCall.mayCreate("262 0xffffff9c 0x556e6f72bf10 0x556e6f72be80 0x100 0x0 0x0 0x7ffefafb2ae8 0x7f781be4d86a"));
        assertFalse(OpenCall.mayCreate("-1 0x7ffefafb2ae8 0x7f781be4d86a"));
        assertFalse(OpenCall.mayCreate("running"));
        assertFalse(OpenCall.mayCreate(""));
    }
}
