package io.versionfs.sys;

import io.versionfs.TestSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** FIEMAP on a real XFS with reflinks, and on tmpfs which has none. */
class ExtentsIT {
    @TempDir
    Path dir;

    @Test
    void reflinkedFilesShowTheBlocksTheyShareAndStopSharingWhatIsRewritten() throws Exception {
        try (var disk = TestSupport.reflinkDisk(dir.resolve("xfs"))) {
            Path a = disk.path().resolve("a"), b = disk.path().resolve("b");
            Files.write(a, TestSupport.randomBytes(1 << 20));
            assertEquals(0, TestSupport.run(dir, null, 30, "cp", "--reflink=always", a.toString(), b.toString()).exit());
            List<Extents.Range> sa = shared(a), sb = shared(b);
            assertEquals(1 << 20, total(sa), "all of a is shared with its reflink");
            assertEquals(1 << 20, Extents.overlap(sa, sb), "a and b share the same physical blocks");
            // Rewrite 64 KiB of b in place: XFS gives b new blocks there, a keeps its own.
            assertEquals(0, TestSupport.run(dir, null, 30, "dd", "if=/dev/urandom", "of=" + b, "bs=64k", "count=1",
                    "seek=3", "conv=notrunc,fsync", "status=none").exit());
            assertEquals((1 << 20) - (64 << 10), Extents.overlap(shared(a), shared(b)));
            Path c = disk.path().resolve("c");
            Files.write(c, TestSupport.randomBytes(1 << 20));
            assertEquals(0, total(shared(c)), "a file of its own shares nothing");
        }
    }

    @Test
    void aFilesystemWithoutSharingReportsNone() throws Exception {
        Path f = dir.resolve("plain");
        Files.write(f, TestSupport.randomBytes(1 << 16));
        assertEquals(List.of(), shared(f));
    }

    @Test
    void overlapCountsOnlyCommonBytes() {
        var a = List.of(new Extents.Range(0, 100), new Extents.Range(200, 100));
        var b = List.of(new Extents.Range(50, 200), new Extents.Range(290, 5));
        assertEquals(50 + 50 + 5, Extents.overlap(a, b));
        assertEquals(0, Extents.overlap(a, List.of()));
    }

    @Test
    void usageCountsEachSharedBlockOnce() {
        var u = new Extents.Usage();
        u.add(1000, List.of(new Extents.Range(0, 600)));          // 400 of its own
        u.add(800, List.of(new Extents.Range(100, 600)));         // 200 of its own, shares 100..600 with the first
        u.add(300, List.of());                                    // a file of its own
        assertEquals(400 + 200 + 300 + 700, u.bytes());           // shared union 0..700
        u.add(100, List.of(new Extents.Range(700, 50), new Extents.Range(2000, 50)));
        assertEquals(400 + 200 + 300 + 0 + 750 + 50, u.bytes());  // 0..750 joined, 2000..2050 apart
    }

    @Test
    void versionsReflinkedFromOneAnotherAreCountedOnce() throws Exception {
        try (var disk = TestSupport.reflinkDisk(dir.resolve("xfs2"))) {
            Path first = disk.path().resolve("v1");
            Files.write(first, TestSupport.randomBytes(4 << 20));
            var u = new Extents.Usage();
            for (int i = 2; i <= 5; i++) {
                Path next = disk.path().resolve("v" + i);
                assertEquals(0, TestSupport.run(dir, null, 30, "cp", "--reflink=always", first.toString(), next.toString()).exit());
            }
            for (int i = 1; i <= 5; i++) {
                Path p = disk.path().resolve("v" + i);
                long blocks = (Long) Files.getAttribute(p, "unix:size"); // fully written: size = blocks here
                u.add(blocks, shared(p));
            }
            assertEquals(4 << 20, u.bytes(), "five reflinked copies of 4 MiB take 4 MiB");
        }
    }

    private static List<Extents.Range> shared(Path p) {
        int fd = Posix.C.openat(LibC.AT_FDCWD, p.toString(), LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        assertTrue(fd >= 0, "open " + p);
        try {
            return Extents.shared(fd);
        } finally {
            Posix.C.close(fd);
        }
    }

    private static long total(List<Extents.Range> r) {
        return r.stream().mapToLong(Extents.Range::length).sum();
    }
}
