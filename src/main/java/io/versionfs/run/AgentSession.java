package io.versionfs.run;

import io.versionfs.capture.NodeNumbering;
import io.versionfs.capture.Targets;
import io.versionfs.capture.Hooks;
import io.versionfs.capture.VersionStore;
import io.versionfs.fs.CaptureFs;
import io.versionfs.fs.FuseMount;
import io.versionfs.fs.FuseSupport;
import io.versionfs.text.Json;
import io.versionfs.text.Log;
import io.versionfs.sys.Posix;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code versionfs agent} (hidden): on one node of a job that is not the batch node, mounts each
 * target's live folder at the same path as the batch node did, so the symlink at the target (on
 * the shared filesystem) leads into a mount on this node too; every close after a write here is
 * a version, copied and numbered by link() ({@link NodeNumbering}), listed in this node's own
 * manifest. Says it is ready with a file in the control folder; ends on the batch node's stop file
 * there (or TERM/INT: {@code scancel --signal=TERM}), unmounts, and leaves a done file with its counts.
 */
public final class AgentSession {
    private final Path control;
    private final String node = SlurmContext.current().nodeName();
    private final Map<Path, VersionStore> stores = new LinkedHashMap<>();
    private final List<FuseMount> mounts = new ArrayList<>();
    private final List<Integer> fds = new ArrayList<>();
    private final CountDownLatch stop = new CountDownLatch(1);
    /**
     * How long this node's pending --on-version commands get at the end: within the batch node's
     * wait for a quiet stop (Agents.STOP_FILE_MILLIS); what is left is said (this node's stderr)
     * and can be run later with 'versionfs hook'.
     */
    private static final long HOOKS_MILLIS = 5_000;

    public AgentSession(Path control) {
        this.control = control;
    }

    public int execute() throws IOException, InterruptedException {
        AgentPlan plan = AgentPlan.read(control);
        Signals.install(sig -> stop.countDown());
        try {
            FuseSupport.check();
            for (AgentPlan.Serve s : plan.serves()) serve(s);
            AgentPlan.writeWhole(plan.file(AgentPlan.State.READY, node), Json.obj().put("node", node)
                    .put("pid", ProcessHandle.current().pid()).put("step", SlurmContext.current().stepId()).toString());
            // Ends on the batch node's stop file (a quiet end of the step), TERM/INT, or a mount gone.
            while (stop.getCount() > 0 && mounts.stream().allMatch(FuseMount::isAlive) && !Files.exists(plan.stopFile())) {
                stop.await(200, TimeUnit.MILLISECONDS);
            }
        } finally {
            end(plan);
        }
        return 0;
    }

    /** Opens the target's versions folder as this node and mounts its live folder at the batch node's mount point path. */
    private void serve(AgentPlan.Serve s) throws IOException {
        VersionStore store = stores.get(s.versionsDir());
        if (store == null) {
            store = VersionStore.openOnNode(s.versionsDir(), Instant.now(), new NodeNumbering(node));
            if (s.onVersion() != null) store.hooks(new Hooks(s.onVersion(), s.onVersionJobs(), s.versionsDir()));
            stores.put(s.versionsDir(), store);
        }
        Files.createDirectories(s.mountPoint().getParent(),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        if (!Files.isDirectory(s.mountPoint())) Files.createDirectory(s.mountPoint());
        int rootFd = Posix.openDir(s.liveDir().toString());
        fds.add(rootFd);
        CaptureFs fs = new CaptureFs(rootFd, new Targets().addFile(s.liveRel(), store, s.series()));
        mounts.add(FuseMount.mountAcrossNodes(fs, s.mountPoint(), ""));
    }

    /** Unmounts (a last version of changes never closed), closes the folders, says what it saved. */
    private void end(AgentPlan plan) throws IOException {
        for (FuseMount m : mounts) {
            try {
                m.finish(5_000, 15_000);
            } catch (RuntimeException e) {
                Log.warn("agent on " + node + ": unmounting " + m.mountPoint() + ": " + e);
            }
        }
        int saved = 0, lost = 0;
        long hooksUntil = System.currentTimeMillis() + HOOKS_MILLIS;
        for (VersionStore s : stores.values()) {
            s.publishRemaining();
            s.drain(); // every hashed version has its hook queued
            if (s.hooks() != null) s.hooks().finish(hooksUntil - System.currentTimeMillis());
            saved += s.versions().values().stream().mapToLong(v -> v.saved()).sum();
            lost += s.lostCount();
            s.close();
        }
        fds.forEach(Posix.C::close);
        for (AgentPlan.Serve s : plan.serves()) removeEmpty(s.mountPoint());
        if (!plan.serves().isEmpty()) removeEmpty(plan.serves().get(0).mountPoint().getParent());
        AgentPlan.writeWhole(plan.file(AgentPlan.State.DONE, node),
                Json.obj().put("node", node).put("saved", saved).put("lost", lost).toString());
    }

    private static void removeEmpty(Path dir) {
        try {
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            Log.debug("leaving " + dir + ": " + e.getMessage());
        }
    }
}
