package io.versionfs.capture;

import java.util.OptionalLong;

/**
 * Names of version files: {@code job.gbw} version 3 is {@code job.000003.gbw}. The extension stays
 * last so tools still recognise the file type, and the number is zero-padded to six digits so
 * that plain lexical order ({@code ls}, shell globs) is capture order for up to a million
 * versions, which a week-long job rewriting every second stays under. A series named with a
 * folder ({@code sub/x.dat}, a target in a subfolder sharing one versions folder) keeps that
 * folder: {@code sub/x.000001.dat}.
 */
public final class VersionNaming {
    public static final int DIGITS = 6;
    /** Numbers we would ever give (a billion versions); a longer digit run is someone else's file. */
    public static final long MAX_NUMBER = 999_999_999L;

    /** The versions folder of {@code job.gbw} is {@code job.gbw.versions}, beside it, unless the user names another. */
    public static final String FOLDER_SUFFIX = ".versions";

    private VersionNaming() {}

    /** The default versions folder's name for a file named {@code name} (which may have a folder part). */
    public static String versionsFolderOf(String name) {
        return name + FOLDER_SUFFIX;
    }

    /** Whether {@code name} is a versions folder's name by the default rule. */
    public static boolean isVersionsFolderName(String name) {
        return name.endsWith(FOLDER_SUFFIX);
    }

    /** Splits {@code name} into stem and extension (with its dot); dot-files have no extension. */
    static String[] split(String name) {
        int dot = name.lastIndexOf('.');
        if (dot <= 0) return new String[] {name, ""};
        return new String[] {name.substring(0, dot), name.substring(dot)};
    }

    /** The folder part of a series name ("" or "sub/"), and its base. */
    static String folderOf(String series) {
        int s = series.lastIndexOf('/');
        return s < 0 ? "" : series.substring(0, s + 1);
    }

    static String baseOf(String series) {
        return series.substring(series.lastIndexOf('/') + 1);
    }

    public static String versionName(String series, long number) {
        String[] se = split(baseOf(series));
        String digits = Long.toString(number);
        StringBuilder b = new StringBuilder(folderOf(series)).append(se[0]).append('.');
        for (int i = digits.length(); i < DIGITS; i++) b.append('0');
        return b.append(digits).append(se[1]).toString();
    }

    /**
     * A name of the series' shape with a word where the number goes ({@code job.final.gbw},
     * {@code job.recovered-1764672000.gbw}): never a version file name, so numbering ignores it.
     */
    public static String taggedName(String series, String tag) {
        String[] se = split(baseOf(series));
        return folderOf(series) + se[0] + '.' + tag + se[1];
    }

    /**
     * A name in {@code series}' shape for a file kept because it is not, or no longer, where it
     * belongs ({@code job.recovered-1764672000.gbw}, {@code job.000003.not-a-version-1764672000.gbw}):
     * never a version file name, so numbering ignores it; the time in seconds keeps two runs'
     * files apart.
     */
    public static String keptName(String series, String tag) {
        return taggedName(series, tag + "-" + System.currentTimeMillis() / 1000);
    }

    /**
     * If {@code candidate} (a name in the series' folder) is a version file of {@code series}, its
     * number. Digit runs beyond {@link #MAX_NUMBER} are not ours (a stray {@code job.99999999999.gbw}
     * must not push numbering into overflow) and give empty.
     */
    public static OptionalLong parse(String series, String candidate) {
        String[] se = split(baseOf(series));
        int from = se[0].length() + 1, to = candidate.length() - se[1].length();
        if (to - from < DIGITS || !candidate.startsWith(se[0]) || candidate.charAt(se[0].length()) != '.'
                || !candidate.endsWith(se[1])) {
            return OptionalLong.empty();
        }
        if (to - from > 9) return OptionalLong.empty();
        long n = 0;
        for (int i = from; i < to; i++) {
            char c = candidate.charAt(i);
            if (c < '0' || c > '9') return OptionalLong.empty();
            n = n * 10 + (c - '0');
        }
        return n <= MAX_NUMBER ? OptionalLong.of(n) : OptionalLong.empty();
    }

    private static final java.util.regex.Pattern ANY_VERSION = java.util.regex.Pattern.compile(".*\\.\\d{6,9}(\\.[^.]*)?");
    private static final java.util.regex.Pattern NUMBER_PART = java.util.regex.Pattern.compile("\\.\\d{6,9}(?=(\\.[^.]*)?$)");

    /** Whether {@code name} looks like a version file of some series ({@code STEM.NNNNNN[.EXT]}). */
    public static boolean isVersionFileName(String name) {
        return ANY_VERSION.matcher(name).matches();
    }

    /** The series name a version file name belongs to, when nothing better is known: the number taken out. */
    public static String seriesOfFileName(String name) {
        return NUMBER_PART.matcher(name).replaceAll("");
    }
}
