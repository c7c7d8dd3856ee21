package io.versionfs.run;

import io.versionfs.text.Log;
import io.versionfs.sys.Seccomp;
import io.versionfs.trap.Inode;
import io.versionfs.trap.Name;
import io.versionfs.trap.NameTrap;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Connects the name trap to a run's targets: what it protects (the targets' names, the folders
 * the run stands on, the versions folders and versionfs's own folders) and who acts on a
 * target's name (its {@link TargetLink}).
 */
final class NameTraps {
    private NameTraps() {}

    /** Starts the trap's supervisor for {@code links} (null where the trap cannot exist: not x86_64). */
    static NameTrap prepare(List<TargetLink> links) {
        if (!Seccomp.supportedArch()) return null;
        List<NameTrap.TargetName> names = new ArrayList<>();
        Set<Inode> anchors = new LinkedHashSet<>(), inside = new LinkedHashSet<>();
        for (TargetLink l : links) {
            names.add(new NameTrap.TargetName(l.folderId(), l.name));
            for (Path p : List.of(l.target.getParent(), l.store.dir(), l.liveDir, l.mountPoint())) ancestors(p, anchors);
            for (Path p : List.of(l.store.dir(), l.liveDir)) folders(p, inside);
            inside.add(inode(l.mountPoint()));
            inside.add(inode(l.mountPoint().resolve(TargetLink.LIVE_SUB)));
        }
        inside.remove(null);
        anchors.remove(null);
        return NameTrap.prepare(new NameTrap.Scope(List.copyOf(names), Set.copyOf(anchors), Set.copyOf(inside)), handler(links));
    }

    private static NameTrap.Handler handler(List<TargetLink> links) {
        return new NameTrap.Handler() {
            @Override
            public int renameOnto(int t, Name src, boolean noReplace, int tid) {
                return links.get(t).renameOnto(src, noReplace, tid);
            }

            @Override
            public int renameAway(int t, Name dst, boolean noReplace, int tid) {
                return links.get(t).renameAway(dst, noReplace, tid);
            }

            @Override
            public int renameBetween(int from, int to, boolean noReplace, int tid) {
                return links.get(from).renameOnto(links.get(to), noReplace, tid);
            }

            @Override
            public int unlink(int t, int tid) {
                return links.get(t).unlinkTarget(tid);
            }

            @Override
            public int linkOut(int t, Name dst, int tid) {
                return links.get(t).linkOut(dst, tid);
            }

            @Override
            public int linkOnto(int t, Name src, int tid) {
                return links.get(t).linkOnto(src, tid);
            }

            @Override
            public int linkBetween(int from, int to, int tid) {
                return links.get(to).linkOnto(links.get(from), tid);
            }
        };
    }

    /** Says once, before the job's first output matters, how the job's renames are handled. */
    static void sayMode(NameTrap trap, RunSession.Renames renames, String conflict) {
        String declinedBy = conflict != null ? conflict : renames.declinedBy();
        if (trap != null && trap.installed()) {
            Log.info("the job's renames, deletes and links of its targets are held while versionfs handles them (seccomp)");
            return;
        }
        String why = declinedBy != null ? declinedBy
                : trap == null ? "no syscall trap on " + System.getProperty("os.arch")
                : trap.nested() ? "a versionfs run around this one already holds the job's calls"
                : "the kernel refused the syscall trap: " + trap.failure();
        Log.warn("renames and deletes of the targets are " + (renames.follow() ? "followed" : "only noticed")
                + " after the fact (" + why + "): a program that replaces"
                + " a target by rename, or renames it away and re-creates it at once, can have saves missed; --mode dir"
                + " captures them all (README: 'Renames')");
        if (trap != null) trap.abandon();
    }

    private static void ancestors(Path p, Set<Inode> out) {
        for (Path q = p.toAbsolutePath().normalize(); q != null; q = q.getParent()) out.add(inode(q));
    }

    /**
     * {@code dir} and its hidden subfolders, recursively (versionfs's own: .versionfs/live/f);
     * version files are not looked at (a folder may hold 100,000 of them).
     */
    private static void folders(Path dir, Set<Inode> out) {
        folders(dir, out, true);
    }

    private static void folders(Path dir, Set<Inode> out, boolean top) {
        out.add(inode(dir));
        try (var ds = Files.newDirectoryStream(dir, p -> !top || p.getFileName().toString().startsWith("."))) {
            for (Path p : ds) if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) folders(p, out, false);
        } catch (IOException | RuntimeException e) {
            // unreadable: the folder itself is protected
        }
    }

    private static Inode inode(Path p) {
        try {
            Object dev = Files.getAttribute(p, "unix:dev", LinkOption.NOFOLLOW_LINKS);
            Object ino = Files.getAttribute(p, "unix:ino", LinkOption.NOFOLLOW_LINKS);
            return new Inode(((Number) dev).longValue(), ((Number) ino).longValue());
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }
}
