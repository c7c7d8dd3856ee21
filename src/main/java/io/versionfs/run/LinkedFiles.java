package io.versionfs.run;

import io.versionfs.capture.VersionNaming;
import io.versionfs.fs.CaptureFs;
import io.versionfs.sys.FileCopier;
import io.versionfs.sys.IoError;
import io.versionfs.sys.LibC;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Symlink mode's files seen from outside the mount: the symlinks that lead into a mount, the
 * files behind them put back in their place as regular files, and copies made through a temp
 * name. Used at the end of a run ({@link TargetLink}) and when a killed run is recovered
 * ({@link EarlierRun}). Stateless.
 */
final class LinkedFiles {
    private LinkedFiles() {}

    /**
     * Symlinks in {@code folder} (the target's) that lead into {@code mount}, grouped by the backing file
     * they lead to (under {@code backingRoot}); the target first in its group.
     */
    static Map<Path, List<Path>> symlinksInto(Path mount, Path backingRoot, Path folder, Path target) {
        Map<Path, List<Path>> found = new java.util.LinkedHashMap<>();
        // The target's folder and its direct subfolders (mv job.gbw old/job.ges), at most a few
        // thousand entries: a symlink moved further or to another filesystem cannot be found.
        List<Path> candidates = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(folder)) {
            for (Path p : ds) {
                candidates.add(p);
                if (candidates.size() < 5000 && Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS) && !VersionNaming.isVersionsFolderName(p.getFileName().toString())) {
                    try (DirectoryStream<Path> sub = Files.newDirectoryStream(p)) {
                        for (Path q : sub) {
                            candidates.add(q);
                            if (candidates.size() >= 5000) break;
                        }
                    } catch (IOException e) {
                        // unreadable subfolder
                    }
                }
            }
        } catch (IOException e) {
            // unreadable folder: nothing found
        }
        {
            for (Path p : candidates) {
                try {
                    if (!Files.isSymbolicLink(p)) continue;
                    Path to = Files.readSymbolicLink(p);
                    // A file in the mount is MOUNT/fN/NAME: a link to the mount, to its fN folder
                    // (a job can make one) or deeper leads to no file of ours and stays as it is.
                    if (!to.startsWith(mount) || mount.relativize(to).getNameCount() != 2) continue;
                    found.computeIfAbsent(backingRoot.resolve(mount.relativize(to)), k -> new ArrayList<>()).add(p);
                } catch (IOException e) {
                    // vanished meanwhile
                }
            }
        }
        for (List<Path> l : found.values()) l.sort((a, b) -> a.equals(target) ? -1 : b.equals(target) ? 1 : a.compareTo(b));
        return found;
    }

    /**
     * Puts {@code backing}'s content at each of {@code links} (symlinks), as regular files: the
     * first gets the file itself (a rename, O(1): the user's own hard links to it stay links), the
     * others copies. A file that still shares its inode with a version is copied instead.
     */
    static void putInPlace(Path backing, List<Path> links, boolean sharesVersion) throws IOException {
        Path first = links.get(0);
        for (Path p : links) if (!p.equals(first)) copyFile(backing, p);
        if (sharesVersion) {
            copyFile(backing, first);
            Files.delete(backing);
        } else {
            try {
                Files.move(backing, first, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (java.nio.file.AtomicMoveNotSupportedException e) {
                copyFile(backing, first);
                Files.delete(backing);
            }
        }
    }

    /** Copies {@code from} to {@code to} via a temp name (reflink/copy_file_range when possible), keeping mode and mtime. */
    static void copyFile(Path from, Path to) throws IOException {
        Path tmp = to.resolveSibling(CaptureFs.TMP_PREFIX + to.getFileName() + ".copy");
        IoError err = FileCopier.copyAt(LibC.AT_FDCWD, from.toString(), LibC.AT_FDCWD, tmp.toString(), true, () -> false);
        if (err != null) throw err.thrown();
        Files.setLastModifiedTime(tmp, Files.getLastModifiedTime(from));
        Files.move(tmp, to, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** Removes {@code dir} if it is an empty folder; anything else is left as it is. */
    static void deleteIfEmpty(Path dir) {
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            if (!ds.iterator().hasNext()) Files.delete(dir);
        } catch (IOException e) {
            // not there, or not empty
        }
    }
}
