package io.versionfs.fs;

import io.versionfs.TestSupport;
import io.versionfs.capture.Series;
import io.versionfs.capture.Version;
import io.versionfs.capture.VersionStore;
import io.versionfs.sys.Errno;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The copy-on-write state machine (the diagram in {@link Cow}) without a mount: first the state
 * alone, then the transitions on real files in a folder (real hard links, copies and renames),
 * with {@link Folder} standing in for LiveFile. The full-disk cases use a small tmpfs (root only).
 */
class CowTest {
    @TempDir
    Path tmp;

    private static final long NEVER = TimeUnit.HOURS.toNanos(1); // no background step during the test

    private static Version version(long n) {
        return new Version(n, "job.gbw", "job." + n + ".gbw", 1, Instant.now(), 1, "", "close", Version.Status.SAVED, null);
    }

    private static CopyJob job() {
        return new CopyJob(-1, -1, "tmp");
    }

    // ---- the state alone (state changes touch no file: no host) --------------------------------

    @Test
    void aFreshFileIsIndependent() {
        Cow c = new Cow(null);
        assertEquals(Cow.State.INDEPENDENT, c.state());
        assertFalse(c.mustCopyBeforeChange());
        assertTrue(c.versions().isEmpty());
    }

    @Test
    void aLinkedVersionWithoutACopyIsShared() {
        Cow c = new Cow(null);
        Version v = version(1);
        c.linked(null, v, null);
        assertEquals(Cow.State.SHARED, c.state());
        assertTrue(c.mustCopyBeforeChange());
        assertSame(v, c.versions().get(0).version());
    }

    @Test
    void aLinkedVersionWithAnEagerCopyIsCopyingAndTakingTheJobLeavesItShared() {
        Cow c = new Cow(null);
        CopyJob j = job();
        c.linked(null, version(1), j);
        assertEquals(Cow.State.COPYING, c.state());
        assertSame(j, c.job());
        assertSame(j, c.takeJob());
        assertEquals(Cow.State.SHARED, c.state(), "the caller owns the copy now; until it is swapped in, still shared");
        assertNull(c.job());
    }

    @Test
    void aSecondVersionOfTheSameInodeKeepsOneCopy() {
        Cow c = new Cow(null);
        CopyJob first = job();
        c.linked(null, version(1), first);
        c.linked(null, version(2), job()); // discarded: one copy of one inode is enough
        assertSame(first, c.job());
        assertEquals(2, c.versions().size());
    }

    @Test
    void aQuietSharedFileStartsItsCopyLater() {
        Cow c = new Cow(null);
        c.linked(null, version(1), null);
        CopyJob j = job();
        c.copying(j);
        assertEquals(Cow.State.COPYING, c.state());
        assertSame(j, c.job());
    }

    @Test
    void independentForgetsEveryVersionAndTheCopy() {
        Cow c = new Cow(null);
        c.linked(null, version(1), job());
        c.independent();
        assertEquals(Cow.State.INDEPENDENT, c.state());
        assertEquals(List.of(), c.versions());
        assertNull(c.job());
    }

    @Test
    void aVersionLeftByAKilledRunMayNotBeGivenUp() {
        Cow c = new Cow(null);
        c.linked(null, null, null);
        assertFalse(c.versions().get(0).mayGiveUp());
        c.linked(null, version(2), null);
        assertTrue(c.versions().get(1).mayGiveUp());
    }

    // ---- transitions on real files -------------------------------------------------------------

    @Test
    void aChangeUnsharesTheLiveFileAndTheVersionKeepsItsContent() throws Exception {
        try (Folder f = new Folder(tmp, NEVER)) {
            f.write(bytes("one", 100_000));
            Files.setPosixFilePermissions(f.live, PosixFilePermissions.fromString("rw-r-----"));
            f.locked(() -> {
                f.cow.expectRewrites(); // no eager copy: the change copies inline
                return null;
            });
            Version v = f.capture();
            assertEquals(Cow.State.SHARED, f.state());
            assertEquals(2, nlink(f.live), "the version is a hard link of the live file");
            assertEquals(0, (int) f.locked(f.cow::unshareForChange));
            assertEquals(Cow.State.INDEPENDENT, f.state());
            assertEquals(1, nlink(f.live), "a fresh inode took the live name");
            assertEquals("rw-r-----", PosixFilePermissions.toString(Files.getPosixFilePermissions(f.live)), "the mode stays");
            Files.write(f.live, bytes("two", 100_000));
            assertArrayEquals(bytes("one", 100_000), Files.readAllBytes(f.published(v)), "published, with the content it was saved with");
            assertEquals(List.of(), f.temps());
        }
    }

