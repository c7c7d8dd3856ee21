package io.versionfs.capture;

import io.versionfs.sys.Posix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The give-way order, through the one door the file system uses ({@link Room}), on a plain
 * folder: this run's versions go oldest first, the content before the run last, and a version
 * that shares its inode with a live file (hidden, or linked elsewhere) never, since removing it
 * frees nothing.
 */
class GiveWayTest {
    @TempDir
    Path tmp;

    private static VersionStore.Captured copy(VersionStore s, Path src, String content, String reason) throws Exception {
        Files.writeString(src, content);
        return s.copyAtPath(src, "job.dat", reason);
    }

    private static boolean saved(Path vdir, long n) {
        return Files.exists(vdir.resolve(VersionNaming.versionName("job.dat", n)));
    }

    @Test
    void oldestFirstTheContentBeforeTheRunLastAndNeverAVersionThatFreesNothing() throws Exception {
        Path vdir = tmp.resolve("job.dat.versions"), src = tmp.resolve("job.dat");
        try (VersionStore s = VersionStore.open(vdir, Instant.now())) {
            copy(s, src, "before the run", "initial"); // 1
            copy(s, src, "two", "close"); // 2
            copy(s, src, "three", "close"); // 3
            copy(s, src, "four", "close"); // 4
            int fd = Posix.openDir(tmp.toString());
            VersionStore.Captured linked = s.captureAt(fd, "job.dat", "job.dat", "close"); // 5: hidden, shares job.dat
            Posix.C.close(fd);
            assertTrue(linked.linked());
            // 3 has another name (as a version still sharing a live file would): removing it frees nothing.
            Files.createLink(tmp.resolve("other-name"), vdir.resolve(VersionNaming.versionName("job.dat", 3)));

            Room room = s.room();
            assertTrue(room.dropOne());
            assertFalse(saved(vdir, 2), "the oldest of this run first");
            assertTrue(saved(vdir, 1) && saved(vdir, 3) && saved(vdir, 4));
            assertTrue(room.dropOne());
            assertFalse(saved(vdir, 4), "3 is skipped: it frees nothing");
            assertTrue(saved(vdir, 1) && saved(vdir, 3));
            assertTrue(room.dropOne());
            assertFalse(saved(vdir, 1), "the content before the run, last");
            assertFalse(room.dropOne(), "left: 3 (linked elsewhere) and 5 (hidden), neither frees anything");
            assertTrue(saved(vdir, 3));

            Files.delete(tmp.resolve("other-name"));
            assertTrue(room.dropOne(), "3 frees its blocks now");
            assertFalse(saved(vdir, 3));
            s.drain();
            List<ManifestLine> dropped = Manifest.readChecked(vdir).rows().stream().filter(l -> Boolean.TRUE.equals(l.dropped())).toList();
            assertEquals(List.of(2L, 4L, 1L, 3L), dropped.stream().map(ManifestLine::version).toList(), "each drop recorded, in order");
            assertTrue(dropped.stream().allMatch(l -> "lost".equals(l.status())));
            assertEquals(4, s.lostCount());
            assertEquals(4, s.versions().get("job.dat").lost());
        }
    }

    @Test
    void aVersionGivenUpWhileHiddenIsRemovedRecordedLostAndNoLongerHoldsUpLaterOnes() throws Exception {
        Path vdir = tmp.resolve("job.dat.versions"), src = tmp.resolve("job.dat");
        try (VersionStore s = VersionStore.open(vdir, Instant.now())) {
            Files.writeString(src, "one");
            int fd = Posix.openDir(tmp.toString());
            Version v1 = s.captureAt(fd, "job.dat", "job.dat", "close").version(); // hidden: shares job.dat
            Posix.C.close(fd);
            copy(s, tmp.resolve("copy-src"), "two", "close"); // 2 waits for 1
            s.drain();
            assertTrue(Manifest.readChecked(vdir).rows().stream().noneMatch(ManifestLine::isVersion), "2 waits for 1");

            s.room().giveUp(v1, "no room to keep it apart");
            s.drain();
            try (var files = Files.list(vdir)) {
                assertEquals(List.of(2L), files.map(p -> p.getFileName().toString()).filter(VersionNaming::isVersionFileName)
                        .map(n -> VersionNaming.parse("job.dat", n).getAsLong()).toList(), "1 is removed");
            }
            assertEquals("one", Files.readString(src), "the live file is untouched");
            List<ManifestLine> rows = Manifest.readChecked(vdir).rows().stream().filter(ManifestLine::isVersion).toList();
            assertTrue(rows.stream().anyMatch(l -> l.version() == 1 && "lost".equals(l.status())
                    && "no room to keep it apart".equals(l.error())), rows.toString());
            assertTrue(rows.stream().anyMatch(l -> l.version() == 2 && "saved".equals(l.status())), rows.toString());
            assertTrue(rows.stream().noneMatch(l -> l.version() == 1 && "saved".equals(l.status())), "1 is never listed as saved");
            assertEquals(1, s.lostCount());
        }
    }

    @Test
    void theGuardSkipsACloseWhenTheHeadroomWouldNotBeLeftAndSaysSoInTheManifest() throws Exception {
        Path vdir = tmp.resolve("job.dat.versions");
        try (VersionStore s = VersionStore.open(vdir, Instant.now())) {
            s.minFree(0);
            assertFalse(s.room().skipIfLow("job.dat", "close", 7, 0), "an empty version leaves what is free");
            s.minFree(Long.MAX_VALUE / 2);
            assertTrue(s.room().skipIfLow("job.dat", "close", 7, 4096), "nothing leaves that much free");
            s.drain();
            assertEquals(1, s.skippedCount());
            List<ManifestLine> skipped = Manifest.readChecked(vdir).rows().stream().filter(l -> "skipped".equals(l.event())).toList();
            assertEquals(1, skipped.size());
            assertEquals("job.dat", skipped.get(0).file());
            assertEquals(7, skipped.get(0).pid());
        }
    }
}
