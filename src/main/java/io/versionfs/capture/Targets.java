package io.versionfs.capture;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * Which names in a captured folder are versioned, and into which versions folder each goes.
 * Names that match nothing are passed through untouched. A rule either sends every match to one
 * folder, or makes a folder per matching file on first use (a glob in directory mode: each
 * {@code x.xyz} gets {@code x.xyz.versions/}).
 */
public final class Targets {
    private record Rule(TargetMatcher matcher, Function<String, VersionStore> stores) {}

    private final List<Rule> rules = new ArrayList<>();
    private final Map<String, VersionStore> opened = new ConcurrentHashMap<>();

    /** Every file matching {@code matcher} is versioned into {@code store}. */
    public Targets add(TargetMatcher matcher, VersionStore store) {
        opened.put("fixed:" + store.dir(), store);
        rules.add(new Rule(matcher, rel -> store));
        return this;
    }

    /** Every file matching {@code matcher} gets its own store, opened by {@code open(relPath)} on first use. */
    public Targets addPerFile(TargetMatcher matcher, Function<String, VersionStore> open) {
        rules.add(new Rule(matcher, rel -> opened.computeIfAbsent("file:" + rel, k -> open.apply(rel))));
        return this;
    }

    /** The versions folder for {@code relPath}, or null when the file is not a target. */
    public VersionStore storeFor(String relPath) {
        for (Rule r : rules) if (r.matcher.matches(relPath)) return r.stores.apply(relPath);
        return null;
    }

    /** Every store opened so far. */
    public List<VersionStore> stores() {
        return opened.values().stream().distinct().toList();
    }
}
