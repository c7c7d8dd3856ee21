package io.versionfs.capture;

import java.nio.file.FileSystems;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.ArrayList;
import java.util.List;

/**
 * Decides which file names are versioned: exact names ({@code job.gbw}) or glob patterns
 * ({@code *.gbw}, {@code step?.xyz}). Names are relative to the captured folder; patterns do not
 * cross folders (a {@code *} never matches {@code /}), so {@code *.gbw} means the top level only.
 */
public final class TargetMatcher {
    private final List<String> exact = new ArrayList<>();
    private final List<PathMatcher> globs = new ArrayList<>();
    private final List<String> patterns;

    public TargetMatcher(List<String> patterns) {
        this.patterns = List.copyOf(patterns);
        for (String p : patterns) {
            if (isGlob(p)) globs.add(FileSystems.getDefault().getPathMatcher("glob:" + p));
            else exact.add(p);
        }
    }

    /** A pattern that matches exactly {@code name}, even one with glob characters ({@code job[1].gbw}). */
    public static String literal(String name) {
        if (!isGlob(name) && name.indexOf('\\') < 0) return name;
        StringBuilder b = new StringBuilder();
        for (char c : name.toCharArray()) {
            if ("*?[]{}\\".indexOf(c) >= 0) b.append('\\');
            b.append(c);
        }
        return b.toString();
    }

    public static boolean isGlob(String pattern) {
        return pattern.chars().anyMatch(c -> c == '*' || c == '?' || c == '[' || c == '{');
    }

    /** @param relPath path relative to the captured folder, without a leading slash */
    public boolean matches(String relPath) {
        if (exact.contains(relPath)) return true;
        if (globs.isEmpty() || relPath.isEmpty() || relPath.equals(".")) return false;
        Path p = Path.of(relPath);
        for (PathMatcher m : globs) if (m.matches(p)) return true;
        return false;
    }

    public List<String> patterns() {
        return patterns;
    }
}
