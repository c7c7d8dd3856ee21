package io.versionfs.fs;

import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

/**
 * Identity of a backing file: (st_dev, st_ino), as libfuse's passthrough_hp keys its inode table.
 * A name is only how a file is reached; renames, hard links and unlinks change names, never which
 * {@link LiveFile} a descriptor writes to.
 */
record FileId(long dev, long ino) {
    static FileId of(FileStat st) {
        return new FileId(Stat.dev(st), Stat.ino(st));
    }
}
