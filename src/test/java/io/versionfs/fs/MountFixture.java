package io.versionfs.fs;

import io.versionfs.capture.TargetMatcher;
import io.versionfs.capture.Targets;
import io.versionfs.capture.VersionStore;
import io.versionfs.sys.Posix;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;

/** A real capture filesystem mounted in this JVM for one test; always unmounted by close(). */
public final class MountFixture implements AutoCloseable {
    public final Path dir;
    public final Path versions;
    public final Path mnt;
    public final VersionStore store;
    public final CaptureFs fs;
    private final FuseMount mount;
    private final int rootFd;

    public MountFixture(Path dir, String... targets) throws Exception {
        this(dir, dir.resolve("versions"), targets);
    }

    public MountFixture(Path dir, Path versions, String... targets) throws Exception {
        this.dir = dir;
        this.versions = versions;
        this.mnt = dir.resolve("mnt");
        Files.createDirectories(mnt);
        store = VersionStore.open(versions, Instant.now());
        rootFd = Posix.openDir(store.liveDir().toString());
        fs = new CaptureFs(rootFd, new Targets().add(new TargetMatcher(List.of(targets)), store, null));
        mount = FuseMount.mount(fs, mnt);
    }

    public Path file(String name) {
        return mnt.resolve(name);
    }

    /** Waits for hashes and manifest lines of everything captured so far. */
    /**
     * Every version so far published, hashed and listed: the live files are separated from their
     * versions now (what the background does once a file is quiet), then the hasher catches up.
     */
    public void settle() {
        fs.detachAll(5_000);
        store.drain();
    }

    /** Unmounts as `run` does at the end: pending closes, unclosed changes, then unmount. */
    public void finish() {
        mount.finish(5_000);
        store.publishRemaining();
        store.drain();
    }

    @Override
    public void close() {
        try {
            mount.close();
        } finally {
            if (MountTable.fuseAt(mnt) != null) FuseMount.lazyUnmount(mnt);
            Posix.C.close(rootFd);
            store.close();
        }
    }
}
