package io.versionfs.capture;

import io.versionfs.sys.Posix;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Publication's state machine and the manifest order it keeps, on a plain folder: version files
 * are made by hand (hidden ones under their pending name), and what reaches the manifest is what
 * {@code listed} is told, in that order.
 */
class PublicationTest {
    @TempDir
    Path tmp;
    private int dirFd;
    private final List<Version> listed = Collections.synchronizedList(new ArrayList<>());
    private Publication pub;

    @BeforeEach
    void setUp() throws Exception {
        Files.createDirectories(tmp.resolve(Publication.FOLDER));
        dirFd = Posix.openDir(tmp.toString());
        pub = new Publication(tmp, tmp, dirFd, listed::add);
    }

    @AfterEach
    void tearDown() {
        Posix.C.close(dirFd);
    }

    /** A version linked to a live file: its file under the pending name, writable as the live file is. */
    private Version hidden(String series, long n) throws Exception {
        Version v = version(series, n);
        Path f = tmp.resolve(Publication.pendingName(v.versionFile));
        Files.writeString(f, series + n);
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rw-r--r--"));
        v.mode = 0644;
        pub.hide(v);
        return v;
    }

    /** A version copied under its name. */
    private Version copy(String series, long n) throws Exception {
        Version v = version(series, n);
        Files.writeString(tmp.resolve(v.versionFile), series + n);
        pub.list(v);
        return v;
    }

    private static Version version(String series, long n) {
        return new Version(n, series, VersionNaming.versionName(series, n), 2, Instant.now(), 1, "job", "close",
                Version.Status.SAVED, null);
    }

    private static List<Long> numbers(List<Version> vs) {
        synchronized (vs) {
            return vs.stream().map(v -> v.number).toList();
        }
    }

    @Test
    void aHiddenVersionHoldsUpLaterOnesOfItsSeriesUntilItHasItsName() throws Exception {
        Version v1 = hidden("job.dat", 1);
        Version v2 = copy("job.dat", 2);
        Version v3 = copy("job.dat", 3);
        assertEquals(List.of(), numbers(listed), "2 and 3 wait for 1");
        assertTrue(Files.notExists(tmp.resolve(v1.versionFile)), "no name while the job may write its inode");
        assertEquals(Publication.State.HIDDEN, v1.publication);
        assertEquals(Publication.State.LISTED, v2.publication);

        pub.publish(v1);
        assertEquals(List.of(1L, 2L, 3L), numbers(listed), "in number order, 1 first");
        assertEquals(Publication.State.LISTED, v1.publication);
        Path named = tmp.resolve(v1.versionFile);
        assertEquals("job.dat1", Files.readString(named));
        assertTrue(Files.getPosixFilePermissions(named).stream().noneMatch(p -> p.name().contains("WRITE")), "read-only");
        assertTrue(Files.notExists(tmp.resolve(Publication.pendingName(v1.versionFile))));

        pub.publish(v1);
        pub.publish(v2);
        assertEquals(List.of(1L, 2L, 3L), numbers(listed), "publishing twice, or a copy, does nothing");
    }

    @Test
    void aFileThatTookAHiddenVersionsNameIsSetAsideAndTheVersionStillGetsItsNameAndLine() throws Exception {
        Version v1 = hidden("job.dat", 1);
        Version v2 = copy("job.dat", 2);
        // A tool in the job wrote the name meanwhile (python open('job.000001.dat', 'w')).
        Files.writeString(tmp.resolve(v1.versionFile), "not ours");

        pub.publish(v1);

        assertEquals(Publication.State.LISTED, v1.publication, "not stranded in the pending folder");
        assertEquals(List.of(1L, 2L), numbers(listed), "its line, in its turn: the later one was not held up for good");
        assertEquals("job.dat1", Files.readString(tmp.resolve(v1.versionFile)), "the version under its name");
        try (var ds = Files.newDirectoryStream(tmp, "job.000001.not-a-version-*.dat")) {
            List<Path> aside = new ArrayList<>();
            ds.forEach(aside::add);
            assertEquals(1, aside.size(), "the other file is kept beside: " + aside);
            assertEquals("not ours", Files.readString(aside.get(0)));
            assertTrue(VersionNaming.parse("job.dat", aside.get(0).getFileName().toString()).isEmpty(), "and is never taken for a version");
        }
        assertEquals("job.dat2", Files.readString(tmp.resolve(v2.versionFile)));
    }

    @Test
    void seriesDoNotWaitForEachOther() throws Exception {
        hidden("a.dat", 1);
        copy("b.dat", 1);
        Version a2 = copy("a.dat", 2);
        assertEquals(List.of("b.dat"), listed.stream().map(v -> v.file).toList());
        assertEquals(Publication.State.LISTED, a2.publication, "ready, and waiting for a.dat's version 1");
    }

