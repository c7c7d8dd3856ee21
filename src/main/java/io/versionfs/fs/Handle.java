package io.versionfs.fs;

/**
 * An open file description as FUSE sees it (one per open(); dup and fork share it). A handle on a
 * versioned file points at its {@link LiveFile}; any other handle owns a plain descriptor.
 */
final class Handle {
    final LiveFile live;   // null for pass-through files
    final int fd;          // pass-through descriptor, -1 for versioned files
    /** modCount of the file right after this handle's last change; 0 = it never changed the file. */
    volatile long wroteMod;

    Handle(LiveFile live, int fd) {
        this.live = live;
        this.fd = fd;
    }
}
