package io.versionfs.capture;

import java.util.ArrayList;
import java.util.List;

/**
 * Which names in a captured folder are versioned, and into which versions folder each goes.
 * Names that match nothing are passed through untouched.
 */
public final class Targets {
    private record Rule(TargetMatcher matcher, VersionStore store) {}

    private final List<Rule> rules = new ArrayList<>();

    public Targets add(TargetMatcher matcher, VersionStore store) {
        rules.add(new Rule(matcher, store));
        return this;
    }

    /** The versions folder for {@code relPath}, or null when the file is not a target. */
    public VersionStore storeFor(String relPath) {
        for (Rule r : rules) if (r.matcher.matches(relPath)) return r.store;
        return null;
    }

    public List<VersionStore> stores() {
        return rules.stream().map(Rule::store).distinct().toList();
    }
}
