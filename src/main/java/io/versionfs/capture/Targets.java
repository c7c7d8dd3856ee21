package io.versionfs.capture;

import io.versionfs.text.Log;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * Which names in a captured folder are versioned, into which series, and which parts of the
 * folder are versions folders (read-only through the mount). Names that match nothing are
 * passed through untouched. A rule either sends every match to one versions folder (the series
 * is then named by the path relative to the mount, so {@code a/x.dat} and {@code b/x.dat} never
 * share numbers), or opens a folder per matching file on first use (a glob in directory mode:
 * each {@code x.xyz} gets {@code x.xyz.versions/}).
 */
public final class Targets {
    /** Opens the versions folder for a path; throws with a message a user can act on. */
    public interface StoreOpener {
        VersionStore open(String rel) throws Exception;
    }

    private record Rule(TargetMatcher matcher, Function<String, Series> series, String exactFile) {
        Rule(TargetMatcher matcher, Function<String, Series> series) {
            this(matcher, series, null);
        }
    }

    /** Read on every open, added to while mounted (symlink mode follows a rename): copy-on-write. */
    private final List<Rule> rules = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final Map<String, VersionStore> opened = new ConcurrentHashMap<>();
    /** Versions folders inside the mount, relative to its root: nothing may change them through it. */
    private final Set<String> protectedDirs = ConcurrentHashMap.newKeySet();
    /** Files that cannot be versioned, with the reason (reported once, and in the summary). */
    private final Map<String, String> unversionable = new ConcurrentHashMap<>();

    /**
     * Every file matching {@code matcher} is versioned into {@code store}.
     *
     * @param relInMount where the store is inside the mount (protected), or null if outside it
     */
    public Targets add(TargetMatcher matcher, VersionStore store, String relInMount) {
        opened.put("fixed:" + store.dir(), store);
        if (relInMount != null) protectedDirs.add(relInMount);
        rules.add(new Rule(matcher, rel -> new Series(store, rel)));
        return this;
    }

    /** The one file {@code rel} is versioned into {@code store} as series {@code series} (symlink mode). */
    public Targets addFile(String rel, VersionStore store, String series) {
        opened.put("fixed:" + store.dir(), store);
        TargetMatcher m = new TargetMatcher(List.of(TargetMatcher.literal(rel)));
        rules.add(new Rule(m, r -> new Series(store, series), rel));
        return this;
    }

    /** {@code rel} (added by {@link #addFile}) is no longer versioned: a file reached by it later is passed through. */
    public void removeFile(String rel) {
        rules.removeIf(r -> rel.equals(r.exactFile()));
    }

    /** Every file matching {@code matcher} gets its own {@code REL.versions} store, opened on first use. */
    public Targets addPerFile(TargetMatcher matcher, StoreOpener open) {
        rules.add(new Rule(matcher, rel -> {
            if (unversionable.containsKey(rel)) return null;
            VersionStore s = opened.computeIfAbsent("file:" + rel, k -> {
                try {
                    return open.open(rel);
                } catch (Exception e) {
                    String why = e.getMessage() == null ? e.toString() : e.getMessage();
                    unversionable.put(rel, why);
                    Log.warn(rel + " is NOT versioned (its writes go through unchanged): " + why);
                    return null;
                }
            });
            if (s == null) return null;
            protectedDirs.add(VersionNaming.versionsFolderOf(rel));
            return new Series(s, baseName(rel));
        }));
        return this;
    }

    private static String baseName(String rel) {
        return rel.substring(rel.lastIndexOf('/') + 1);
    }

    /** The series of {@code relPath}, or null when the file is not a target (or cannot be versioned). */
    public Series seriesFor(String relPath) {
        if (relPath == null || isProtected(relPath)) return null;
        for (Rule r : rules) if (r.matcher.matches(relPath)) return r.series.apply(relPath);
        return null;
    }

    /** Whether {@code relPath} matches a target (opens no store, unlike {@link #seriesFor}). */
    public boolean matches(String relPath) {
        if (relPath == null || isProtected(relPath)) return false;
        for (Rule r : rules) if (r.matcher.matches(relPath)) return true;
        return false;
    }

    /** True when {@code relPath} is a versions folder inside the mount, or inside one. */
    public boolean isProtected(String relPath) {
        if (relPath == null || protectedDirs.isEmpty()) return false;
        for (String d : protectedDirs) {
            if (relPath.equals(d) || (relPath.length() > d.length() && relPath.startsWith(d) && relPath.charAt(d.length()) == '/')) {
                return true;
            }
        }
        return false;
    }

    /** {@code rel} matches a target but cannot be versioned: said once, and in the summary. */
    public void markUnversionable(String rel, String why) {
        if (unversionable.putIfAbsent(rel, why) == null) Log.warn(why);
    }

    /** Files that matched a target but could not be versioned, and why. */
    public Map<String, String> unversionable() {
        return Map.copyOf(unversionable);
    }

    /** Every store opened so far. */
    public List<VersionStore> stores() {
        return opened.values().stream().distinct().toList();
    }
}