    @Test
    void aTruncateToZeroWhileCopyingDiscardsTheCopyAndTakesAnEmptyFile() throws Exception {
        try (Folder f = new Folder(tmp, NEVER)) {
            f.write(bytes("one", 300_000));
            Version v = f.locked(() -> {
                Version x = f.captureLocked();
                assertEquals(Cow.State.COPYING, f.cow.state(), "an eager copy started at the version");
                assertEquals(0, f.cow.truncateToZero());
                return x;
            });
            assertEquals(Cow.State.INDEPENDENT, f.state());
            assertEquals(0, Files.size(f.live));
            assertArrayEquals(bytes("one", 300_000), Files.readAllBytes(f.published(v)));
            assertEquals(List.of(), f.temps(), "the discarded copy's temp file is gone");
            f.write(bytes("two", 1000));
            f.capture();
            assertEquals(Cow.State.SHARED, f.state(), "a program seen rewriting from scratch gets no eager copy");
        }
    }

    @Test
    void theEagerCopyIsSwappedInInTheBackgroundOnceDone() throws Exception {
        try (Folder f = new Folder(tmp, TimeUnit.MILLISECONDS.toNanos(50))) {
            f.write(bytes("one", 500_000));
            long before = inode(f.live);
            Version v = f.capture();
            assertEquals(Cow.State.INDEPENDENT, f.awaitState(Cow.State.INDEPENDENT), "separated without any change by the program");
            assertNotEquals(before, inode(f.live));
            assertArrayEquals(bytes("one", 500_000), Files.readAllBytes(f.live), "the live file is the copy");
            assertArrayEquals(bytes("one", 500_000), Files.readAllBytes(f.published(v)));
            assertEquals(List.of(), f.temps());
        }
    }

    @Test
    void aQuietSharedFileIsCopiedAndSwappedInInTheBackground() throws Exception {
        try (Folder f = new Folder(tmp, TimeUnit.MILLISECONDS.toNanos(100))) {
            f.write(bytes("one", 200_000));
            f.locked(() -> {
                f.cow.expectRewrites();
                return null;
            });
            Version v = f.capture();
            assertEquals(Cow.State.SHARED, f.state(), "no eager copy for a file rewritten from scratch");
            assertEquals(Cow.State.INDEPENDENT, f.awaitState(Cow.State.INDEPENDENT), "copied once quiet, then swapped in");
            assertEquals(1, nlink(f.live));
            assertArrayEquals(bytes("one", 200_000), Files.readAllBytes(f.published(v)));
        }
    }

    @Test
    void aStoppingRunIsLeftAloneByTheBackground() throws Exception {
        try (Folder f = new Folder(tmp, TimeUnit.MILLISECONDS.toNanos(20))) {
            f.write(bytes("one", 200_000));
            f.locked(() -> {
                f.cow.expectRewrites();
                return null;
            });
            f.stopping = true;
            f.capture();
            Thread.sleep(500);
            assertEquals(Cow.State.SHARED, f.state(), "no background copy once the run stops");
            assertEquals(2, nlink(f.live));
            assertEquals(List.of(), f.temps());
        }
    }

    @Test
    void forgettingASharedFilePublishesItsVersions() throws Exception {
        try (Folder f = new Folder(tmp, NEVER)) {
            f.write(bytes("one", 100_000));
            Version v = f.capture();
            f.locked(() -> {
                f.cow.forgotten(); // no name leads to the inode any more
                return null;
            });
            assertEquals(Cow.State.INDEPENDENT, f.state());
            assertTrue(Files.exists(f.published(v)));
            assertEquals(List.of(), f.temps(), "the eager copy was discarded");
        }
    }

    // ---- no room for the copy (a small tmpfs) --------------------------------------------------