    @Test
    void aHiddenVersionRemovedLetsTheLaterOnesGoWithoutItsLine() throws Exception {
        Version v1 = hidden("job.dat", 1);
        copy("job.dat", 2);
        assertTrue(pub.remove(v1));
        assertEquals(List.of(2L), numbers(listed));
        assertEquals(Publication.State.GONE, v1.publication);
        assertTrue(v1.gone());
        assertTrue(Files.notExists(tmp.resolve(Publication.pendingName(v1.versionFile))), "its file is removed");
        assertFalse(pub.remove(v1), "removed once");
        pub.publish(v1);
        assertTrue(Files.notExists(tmp.resolve(v1.versionFile)), "a removed version is never published");
        assertEquals(List.of(2L), numbers(listed));
    }

    @Test
    void aVersionRemovedWhileWaitingForItsTurnGetsNoLine() throws Exception {
        Version v1 = hidden("job.dat", 1);
        Version v2 = copy("job.dat", 2);
        copy("job.dat", 3);
        assertTrue(pub.remove(v2));
        assertTrue(Files.notExists(tmp.resolve(v2.versionFile)), "removed under its name");
        pub.publish(v1);
        assertEquals(List.of(1L, 3L), numbers(listed));
        // Removing one already listed: gone from the folder, and its line (if not yet written) is not written.
        Version v3 = listed.get(1);
        assertTrue(pub.remove(v3));
        assertTrue(v3.gone());
        assertTrue(Files.notExists(tmp.resolve(v3.versionFile)));
    }

    @Test
    void aVersionThatCannotGetItsNameNoLongerHoldsUpOthers() throws Exception {
        Version v1 = hidden("job.dat", 1);
        copy("job.dat", 2);
        Files.delete(tmp.resolve(Publication.pendingName(v1.versionFile))); // removed from outside: nothing left to name
        pub.publish(v1);
        assertEquals(Publication.State.STRANDED, v1.publication);
        assertTrue(Files.notExists(tmp.resolve(v1.versionFile)));
        assertEquals(List.of(2L), numbers(listed));
        assertTrue(pub.remove(v1), "a stranded version can still be removed");
    }

    @Test
    void atTheEndAVersionStillSharingItsInodeKeepsItsModeSoTheSharedFileStaysWritable() throws Exception {
        Version shared = hidden("a.dat", 1);
        Version alone = hidden("b.dat", 1);
        Path live = tmp.resolve("live");
        Files.createLink(live, tmp.resolve(Publication.pendingName(shared.versionFile)));
        pub.publishRemaining();
        assertEquals(2, listed.size());
        assertTrue(Files.getPosixFilePermissions(live).contains(PosixFilePermission.OWNER_WRITE), "the live file stays writable");
        assertTrue(Files.getPosixFilePermissions(tmp.resolve(alone.versionFile)).stream().noneMatch(p -> p.name().contains("WRITE")));
    }

    @Test
    void subfolderSeriesGetTheirFolderAtTheFirstPublication() throws Exception {
        Version v = hidden("sub/x.dat", 1);
        pub.publish(v);
        assertEquals("sub/x.dat1", Files.readString(tmp.resolve("sub/x.000001.dat")));
    }

    /**
     * Under load: per series, versions come in number order from one capturing thread (hidden
     * or copied), while other threads publish and remove hidden ones. Every series' lines are in
     * number order, each kept version exactly once, no removed one.
     */
    @Test
    void linesOfASeriesFollowVersionNumbersWhateverThreadsPublish() throws Exception {
        int series = 4, per = 150;
        ConcurrentLinkedQueue<Version> toPublish = new ConcurrentLinkedQueue<>();
        Map<String, List<Long>> removed = new HashMap<>();
        ExecutorService pool = Executors.newFixedThreadPool(series + 3);
        List<Future<?>> capturing = new ArrayList<>();
        for (int s = 0; s < series; s++) {
            String name = "s" + s + ".dat";
            List<Long> gone = Collections.synchronizedList(new ArrayList<>());
            removed.put(name, gone);
            Random rnd = new Random(s);
            capturing.add(pool.submit(() -> {
                for (long n = 1; n <= per; n++) {
                    if (rnd.nextInt(3) == 0) copy(name, n);
                    else toPublish.add(hidden(name, n));
                }
                return null;
            }));
        }
        List<Future<?>> publishing = new ArrayList<>();
        for (int t = 0; t < 3; t++) {
            Random rnd = new Random(100 + t);
            publishing.add(pool.submit(() -> {
                while (!capturing.stream().allMatch(Future::isDone) || !toPublish.isEmpty()) {
                    Version v = toPublish.poll();
                    if (v == null) {
                        Thread.onSpinWait();
                    } else if (rnd.nextInt(10) == 0) {
                        if (pub.remove(v)) removed.get(v.file).add(v.number);
                    } else {
                        pub.publish(v);
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : capturing) f.get(60, TimeUnit.SECONDS);
        for (Future<?> f : publishing) f.get(60, TimeUnit.SECONDS);
        pool.shutdown();
        for (int s = 0; s < series; s++) {
            String name = "s" + s + ".dat";
            List<Long> got = listed.stream().filter(v -> v.file.equals(name)).map(v -> v.number).toList();
            List<Long> want = new ArrayList<>();
            for (long n = 1; n <= per; n++) if (!removed.get(name).contains(n)) want.add(n);
            assertEquals(want, got, name + ": every kept version once, in number order");
        }
    }
}
