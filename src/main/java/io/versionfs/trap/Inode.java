package io.versionfs.trap;

/** Identity of a file or folder: (st_dev, st_ino). Names move; this does not. */
public record Inode(long dev, long ino) {}
