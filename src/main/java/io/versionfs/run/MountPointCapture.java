package io.versionfs.run;

import io.versionfs.capture.TargetMatcher;
import io.versionfs.capture.Targets;
import io.versionfs.capture.VersionStore;
import io.versionfs.fs.CaptureFs;
import io.versionfs.fs.FuseMount;
import io.versionfs.report.Summary;
import io.versionfs.sys.Posix;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * {@code versionfs mount}: one versions folder served at a mount point the user gave; the program
 * writes MOUNTPOINT/NAME. The live files are in the versions folder's hidden live folder, so
 * nothing is put back at the end.
 */
final class MountPointCapture implements Capture {
    private final List<String> names;
    private final Path versionsDir;
    private final Path mountPoint;
    private final StoreRules rules;
    private final Instant start;
    private VersionStore store;
    private CaptureFs fs;
    private FuseMount mount;

    /** @param names file names or globs (never paths) to version in the mount */
    MountPointCapture(List<String> names, Path versionsDir, Path mountPoint, StoreRules rules, Instant start) {
        this.names = names;
        this.versionsDir = versionsDir.toAbsolutePath().normalize();
        this.mountPoint = mountPoint;
        this.rules = rules;
        this.start = start;
    }

    @Override
    public void prepare(Cleanup undo) {
        // The same lock a run takes: two writers of one versions folder would number over each other.
        // (Where its parent is missing, openChecked says so: mount does not create folders above it.)
        Path vdir = versionsDir.toAbsolutePath().normalize();
        if (vdir.getParent() != null && java.nio.file.Files.isDirectory(vdir.getParent())) RunLock.takeVersionsFolder(vdir, undo);
        store = VersionStore.openChecked(versionsDir, start);
        undo.push("close " + versionsDir, store::close);
        rules.apply(store);
    }

    @Override
    public void mount(Cleanup undo, Runnable betweenTargets) throws IOException {
        int rootFd = Posix.openDir(store.liveDir().toString());
        undo.push("close " + store.liveDir(), () -> Posix.C.close(rootFd));
        fs = new CaptureFs(rootFd, new Targets().add(new TargetMatcher(names), store, null));
        mount = FuseMount.mount(fs, mountPoint);
    }

    /** The mount point as mounted (absolute). */
    Path mountPoint() {
        return mount.mountPoint();
    }

    /** False once someone ran fusermount -u on the mount. */
    boolean mounted() {
        return mount != null && mount.isAlive();
    }

    @Override
    public void stopWaits() {
        if (fs != null) fs.stop();
    }

    @Override
    public void finish(LongSupplier detachBudgetMillis) {
        if (mount != null) mount.finish(5_000, detachBudgetMillis.getAsLong());
    }

    @Override
    public List<VersionStore> stores() {
        return store == null ? List.of() : List.of(store);
    }

    /** Nothing to say besides the versions (drained with the hooks). */
    @Override
    public void takeNotes() {}

    @Override
    public void report(Summary summary) {
        summary.put("mount", mount.mountPoint().toString()).put("live", store.liveDir().toString());
        String vdir = versionsDir.toString(), manifest = store.manifestPath().toString();
        store.versions().forEach((file, vs) -> summary.add(new Summary.FileReport(file, vdir, manifest, vs, List.of())));
        if (store.versions().isEmpty()) summary.add(new Summary.FileReport(String.join(", ", names), vdir, manifest, null, List.of()));
    }

    int lostCount() {
        return store.lostCount();
    }
}
