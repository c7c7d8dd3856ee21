package io.versionfs.fs;

import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

/**
 * Identity of a backing file: (st_dev, st_ino), as libfuse's passthrough_hp keys its inode table.
 * A name is only how a file is reached; renames, hard links and unlinks change names, never which
 * {@link LiveFile} a descriptor writes to. A number names one inode only while that inode lives
 * (a freed one's goes to the next new file): the table keeps every inode it knows alive (LiveFile's pin).
 */
record FileId(long dev, long ino) {
    static FileId of(FileStat st) {
        return new FileId(Stat.dev(st), Stat.ino(st));
    }

    // Written out (the same values as the generated ones), as in trap.Inode: the generated ones are
    // linked by an invokedynamic at first use, 7 % of the CPU samples of a run of true.
    @Override
    public boolean equals(Object o) {
        return o instanceof FileId f && f.dev == dev && f.ino == ino;
    }

    @Override
    public int hashCode() {
        return 31 * Long.hashCode(dev) + Long.hashCode(ino);
    }
}
