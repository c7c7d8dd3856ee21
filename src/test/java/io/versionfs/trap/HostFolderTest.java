package io.versionfs.trap;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** A container's folder path back to ours through the two mount tables (lines as /proc/PID/mountinfo has them). */
class HostFolderTest {
    private static final List<HostFolder.Mount> HOST = List.of(
            HostFolder.parse("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw"),
            HostFolder.parse("40 27 0:35 / /tmp rw - tmpfs tmpfs rw"),
            HostFolder.parse("41 27 254:0 /srv/data /data rw - ext4 /dev/vda rw"));

    @Test
    void podmanBindAtAnotherPath() {
        // podman run -v /var/tmp/w:/work: the container's /work/sub is the host's /var/tmp/w/sub
        List<HostFolder.Mount> ctr = List.of(
                HostFolder.parse("80 53 0:43 / / rw - overlay overlay rw"),
                HostFolder.parse("81 80 254:0 /var/tmp/w /work rw - ext4 /dev/vda rw"));
        assertEquals(List.of("/var/tmp/w/sub"), HostFolder.pathsHere("/work/sub", "254:0", ctr, HOST));
        assertEquals(List.of("/var/tmp/w"), HostFolder.pathsHere("/work", "254:0", ctr, HOST));
    }

    @Test
    void deepestMountFirstAndOnlyOfTheSameDevice() {
        List<HostFolder.Mount> ctr = List.of(
                HostFolder.parse("80 53 0:43 / / rw - overlay overlay rw"),
                HostFolder.parse("82 80 254:0 /srv/data/run1 /job rw - ext4 /dev/vda rw"));
        // on the host /srv/data is reachable twice: by its own path and at /data (deeper root first)
        assertEquals(List.of("/data/run1/x", "/srv/data/run1/x"), HostFolder.pathsHere("/job/x", "254:0", ctr, HOST));
        assertEquals(List.of(), HostFolder.pathsHere("/job/x", "0:99", ctr, HOST), "another device: nothing");
        assertEquals(List.of(), HostFolder.pathsHere("/elsewhere", "254:0", ctr, HOST), "not under a mount of the device");
    }

    @Test
    void escapedSpacesAndDeviceNumbers() {
        HostFolder.Mount m = HostFolder.parse("81 80 254:0 /var/tmp/my\\040job /my\\040job rw - ext4 /dev/vda rw");
        assertEquals("/var/tmp/my job", m.root());
        assertEquals("/my job", m.point());
        assertEquals("254:0", HostFolder.device(65024)); // st_dev of /dev/vda here
        assertEquals("0:43", HostFolder.device(43));
        assertEquals("259:1", HostFolder.device((259L << 8) | 1)); // nvme0n1p1
    }
}
