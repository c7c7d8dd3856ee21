package io.versionfs.run;

import io.versionfs.capture.ManifestMerge;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The per-node counts of a job on several nodes: a dead agent's manifest is counted, its later closes only said. */
class NodeCountsTest {
    private static final Instant T = Instant.parse("2026-12-07T08:00:00Z");

    private static ManifestMerge.Result result() {
        return new ManifestMerge.Result(9, Map.of("b", new ManifestMerge.HostCount(3, 0, T),
                "n1", new ManifestMerge.HostCount(5, 1, T.plusSeconds(60)),
                "n2", new ManifestMerge.HostCount(2, 0, T.plusSeconds(30))));
    }

    @Test
    void aNodeWhoseAgentStoppedEarlyHasItsManifestCountedAndItsLaterClosesSaidNotCounted() {
        Map<String, Agents.NodeState> states = Map.of("n1", Agents.NodeState.DONE, "n2", Agents.NodeState.GONE,
                "n3", Agents.NodeState.GONE);
        List<String> notes = NodeCounts.notes(states, result());
        assertEquals(2, notes.size(), notes.toString());
        assertTrue(notes.get(0).contains("node n2's agent stopped early, after its last manifest line at 2026-12-07T08:00:30Z")
                && notes.get(0).contains("holds 2 saved version(s), all listed") && notes.get(0).contains("cannot be counted"), notes.get(0));
        assertTrue(notes.get(1).contains("node n3's agent stopped early, before it wrote any manifest line: its manifest holds 0"), notes.get(1));

        List<Map<String, Object>> json = NodeCounts.json("b", states, List.of(result()));
        assertEquals(List.of("b", "n1", "n2", "n3"), json.stream().map(m -> m.get("node")).toList());
        assertEquals("batch", json.get(0).get("agent"));
        assertEquals(5, json.get(1).get("saved"));
        assertEquals(1, json.get(1).get("lost"));
        assertNull(json.get(1).get("closes_after_stop"), "a node whose agent ran to the end missed nothing");
        assertEquals("gone", json.get(2).get("agent"));
        assertEquals("2026-12-07T08:00:30Z", json.get(2).get("last_line"));
        assertEquals("not versioned, not counted", json.get(2).get("closes_after_stop"));
    }
}