    @Test
    void noRoomForTheCopyTheVersionsOfThisRunGiveWayToTheChange() throws Exception {
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(tmp.resolve("small"), "1024k");
             Folder f = new Folder(disk.path(), NEVER)) {
            f.write(bytes("one", 600_000));
            f.locked(() -> {
                f.cow.expectRewrites();
                return null;
            });
            Version v = f.capture();
            assertEquals(0, (int) f.locked(f.cow::unshareForChange), "the change goes ahead");
            assertEquals(Cow.State.INDEPENDENT, f.state());
            assertEquals(1, nlink(f.live), "the version's link is gone");
            assertFalse(Files.exists(f.published(v)));
            assertEquals(1, f.store.lostCount(), "recorded lost");
            assertEquals(List.of(), f.temps(), "the partial copy is removed");
        }
    }

    @Test
    void noRoomForTheCopyAnOlderVersionGivesWayFirst() throws Exception {
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(tmp.resolve("small"), "1400k");
             Folder f = new Folder(disk.path(), NEVER)) {
            f.write(bytes("old", 500_000));
            Version older = f.locked(() -> f.store.copyFd(f.fd, "job.gbw", "close", 1, "test", () -> false).version());
            f.store.drain(); // hashed: its blocks come back as soon as it is removed
            f.write(bytes("one", 500_000));
            f.locked(() -> {
                f.cow.expectRewrites();
                return null;
            });
            Version v = f.capture();
            assertEquals(0, (int) f.locked(f.cow::unshareForChange));
            assertEquals(Cow.State.INDEPENDENT, f.state());
            assertFalse(Files.exists(f.published(older)), "the older version gave way");
            assertArrayEquals(bytes("one", 500_000), Files.readAllBytes(f.published(v)), "the newer one is kept, apart");
            assertEquals(1, f.store.lostCount());
        }
    }

    @Test
    void noRoomForTheCopyAVersionOfAKilledRunDoesNotGiveWayAndTheChangeFails() throws Exception {
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(tmp.resolve("small"), "1024k");
             Folder f = new Folder(disk.path(), NEVER)) {
            f.write(bytes("one", 600_000));
            Path leftover = f.leftover();
            assertEquals(Errno.ENOSPC.negated(), (int) f.locked(f.cow::unshareForChange), "as a plain full disk");
            assertEquals(Cow.State.SHARED, f.state());
            assertEquals(2, nlink(leftover), "the killed run's version is untouched");
            assertEquals(List.of(), f.temps());
        }
    }

    @Test
    void atTheEndNoRoomOurVersionGivesWayToTheFinalFile() throws Exception {
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(tmp.resolve("small"), "1024k");
             Folder f = new Folder(disk.path(), NEVER)) {
            f.write(bytes("one", 600_000));
            f.locked(() -> {
                f.cow.expectRewrites();
                return null;
            });
            Version v = f.capture();
            f.locked(() -> {
                f.cow.unshareAtEnd(() -> false);
                return null;
            });
            assertEquals(Cow.State.INDEPENDENT, f.state(), "the final file holds the same content");
            assertFalse(Files.exists(f.published(v)));
            assertEquals(1, nlink(f.live));
            assertEquals(1, f.store.lostCount());
        }
    }

    @Test
    void atTheEndNoRoomAVersionOfAKilledRunStaysShared() throws Exception {
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(tmp.resolve("small"), "1024k");
             Folder f = new Folder(disk.path(), NEVER)) {
            f.write(bytes("one", 600_000));
            Path leftover = f.leftover();
            f.locked(() -> {
                f.cow.unshareAtEnd(() -> false);
                return null;
            });
            assertEquals(Cow.State.SHARED, f.state(), "said, and left as it is");
            assertEquals(2, nlink(leftover));
            assertEquals(0, f.store.lostCount());
        }
    }

    @Test
    void atTheEndWithNoTimeLeftTheVersionIsKeptShared() throws Exception {
        // On tmpfs: no reflink, so the copy really is cut short.
        try (TestSupport.SmallDisk disk = TestSupport.smallDisk(tmp.resolve("small"), "4m");
             Folder f = new Folder(disk.path(), NEVER)) {
            f.write(bytes("one", 600_000));
            f.locked(() -> {
                f.cow.expectRewrites();
                return null;
            });
            Version v = f.capture();
            f.locked(() -> {
                f.cow.unshareAtEnd(() -> true); // the budget is spent
                return null;
            });
            assertEquals(Cow.State.SHARED, f.state(), "never given up for lack of time");
            assertEquals(2, nlink(f.live));
            assertEquals(0, f.store.lostCount());
            assertSame(v, f.cow.versions().get(0).version());
            assertEquals(List.of(), f.temps(), "the cancelled copy is removed");
        }
    }

    // ---- helpers ---------------------------------------------------------------------------------

    private static byte[] bytes(String tag, int size) {
        byte[] b = new byte[size];
        byte[] t = tag.getBytes();
        for (int i = 0; i < size; i++) b[i] = t[i % t.length];
        return b;
    }

    private static long inode(Path p) throws IOException {
        return (Long) Files.getAttribute(p, "unix:ino");
    }

    private static int nlink(Path p) throws IOException {
        return (Integer) Files.getAttribute(p, "unix:nlink");
    }

    /** A live file in a plain folder, given to Cow as LiveFile gives itself: one name, no mount, no table. */
    static final class Folder implements Cow.Host, AutoCloseable {
        static final String NAME = "job.gbw";
        final Path dir;
        final Path live;
        final Path versions;
        final int dirFd;
        final VersionStore store;
        final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
        final Cow cow;
        volatile boolean stopping;
        int fd = -1; // guarded by lock

        Folder(Path base, long quietNanos) throws IOException {
            dir = Files.createDirectories(base.resolve("live"));
            live = dir.resolve(NAME);
            versions = base.resolve("versions");
            store = VersionStore.open(versions, Instant.now());
            dirFd = Posix.openDir(dir.toString());
            cow = new Cow(this, quietNanos);
        }

        /** New content through the live name (in place, like a program's write), and the live descriptor. */
        void write(byte[] content) throws IOException {
            Files.write(live, content);
            assertEquals(0, (int) locked(this::ensureFd));
        }

        /** A version of the current content by hard link, as LiveFile.takeVersion takes it. */
        Version capture() {
            return locked(this::captureLocked);
        }

        Version captureLocked() {
            VersionStore.Captured c = store.captureFd(fd, NAME, "close", 1, "test", () -> false);
            assertTrue(c.linked(), "a version by hard link");
            cow.versionLinked(store, c.version());
            return c.version();
        }

        /** The live inode is also the last version of a killed run (a link made by hand here). */
        Path leftover() throws IOException {
            Path v = Files.createDirectories(versions).resolve("job.000007.gbw");
            Files.createLink(v, live);
            locked(() -> {
                cow.leftoverLinked(store);
                return null;
            });
            return v;
        }

        Path published(Version v) {
            return versions.resolve(v.versionFile);
        }

        <T> T locked(Supplier<T> s) {
            lock.writeLock().lock();
            try {
                return s.get();
            } finally {
                lock.writeLock().unlock();
            }
        }

        Cow.State state() {
            lock.readLock().lock();
            try {
                return cow.state();
            } finally {
                lock.readLock().unlock();
            }
        }

        /** Waits (at most 20 s) for the background to bring the file to {@code want}; the state then. */
        Cow.State awaitState(Cow.State want) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (state() != want && System.nanoTime() < deadline) Thread.sleep(20);
            return state();
        }

        /** Our temp files left in the folder. */
        List<String> temps() throws IOException {
            try (Stream<Path> s = Files.list(dir)) {
                return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(CaptureFs.TMP_PREFIX)).sorted().toList();
            }
        }

        @Override
        public ReentrantReadWriteLock lock() {
            return lock;
        }

        @Override
        public int dirFd() {
            return dirFd;
        }

        @Override
        public int fd() {
            return fd;
        }

        @Override
        public int ensureFd() {
            if (fd >= 0) return 0;
            fd = Posix.C.openat(dirFd, NAME, LibC.O_RDWR | LibC.O_CLOEXEC, 0);
            return fd < 0 ? -Posix.errno() : 0;
        }

        @Override
        public String name() {
            return NAME;
        }

        @Override
        public int replaceWith(String tmp, int nf) {
            if (Posix.C.renameat(dirFd, tmp, dirFd, NAME) != 0) return -Posix.errno();
            Posix.C.close(fd);
            fd = nf;
            return 0;
        }

        @Override
        public Series series() {
            return new Series(store, NAME);
        }

        @Override
        public boolean stopping() {
            return stopping;
        }

        @Override
        public void backgroundDone() {
            // the test keeps its descriptor
        }

        @Override
        public void close() {
            stopping = true; // a background step still scheduled leaves this folder alone
            lock.writeLock().lock();
            try {
                if (fd >= 0) Posix.C.close(fd);
                fd = -1;
            } finally {
                lock.writeLock().unlock();
            }
            store.close();
            Posix.C.close(dirFd);
        }
    }
}
