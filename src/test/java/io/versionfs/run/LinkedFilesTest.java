package io.versionfs.run;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Symlinks into a mount found, and the files behind them put back, on a plain folder (a mount is only a path here). */
class LinkedFilesTest {
    @TempDir
    Path dir;

    private Path mount() {
        return dir.resolve("mnt");
    }

    @Test
    void finds_theSymlinksIntoTheMount_targetFirst_inTheFolderAndOneLevelDown() throws Exception {
        Path target = dir.resolve("job.gbw");
        Path backing = dir.resolve("live");
        Files.createDirectories(dir.resolve("old"));
        Files.createDirectories(dir.resolve("job.gbw.versions"));
        Files.createSymbolicLink(dir.resolve("a.ges"), mount().resolve("f/job.gbw"));
        Files.createSymbolicLink(target, mount().resolve("f/job.gbw"));
        Files.createSymbolicLink(dir.resolve("old/b.ges"), mount().resolve("f1/job.gbw"));
        Files.createSymbolicLink(dir.resolve("job.gbw.versions/c"), mount().resolve("f/job.gbw")); // never in a versions folder
        Files.createSymbolicLink(dir.resolve("root"), mount()); // the mount itself leads to no file
        Files.createSymbolicLink(dir.resolve("elsewhere"), dir.resolve("other/job.gbw"));

        Map<Path, List<Path>> found = LinkedFiles.symlinksInto(mount(), backing, dir, target);

        assertEquals(Map.of(backing.resolve("f/job.gbw"), List.of(target, dir.resolve("a.ges")),
                backing.resolve("f1/job.gbw"), List.of(dir.resolve("old/b.ges"))), found);
    }

    @Test
    void putInPlace_givesTheFileItselfToTheFirstName_andCopiesToTheOthers() throws Exception {
        Path backing = Files.writeString(dir.resolve("backing"), "content\n");
        Object inode = Files.readAttributes(backing, "unix:ino").get("ino");
        Path first = Files.createSymbolicLink(dir.resolve("job.gbw"), backing);
        Path second = Files.createSymbolicLink(dir.resolve("job.ges"), backing);

        LinkedFiles.putInPlace(backing, List.of(first, second), false);

        for (Path p : List.of(first, second)) {
            assertTrue(Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS), p + " is a regular file");
            assertEquals("content\n", Files.readString(p));
        }
        assertEquals(inode, Files.readAttributes(first, "unix:ino").get("ino"), "the file itself, moved (O(1))");
        assertNotEquals(inode, Files.readAttributes(second, "unix:ino").get("ino"), "a copy");
        assertFalse(Files.exists(backing));
    }

    @Test
    void putInPlace_copiesAFileThatStillSharesItsInodeWithAVersion() throws Exception {
        Path backing = Files.writeString(dir.resolve("backing"), "content\n");
        Path version = Files.createLink(dir.resolve("job.000002.gbw"), backing);
        Path first = Files.createSymbolicLink(dir.resolve("job.gbw"), backing);

        LinkedFiles.putInPlace(backing, List.of(first), true);

        Files.writeString(first, "edited by the user\n");
        assertEquals("content\n", Files.readString(version), "the version does not change with the recovered file");
        assertFalse(Files.exists(backing));
    }

    @Test
    void keptNames_areNeverVersionFileNames() {
        String kept = io.versionfs.capture.VersionNaming.keptName("job.gbw", "in-flight-2");
        assertTrue(kept.matches("job\\.in-flight-2-[0-9]+\\.gbw"), kept);
        assertTrue(io.versionfs.capture.VersionNaming.parse("job.gbw", kept).isEmpty(), "numbering ignores " + kept);
    }

    @Test
    void deleteIfEmpty_removesOnlyAnEmptyFolder() throws Exception {
        Path empty = Files.createDirectory(dir.resolve("empty"));
        Path full = Files.createDirectory(dir.resolve("full"));
        Files.writeString(full.resolve("x"), "x");

        LinkedFiles.deleteIfEmpty(empty);
        LinkedFiles.deleteIfEmpty(full);
        LinkedFiles.deleteIfEmpty(dir.resolve("missing"));

        assertFalse(Files.exists(empty));
        assertTrue(Files.exists(full.resolve("x")));
    }
}
