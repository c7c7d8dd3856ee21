package io.versionfs.run;

import io.versionfs.capture.NodeNumbering;
import io.versionfs.text.Json;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What the batch node asks of the agents on the other nodes of its job, written once as
 * {@code agents.json} in the control folder ({@code VERSIONS/.versionfs/nodes/job-JOBID/}, on the
 * shared filesystem), where the agents also leave their ready, done and gone files.
 */
record AgentPlan(String jobId, String batchNode, List<String> others, Path control, List<Serve> serves) {

    /** One target as an agent serves it: the same mount point path as on the batch node, the same live file. */
    /** {@code onVersion}: the run's --on-version command (null: none), run by each agent for its node's versions. */
    record Serve(Path versionsDir, Path liveDir, String liveRel, String series, Path mountPoint, Path target,
                 String onVersion, int onVersionJobs) {
        Map<String, Object> toMap() {
            Json.Obj o = Json.obj().put("versions_dir", versionsDir.toString()).put("live_dir", liveDir.toString())
                    .put("live_rel", liveRel).put("series", series).put("mount", mountPoint.toString())
                    .put("target", target.toString());
            if (onVersion != null) o.put("on_version", onVersion).put("on_version_jobs", onVersionJobs);
            return o.asMap();
        }

        static Serve of(Map<?, ?> m) {
            Object jobs = m.get("on_version_jobs");
            return new Serve(Path.of((String) m.get("versions_dir")), Path.of((String) m.get("live_dir")),
                    (String) m.get("live_rel"), (String) m.get("series"), Path.of((String) m.get("mount")),
                    Path.of((String) m.get("target")), (String) m.get("on_version"), jobs == null ? 1 : ((Number) jobs).intValue());
        }
    }

    static final String FILE = "agents.json";

    /** The control folder of job {@code jobId} in the versions folder {@code vdir}. */
    static Path controlIn(Path vdir, String jobId) {
        return vdir.resolve(NodeNumbering.NODES).resolve("job-" + jobId);
    }

    /** A node's file in the control folder: ready.NODE, done.NODE, gone.NODE. */
    Path file(State kind, String node) {
        return control.resolve(kind.prefix + node);
    }

    /** The batch node's word to every agent to end (they poll for it). */
    Path stopFile() {
        return control.resolve(STOP);
    }

    static final String STOP = "stop";

    /** The files an agent leaves, by what they say. */
    enum State {
        READY("ready."), DONE("done."), GONE("gone.");

        final String prefix;

        State(String prefix) {
            this.prefix = prefix;
        }
    }

    void write() throws IOException {
        Files.createDirectories(control);
        List<Object> s = new ArrayList<>();
        for (Serve v : serves) s.add(v.toMap());
        String text = Json.obj().put("job", jobId).put("batch_node", batchNode).put("others", others).put("serves", s).toString();
        Path tmp = control.resolve(FILE + ".tmp");
        Files.writeString(tmp, text, StandardCharsets.UTF_8);
        Files.move(tmp, control.resolve(FILE), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    @SuppressWarnings("unchecked")
    static AgentPlan read(Path control) throws IOException {
        Map<String, Object> m = Json.parseObject(Files.readString(control.resolve(FILE)));
        List<Serve> serves = new ArrayList<>();
        for (Object o : (List<Object>) m.get("serves")) serves.add(Serve.of((Map<?, ?>) o));
        return new AgentPlan((String) m.get("job"), (String) m.get("batch_node"), (List<String>) m.get("others"),
                control, serves);
    }

    /** Writes {@code text} to {@code p} whole (a temp name, then rename): readers on other nodes never see half. */
    static void writeWhole(Path p, String text) throws IOException {
        Path tmp = p.resolveSibling(p.getFileName() + ".tmp");
        Files.writeString(tmp, text, StandardCharsets.UTF_8);
        Files.move(tmp, p, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
