package io.versionfs.capture;

import io.versionfs.sys.Posix;

/**
 * How a version's file is removed during a run (given way to the job's writes, given up, pruned).
 * On one node: unlinked. On several: replaced by a tombstone, so its number stays taken
 * ({@link NodeNumbering#retire}).
 */
interface Removal {
    /** Removes {@code name} (a version of {@code series}); true if it is gone. */
    boolean remove(int dirFd, String name, String series);

    Removal UNLINK = (dirFd, name, series) -> Posix.C.unlinkat(dirFd, name, 0) == 0;
}
