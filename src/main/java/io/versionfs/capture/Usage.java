package io.versionfs.capture;

import io.versionfs.text.Bytes;
import io.versionfs.report.Summary;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Stat;
import ru.serce.jnrfuse.struct.FileStat;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

/** What the version files of a folder take, in one line for the summary and {@code versionfs list}. */
public final class Usage {
    private Usage() {}

    /**
     * Their content, what they occupy on disk (hard links, i.e. identical versions, counted once;
     * reflinked extents and holes as the filesystem reports them), and the free space there.
     * {@code reach} is how to read the folder, {@code shown} how to name it, {@code deduped} the
     * bytes this run did not store twice; null when the folder cannot be listed.
     */
    public static String of(Path reach, Path shown, long deduped) {
        long logical = 0, stored = 0, count = 0;
        Set<Long> seen = new HashSet<>();
        String free;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(reach)) {
            for (Path p : ds) {
                if (!VersionNaming.isVersionFileName(p.getFileName().toString())) continue;
                FileStat st = Stat.at(LibC.AT_FDCWD, p.toString(), LibC.AT_SYMLINK_NOFOLLOW);
                if (st == null || !Stat.isRegular(st)) continue;
                count++;
                logical += Stat.size(st);
                // Only a file with several names can be met twice: the set holds those alone
                // (a million versions would otherwise be a million boxed inode numbers).
                if (Stat.nlink(st) <= 1 || seen.add(Stat.ino(st))) stored += st.st_blocks.longValue() * 512;
            }
            free = ", " + Bytes.of(Files.getFileStore(reach).getUsableSpace()) + " free there";
        } catch (IOException e) {
            return null;
        }
        return shown + ": " + count + " version file(s), " + Bytes.of(logical) + " of content, "
                + Bytes.of(stored) + " on disk"
                + (deduped > 0 ? " (" + Bytes.of(deduped) + " not stored twice: identical versions)" : "") + free;
    }
}
