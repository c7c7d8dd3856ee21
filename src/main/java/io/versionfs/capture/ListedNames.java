package io.versionfs.capture;

import java.util.HashSet;
import java.util.OptionalLong;
import java.util.Set;

/**
 * The version-file names a manifest lists, to find the files it does not (verify): exact, in
 * about 4 bytes a name for the names versionfs gives ({@code job.000042.gbw} is series
 * {@code job.gbw}, number 42, in a {@link VersionTable}) where a set of strings takes 100; any
 * other name (a subfolder's, a number written with more zeros) goes to a plain set.
 */
public final class ListedNames {
    private final VersionTable numbered = new VersionTable();
    private final Set<String> other = new HashSet<>();

    public void add(String name) {
        Key k = key(name);
        if (k != null) numbered.put(k.series, k.number, 1);
        else other.add(name);
    }

    public boolean contains(String name) {
        Key k = key(name);
        return k != null ? numbered.get(k.series, k.number) != 0 : other.contains(name);
    }

    private record Key(String series, long number) {}

    /** The version that {@code name} is, if versionfs's name for that version is exactly this one (so the pair names it exactly). */
    private static Key key(String name) {
        if (!VersionNaming.isVersionFileName(name)) return null;
        String series = VersionNaming.seriesOfFileName(name);
        OptionalLong n = VersionNaming.parse(series, name);
        return n.isPresent() && VersionNaming.versionName(series, n.getAsLong()).equals(name) ? new Key(series, n.getAsLong()) : null;
    }
}
