package io.versionfs.run;

import io.versionfs.capture.ManifestMerge;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What the summary says per node of a job on several nodes, from the merged manifests: what each
 * node's versionfs saved, and, for a node whose agent ended early, what is known and what is
 * not. Honest by construction: the versions its manifest holds are counted (they are lines on
 * the shared filesystem); closes made on that node after its agent stopped went straight to the
 * live file, and no versionfs process saw them, so they are said, never counted.
 */
final class NodeCounts {
    private NodeCounts() {}

    /** One note per node whose agent did not run to the end. */
    static List<String> notes(Map<String, Agents.NodeState> states, ManifestMerge.Result r) {
        List<String> out = new ArrayList<>();
        for (Map.Entry<String, Agents.NodeState> e : new TreeMap<>(states).entrySet()) {
            if (e.getValue() != Agents.NodeState.GONE) continue;
            String node = e.getKey();
            ManifestMerge.HostCount c = r.byHost().getOrDefault(node, new ManifestMerge.HostCount(0, 0, null));
            out.add("note: node " + node + "'s agent stopped early, " + (c.lastLine() != null ? "after its last manifest line at "
                    + c.lastLine() : "before it wrote any manifest line") + ": its manifest holds " + c.saved()
                    + " saved version(s)" + (c.lost() > 0 ? " and " + c.lost() + " lost" : "") + ", all listed; closes on "
                    + node + " after it stopped were not versioned and cannot be counted (no versionfs process saw them)");
        }
        return out;
    }

    /** --json's "nodes": one object per node (the batch node first), summed over the versions folders. */
    static List<Map<String, Object>> json(String batch, Map<String, Agents.NodeState> states, Collection<ManifestMerge.Result> results) {
        Map<String, String> agent = new LinkedHashMap<>();
        agent.put(batch, "batch");
        new TreeMap<>(states).forEach((n, s) -> agent.put(n, s.name().toLowerCase().replace('_', '-')));
        List<Map<String, Object>> out = new ArrayList<>();
        for (Map.Entry<String, String> e : agent.entrySet()) {
            int saved = 0, lost = 0;
            java.time.Instant last = null;
            for (ManifestMerge.Result r : results) {
                ManifestMerge.HostCount c = r.byHost().get(e.getKey());
                if (c == null) continue;
                saved += c.saved();
                lost += c.lost();
                if (c.lastLine() != null && (last == null || c.lastLine().isAfter(last))) last = c.lastLine();
            }
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("node", e.getKey());
            m.put("agent", e.getValue());
            m.put("saved", saved);
            m.put("lost", lost);
            m.put("last_line", last == null ? null : last.toString());
            // After an agent stopped early its node's closes reach the live file unseen: unknown, not zero.
            m.put("closes_after_stop", e.getValue().equals("gone") ? "not versioned, not counted" : null);
            out.add(m);
        }
        return out;
    }
}
