package io.versionfs.trap;

/** Identity of a file or folder: (st_dev, st_ino). Names move; this does not. */
public record Inode(long dev, long ino) {
    // Written out (the same values as the generated ones): those are linked by an invokedynamic at
    // first use, and this record is the first one a run hashes, so it paid for the whole linking
    // machinery: 3 % of the CPU samples of a run of true (bench/README.md, "Fixed cost of run").
    @Override
    public boolean equals(Object o) {
        return o instanceof Inode i && i.dev == dev && i.ino == ino;
    }

    @Override
    public int hashCode() {
        return 31 * Long.hashCode(dev) + Long.hashCode(ino);
    }
}
