package io.versionfs.capture;

import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Names of version files: {@code job.gbw} version 3 is {@code job.000003.gbw}. The extension stays
 * last so tools still recognise the file type, and the number is zero-padded to six digits so
 * that plain lexical order ({@code ls}, shell globs) is capture order for up to a million
 * versions, which a week-long job rewriting every second stays under.
 */
public final class VersionNaming {
    public static final int DIGITS = 6;

    private VersionNaming() {}

    /** Splits {@code name} into stem and extension (with its dot); dot-files have no extension. */
    static String[] split(String name) {
        int dot = name.lastIndexOf('.');
        if (dot <= 0) return new String[] {name, ""};
        return new String[] {name.substring(0, dot), name.substring(dot)};
    }

    public static String versionName(String fileName, long number) {
        String[] se = split(fileName);
        return se[0] + "." + String.format("%0" + DIGITS + "d", number) + se[1];
    }

    /** If {@code candidate} is a version file of {@code fileName}, its number. */
    public static OptionalInt parse(String fileName, String candidate) {
        String[] se = split(fileName);
        Pattern p = Pattern.compile(Pattern.quote(se[0]) + "\\.(\\d{" + DIGITS + ",})" + Pattern.quote(se[1]));
        Matcher m = p.matcher(candidate);
        if (!m.matches()) return OptionalInt.empty();
        return OptionalInt.of(Integer.parseInt(m.group(1)));
    }
}
