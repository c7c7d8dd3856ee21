package io.versionfs.sys;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProcessCpuTest {
    @Test
    void fieldsAreCountedAfterTheLastParenthesisOfTheName() {
        // A thread name with spaces and a ')' must not shift utime (14) and stime (15).
        String stat = "4242 (C2 Compiler) x) S 1 4242 4242 0 -1 4194560 2210 0 0 0 37 5 0 0 20 0 30 0 1234 0 0";
        assertArrayEquals(new long[] {37, 5}, ProcessCpu.ticks(stat));
        assertNull(ProcessCpu.ticks("garbage"));
    }

    @Test
    void threadNamesFallIntoTheirGroups() {
        assertEquals(ProcessCpu.Group.FUSE, ProcessCpu.Group.of("versionfs-fuse-", false));
        assertEquals(ProcessCpu.Group.HASHER, ProcessCpu.Group.of("versionfs-hashe", false));
        assertEquals(ProcessCpu.Group.JIT, ProcessCpu.Group.of("C1 CompilerThre", false));
        assertEquals(ProcessCpu.Group.GC, ProcessCpu.Group.of("VM Thread", false));
        assertEquals(ProcessCpu.Group.MAIN, ProcessCpu.Group.of("java", false));
        assertEquals(ProcessCpu.Group.OTHER, ProcessCpu.Group.of("java", true));
    }

    @Test
    void thisJvmHasUsedSomeCpuAndTheGroupsAddUp() {
        ProcessCpu.Usage u = ProcessCpu.now();
        assertNotNull(u);
        assertTrue(u.totalMillis() > 0, "a JVM running tests has used CPU");
        assertEquals(u.totalMillis(), u.byGroup().values().stream().mapToLong(Long::longValue).sum());
    }
}
