package io.versionfs.sys;

import jnr.ffi.Memory;
import jnr.ffi.Pointer;
import jnr.ffi.Runtime;

import java.util.ArrayList;
import java.util.List;

/**
 * Where a file's data lies on disk, as far as the filesystem shows it (FS_IOC_FIEMAP): the ranges
 * it shares with other files by reflink ({@code FIEMAP_EXTENT_SHARED}, XFS and btrfs). Versions
 * copied by reflink share most of their blocks; {@link #sharedWith} lets such blocks be counted
 * once, not once per version. On a filesystem without FIEMAP or without sharing (ext4, tmpfs, NFS)
 * nothing is shared and st_blocks is the whole truth.
 */
public final class Extents {
    /** _IOWR('f', 11, struct fiemap): 32-byte header. */
    static final long FS_IOC_FIEMAP = 0xC020660BL;
    private static final int FIEMAP_FLAG_SYNC = 0x1;
    private static final int EXTENT_LAST = 0x1, EXTENT_UNKNOWN = 0x2, EXTENT_DELALLOC = 0x4, EXTENT_SHARED = 0x2000;
    private static final int HEADER = 32, EXTENT = 56, BATCH = 256;
    private static final ThreadLocal<Pointer> BUF = ThreadLocal.withInitial(
            () -> Memory.allocateDirect(Runtime.getSystemRuntime(), HEADER + BATCH * EXTENT));

    /** A physical range [start, start + length) on the device. */
    public record Range(long start, long length) {
        long end() {
            return start + length;
        }
    }

    private Extents() {}

    /** XFS, btrfs, bcachefs, OCFS2: filesystems whose files can share blocks (statfs f_type magic numbers). */
    private static final long[] SHARING = {0x58465342L, 0x9123683EL, 0xca451a4eL, 0x7461636fL};

    /**
     * Whether the filesystem of the open {@code fd} can share blocks between files: only there is
     * FIEMAP worth a call per file. By descriptor (fstatfs), never by path: a path inside a
     * directory-mode mount would be looked up through our own FUSE mount, from its own thread.
     */
    public static boolean mayShare(int fd) {
        Pointer b = BUF.get();
        if (Posix.C.fstatfs(fd, b) != 0) return false;
        long type = b.getLong(0) & 0xffffffffL;
        for (long t : SHARING) if (t == type) return true;
        return false;
    }

    /**
     * The physical ranges of {@code fd} that the filesystem marks as shared with another file,
     * sorted by start; empty if none or if the filesystem has no FIEMAP (or answers with unknown
     * or delayed extents: nothing we can count on).
     */
    public static List<Range> shared(int fd) {
        List<Range> out = new ArrayList<>();
        Pointer b = BUF.get();
        long from = 0;
        while (true) {
            b.setMemory(0, HEADER, (byte) 0);
            b.putLong(0, from);
            b.putLong(8, -1L);                  // to the end of the file
            b.putInt(16, FIEMAP_FLAG_SYNC);
            b.putInt(24, BATCH);
            if (Posix.C.ioctl(fd, FS_IOC_FIEMAP, b) != 0) return List.of();
            int n = b.getInt(20);
            if (n == 0) break;
            boolean last = false;
            for (int i = 0; i < n; i++) {
                long at = HEADER + (long) i * EXTENT;
                long logical = b.getLong(at), physical = b.getLong(at + 8), length = b.getLong(at + 16);
                int flags = b.getInt(at + 40);
                if ((flags & (EXTENT_UNKNOWN | EXTENT_DELALLOC)) == 0 && (flags & EXTENT_SHARED) != 0) {
                    out.add(new Range(physical, length));
                }
                from = logical + length;
                last |= (flags & EXTENT_LAST) != 0;
            }
            if (last || n < BATCH) break;
        }
        out.sort(java.util.Comparator.comparingLong(Range::start));
        return out;
    }

    /** Bytes in both sorted range lists: the blocks two files share with each other. */
    public static long overlap(List<Range> a, List<Range> b) {
        long sum = 0;
        int i = 0, j = 0;
        while (i < a.size() && j < b.size()) {
            Range x = a.get(i), y = b.get(j);
            long lo = Math.max(x.start(), y.start()), hi = Math.min(x.end(), y.end());
            if (hi > lo) sum += hi - lo;
            if (x.end() <= y.end()) i++;
            else j++;
        }
        return sum;
    }

    /** Bytes in {@code ranges}. */
    public static long total(List<Range> ranges) {
        long sum = 0;
        for (Range r : ranges) sum += r.length();
        return sum;
    }

    /**
     * The disk a set of files takes, shared blocks counted once: each file adds its st_blocks less
     * its shared ranges, and the shared ranges of all go into one union. Memory grows with the
     * number of distinct shared ranges, not with the number of files.
     */
    public static final class Usage {
        private final java.util.TreeMap<Long, Long> union = new java.util.TreeMap<>(); // start -> end, disjoint
        private long exclusive, sharedUnion;

        /** Adds one file: {@code diskBytes} is its st_blocks x 512, {@code shared} its shared ranges. */
        public void add(long diskBytes, List<Range> shared) {
            exclusive += Math.max(0, diskBytes - total(shared));
            for (Range r : shared) addRange(r.start(), r.end());
        }

        private void addRange(long start, long end) {
            var before = union.floorEntry(start);
            if (before != null && before.getValue() >= start) {
                start = before.getKey();
                end = Math.max(end, before.getValue());
                sharedUnion -= before.getValue() - before.getKey();
                union.remove(before.getKey());
            }
            for (var next = union.ceilingEntry(start); next != null && next.getKey() <= end; next = union.ceilingEntry(start)) {
                end = Math.max(end, next.getValue());
                sharedUnion -= next.getValue() - next.getKey();
                union.remove(next.getKey());
            }
            union.put(start, end);
            sharedUnion += end - start;
        }

        /** Bytes on disk, each shared block once. */
        public long bytes() {
            return exclusive + sharedUnion;
        }
    }
}
