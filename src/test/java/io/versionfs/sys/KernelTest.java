package io.versionfs.sys;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KernelTest {
    @Test
    void comparesMajorThenMinor() {
        assertTrue(Kernel.atLeast("6.18.0-1-amd64", 6, 9));
        assertTrue(Kernel.atLeast("6.9.0", 6, 9));
        assertTrue(Kernel.atLeast("7.0.1", 6, 9));
        assertFalse(Kernel.atLeast("6.1.0-28-amd64", 6, 9));
        assertFalse(Kernel.atLeast("5.14.0-427.el9.x86_64", 6, 9));
        assertFalse(Kernel.atLeast("4.18.0-553.el8_10.x86_64", 6, 9));
    }

    @Test
    void anUnreadableVersionIsNotNewEnough() {
        assertFalse(Kernel.atLeast("", 6, 9));
        assertFalse(Kernel.atLeast("unknown", 1, 0));
    }
}
