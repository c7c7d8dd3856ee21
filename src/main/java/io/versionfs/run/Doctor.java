package io.versionfs.run;

import io.versionfs.text.Bytes;
import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import io.versionfs.fs.FuseSupport;
import io.versionfs.fs.MountTable;
import io.versionfs.sys.Errno;
import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;

import java.io.IOException;
import java.nio.file.FileStore;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * {@code versionfs doctor}: everything a run needs, checked as the calling user, each with its
 * result and the fix. The FUSE checks are the ones {@code run} makes (same code), and the test
 * mount is a real mount made by the code {@code run} uses, in the folder {@code run} would use.
 */
public final class Doctor {
    public enum Status { OK, INFO, WARN, FAIL }

    /** One row: what was checked, what was found, and (if not ok) what to do; code = exit code if it fails. */
    public record Check(String name, Status status, String result, String fix, int code) {}

    private final Path versionsDir;
    private final Path mountDir;
    private final SlurmContext slurm;
    private final List<Check> checks = new ArrayList<>();
    /** Inside an allocation of several nodes: run the checks on every node too (not in the per-node run itself). */
    private final boolean everyNode;
    private List<NodeChecks.NodeResult> nodeResults = List.of();
    /** Seconds the test mount (mount, probe, unmount) may take before it is given up and cleared. */
    static final long MOUNT_DEADLINE_SECONDS = Long.getLong("versionfs.doctorMountSeconds", 40);

    public Doctor(Path versionsDir, Path mountDir, SlurmContext slurm) {
        this(versionsDir, mountDir, slurm, false);
    }

    /** @param everyNode inside a job on several nodes, check every node of it (one step) */
    public Doctor(Path versionsDir, Path mountDir, SlurmContext slurm, boolean everyNode) {
        this.versionsDir = versionsDir;
        this.mountDir = mountDir;
        this.slurm = slurm;
        this.everyNode = everyNode;
    }

    /** One node's answer in a job on several nodes, for --json: the node, its exit code, its failed and warned checks. */
    public record NodeAnswer(String node, int exit, List<Check> problems) {}

    /** Every node's answer (empty unless this ran on several nodes). */
    public List<NodeAnswer> nodes() {
        return nodeResults.stream().map(r -> new NodeAnswer(r.node(), r.exit(), r.problems())).toList();
    }

    public List<Check> run() {
        java();
        boolean fuseOk = devFuse() & fusermount() & libfuse();
        testMount(fuseOk);
        nameTrap();
        versionsFilesystem();
        slurm();
        if (everyNode && slurm.jobId() != null && slurm.nodes() > 1) everyNode();
        return checks;
    }

    /** Inside a job on several nodes: the same checks on every node, one row each. */
    private void everyNode() {
        if (slurm.nodeList() == null) {
            add("every node", Status.WARN, "not checked: SLURM_JOB_NODELIST is not set", "run doctor inside the job's"
                    + " allocation (a line of the batch script, or srun --pty versionfs doctor in salloc)", 0);
            return;
        }
        nodeResults = NodeChecks.run(slurm, versionsDir, mountDir);
        nodeResults.forEach(r -> checks.add(NodeChecks.row(r)));
    }

    /** Whether the job's renames can be held (symlink mode's default); without it they are followed after the fact. */
    private void nameTrap() {
        Path scratch = null;
        try {
            scratch = Files.createTempDirectory(Preflight.privateDir(mountDir), "trap");
            TrapCheck.Result r = TrapCheck.probe(scratch);
            if (r.works()) add("syscall trap", Status.OK, r.detail(), null, 0);
            else add("syscall trap", Status.WARN, r.detail() + ": renames of targets are followed after the fact",
                    "ask for seccomp user notification (Linux 5.5+, CONFIG_SECCOMP_FILTER, not disabled by the container"
                            + " runtime), or use --mode dir for jobs that save by rename", 0);
        } catch (IOException | RuntimeException e) {
            add("syscall trap", Status.WARN, "could not be tried: " + e.getMessage(), null, 0);
        } finally {
            if (scratch != null) deleteTree(scratch.getParent());
        }
    }

    /** 0 if every check passed (warnings allowed), else the exit code of the first that failed. */
    public static int exitCode(List<Check> checks) {
        for (Check c : checks) if (c.status == Status.FAIL) return c.code;
        return ExitCodes.OK;
    }

    private void add(String name, Status s, String result, String fix, int code) {
        checks.add(new Check(name, s, result, fix, code));
    }

    private static boolean isRoot() {
        return FuseSupport.isRoot();
    }

    private static String user() {
        return System.getProperty("user.name") + " (uid " + Posix.C.getuid() + ")";
    }

    // ---- the checks ---------------------------------------------------------------------------

    private void java() {
        Runtime.Version v = Runtime.version();
        String where = System.getProperty("java.home");
        if (v.feature() >= 17) {
            add("java", Status.OK, "Java " + v + " (" + where + ")", null, 0);
        } else {
            add("java", Status.FAIL, "Java " + v + " (" + where + "): versionfs needs 17 or newer",
                    "load a JDK 17+ (module load java/17) or set JAVA_HOME", ExitCodes.INTERNAL);
        }
    }

    private boolean devFuse() {
        Path dev = FuseSupport.devFuse();
        String name = dev.toString();
        if (!Files.exists(dev)) {
            add(name, Status.FAIL, "does not exist: no FUSE on this node (or container)",
                    "admins: load the fuse kernel module (modprobe fuse) on every compute node", ExitCodes.NO_FUSE);
            return false;
        }
        String mode = modeString(dev);
        if (!Files.isReadable(dev) || !Files.isWritable(dev)) {
            add(name, Status.FAIL, "present (" + mode + ") but not readable and writable by " + user(),
                    "admins: chmod 0666 " + dev + " on every compute node (crw-rw-rw-, as most distributions ship it)",
                    ExitCodes.NO_FUSE);
            return false;
        }
        add(name, Status.OK, "present, readable and writable by " + user() + " (" + mode + ")", null, 0);
        return true;
    }

    /**
     * libfuse2 runs {@code /bin/fusermount}, else {@code fusermount} on PATH: an ordinary user
     * mounts only through it, so it must be setuid root. fusermount3 does the job under that name.
     */
    private boolean fusermount() {
        Optional<Path> byName = Files.isExecutable(Path.of("/bin/fusermount")) ? Optional.of(Path.of("/bin/fusermount"))
                : FuseSupport.onPath("fusermount");
        if (byName.isEmpty()) {
            Optional<Path> three = FuseSupport.onPath("fusermount3");
            add("fusermount", Status.FAIL, three.isPresent()
                            ? "no 'fusermount', only " + three.get() + ": libfuse2 runs fusermount by that name"
                            : "not found (neither /bin/fusermount nor fusermount on PATH)",
                    three.isPresent()
                            ? "admins: ln -s fusermount3 " + three.get().resolveSibling("fusermount")
                              + " (Debian 12's fuse3 package ships this link; older packages do not)"
                            : "admins: install it (Debian/Ubuntu: apt-get install fuse3; RHEL: dnf install fuse)",
                    ExitCodes.NO_FUSE);
            return false;
        }
        Path p = byName.get();
        Path real;
        try {
            real = p.toRealPath();
        } catch (IOException e) {
            real = p;
        }
        String shown = real.equals(p) ? p.toString() : p + " -> " + real;
        int mode = 0, uid = -1;
        try {
            mode = (Integer) Files.getAttribute(real, "unix:mode");
            uid = (Integer) Files.getAttribute(real, "unix:uid");
        } catch (IOException | RuntimeException e) {
            // unknown: judged below
        }
        boolean setuidRoot = (mode & 04000) != 0 && uid == 0;
        if (!setuidRoot && !isRoot()) {
            add("fusermount", Status.FAIL, shown + " is not setuid root (" + permString(mode)
                            + "): ordinary users cannot mount with it",
                    "admins: chown root " + real + " && chmod u+s " + real, ExitCodes.NO_FUSE);
            return false;
        }
        add("fusermount", Status.OK, shown + (setuidRoot ? ", setuid root" : " (you are root: setuid not needed)"), null, 0);
        return true;
    }

    private boolean libfuse() {
        String err = FuseSupport.libfuseLoadError();
        if (err != null) {
            add("libfuse2", Status.FAIL, "libfuse.so.2 cannot be loaded (" + err + ")",
                    "admins: install libfuse2 (Debian/Ubuntu: apt-get install libfuse2; RHEL: dnf install fuse-libs)",
                    ExitCodes.NO_FUSE);
            return false;
        }
        add("libfuse2", Status.OK, "libfuse.so.2 loads", null, 0);
        return true;
    }

    /**
     * A real mount of an empty folder, with the options and code of {@code run}, in the folder a run
     * would put its mount in: write and read a file through it, unmount, remove everything. Bounded
     * by a deadline; whatever happens, the mount is undone and the folder removed.
     */
    private void testMount(boolean fuseOk) {
        String name = "test mount";
        if (!fuseOk) {
            add(name, Status.FAIL, "not tried: the FUSE checks above failed", "fix those first", ExitCodes.NO_FUSE);
            return;
        }
        Path priv;
        try {
            priv = Preflight.privateDir(mountDir);
        } catch (UserError e) {
            add(name, Status.FAIL, e.getMessage(), "give --mount-dir a local folder you can write (run takes the same option)",
                    ExitCodes.MOUNT_FAILED);
            return;
        } catch (IOException e) {
            add(name, Status.FAIL, "cannot create a private folder for the mount: " + e.getMessage(),
                    "make $TMPDIR (or /tmp) writable, or pass --mount-dir DIR", ExitCodes.MOUNT_FAILED);
            return;
        }
        long t0 = System.nanoTime();
        try (MountProbe probe = new MountProbe(priv)) {
            String problem = probe.run(MOUNT_DEADLINE_SECONDS);
            long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - t0);
            if (problem == null) {
                add(name, Status.OK, "mounted, wrote and read a file, unmounted in " + ms + " ms (in " + priv.getParent() + ")",
                        null, 0);
            } else {
                add(name, Status.FAIL, "in " + priv.getParent() + ": " + problem,
                        "see the lines libfuse/fusermount printed on stderr; admins: check that users can mount FUSE"
                        + " on this node (fusermount setuid, /dev/fuse 0666, /etc/fuse.conf mount_max)",
                        ExitCodes.MOUNT_FAILED);
            }
        } catch (IOException e) {
            add(name, Status.FAIL, "cannot prepare " + priv.resolve("m0") + ": " + e.getMessage(),
                    "pass --mount-dir DIR (a local folder you can write)", ExitCodes.MOUNT_FAILED);
        }
    }

    /**
     * The filesystem the versions go to (and the live copy of the target while a job runs): its
     * type, whether hard links and reflinks work there, and the free space.
     */
    private void versionsFilesystem() {
        Path dir = (versionsDir != null ? versionsDir : Path.of("")).toAbsolutePath().normalize();
        Path existing = dir;
        while (existing != null && !Files.isDirectory(existing)) existing = existing.getParent();
        String label = versionsDir != null ? "versions folder" : "versions (here)";
        if (existing == null) {
            add(label, Status.FAIL, "no existing folder above " + dir, "give --versions-dir an existing place", ExitCodes.VERSIONS_DIR);
            return;
        }
        String at = existing.equals(dir) ? dir.toString() : dir + " (to be created in " + existing + ")";
        MountTable.Entry fs = filesystemOf(existing);
        String type = fs == null ? "unknown type" : fs.fsType() + " (" + fs.source() + " on " + fs.mountPoint() + ")";
        if (!Files.isWritable(existing)) {
            add(label, Status.FAIL, at + " on " + type + ": not writable by " + user(),
                    "run in (or pass --versions-dir) a folder you can write: submit folder, home, project space",
                    ExitCodes.VERSIONS_DIR);
            return;
        }
        add("versions filesystem", fs != null && isNodeLocal(existing, fs) && slurm.jobId() != null ? Status.WARN : Status.OK,
                at + ": " + type + (fs != null && isNodeLocal(existing, fs) ? ", node-local" : ""),
                fs != null && isNodeLocal(existing, fs) && slurm.jobId() != null
                        ? "node-local scratch is often wiped when the job ends: keep versions in the submit folder, home or"
                          + " project space (--versions-dir \"$SLURM_SUBMIT_DIR/NAME.versions\")" : null, 0);
        Path probe = null;
        try {
            probe = Files.createTempDirectory(existing, ".versionfs-doctor-");
            linksAndReflinks(probe);
        } catch (IOException e) {
            boolean full = Errno.isNoSpace(e);
            add("write test", Status.FAIL, "cannot write in " + existing + ": " + e.getMessage(),
                    full ? "free space (or quota) on that filesystem" : "run in a folder you can write",
                    full ? ExitCodes.NO_SPACE : ExitCodes.VERSIONS_DIR);
        } finally {
            if (probe != null) deleteTree(probe);
        }
        space(existing);
    }

    private void linksAndReflinks(Path probe) throws IOException {
        Path a = probe.resolve("a"), b = probe.resolve("b"), c = probe.resolve("c");
        Files.write(a, new byte[8192]);
        try {
            Files.createLink(b, a);
            add("hard links", Status.OK, "work: a version is saved in O(1), whatever the file's size", null, 0);
        } catch (IOException | UnsupportedOperationException e) {
            add("hard links", Status.WARN, "do not work here (" + e.getMessage() + "): every version is a full copy,"
                    + " made inside the program's close()", "keep the versions on a local POSIX filesystem (ext4, XFS, Lustre,"
                    + " GPFS) with the target, not across filesystems", 0);
        }
        int src = Posix.C.openat(LibC.AT_FDCWD, a.toString(), LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
        int dst = Posix.C.openat(LibC.AT_FDCWD, c.toString(), LibC.O_WRONLY | LibC.O_CREAT | LibC.O_CLOEXEC, 0600);
        try {
            if (src < 0 || dst < 0) throw new IOException("open for the reflink test: " + Posix.strerror(Posix.errno()));
            boolean ok = Posix.C.ioctl(dst, LibC.FICLONE, src) == 0;
            String why = ok ? null : Posix.strerror(Posix.errno());
            add("reflinks", Status.INFO, ok ? "work (FICLONE): copies share blocks, versions of edited files cost little"
                    : "not available (" + why + "): each separated version costs its full size on disk (normal on ext4)",
                    null, 0);
        } finally {
            if (src >= 0) Posix.C.close(src);
            if (dst >= 0) Posix.C.close(dst);
        }
    }

    private void space(Path existing) {
        try {
            FileStore st = Files.getFileStore(existing);
            long free = st.getUsableSpace(), total = st.getTotalSpace();
            String s = Bytes.of(free) + " free of " + Bytes.of(total);
            if (free < (1L << 30)) {
                add("free space", Status.WARN, s + ": versions of a large file will be skipped (--min-free)",
                        "free space, or put the versions elsewhere (--versions-dir)", 0);
            } else {
                add("free space", Status.OK, s + " (default headroom kept free: 5%, at most 10G; --min-free)", null, 0);
            }
        } catch (IOException e) {
            add("free space", Status.WARN, "unknown (" + e.getMessage() + ")", null, 0);
        }
    }

    private void slurm() {
        String job = slurm.jobId();
        if (job == null) {
            add("slurm job", Status.INFO, "not inside a Slurm job: this checked the machine you are on",
                    "to check a compute node, run it there: srun --pty versionfs doctor, or as a line of a batch script", 0);
        } else {
            String host = SlurmContext.host();
            add("slurm job", Status.OK, "job " + job + (host != null ? " on " + host : "")
                    + (slurm.get("SLURM_ARRAY_TASK_ID") != null ? ", array task " + slurm.get("SLURM_ARRAY_TASK_ID") : ""), null, 0);
        }
        String v = slurm.scratchVar();
        String mountBase = mountDir != null ? "--mount-dir " + mountDir : v != null ? "$" + v + " = " + slurm.get(v) : "/tmp (no $SLURM_TMPDIR or $TMPDIR set)";
        add("mount folder", Status.INFO, "a run makes its private mount folder in " + mountBase, null, 0);
        int n = slurm.nodes();
        if (n > 1) {
            add("nodes", Status.INFO, n + " (" + slurm.nodesSource() + "): symlink mode starts one versionfs agent per"
                    + " other node (an extra job step; close() then waits for a copy); --mode dir serves only this node"
                    + (everyNode ? "; every node is checked below" : ""),
                    "see slurm/README.md, 'Jobs on several nodes'", 0);
        } else {
            add("nodes", job == null && slurm.nodesSource().isEmpty() ? Status.INFO : Status.OK,
                    slurm.nodesSource().isEmpty() ? "1 (no SLURM_JOB_NUM_NODES)" : "1 (" + slurm.nodesSource() + ")", null, 0);
        }
    }

    // ---- helpers ------------------------------------------------------------------------------

    /** The mount that holds {@code p}: the longest mount point that is a prefix of its real path. */
    static MountTable.Entry filesystemOf(Path p) {
        Path real;
        try {
            real = p.toRealPath();
        } catch (IOException e) {
            real = p.toAbsolutePath().normalize();
        }
        MountTable.Entry best = null;
        for (MountTable.Entry e : MountTable.entries()) {
            if (real.startsWith(e.mountPoint())
                    && (best == null || e.mountPoint().getNameCount() >= best.mountPoint().getNameCount())) {
                best = e;
            }
        }
        return best;
    }

    private boolean isNodeLocal(Path p, MountTable.Entry fs) {
        if (fs.fsType().equals("tmpfs")) return true;
        for (Path scratch : slurm.scratchDirs()) {
            if (p.toAbsolutePath().normalize().startsWith(scratch.toAbsolutePath().normalize())) return true;
        }
        return p.toAbsolutePath().normalize().startsWith("/tmp");
    }

    private static String modeString(Path p) {
        try {
            return (Files.isSymbolicLink(p) ? "l" : p.toString().startsWith("/dev/") ? "c" : "-")
                    + permString((Integer) Files.getAttribute(p, "unix:mode"))
                    + ", owner " + Files.getOwner(p, LinkOption.NOFOLLOW_LINKS).getName();
        } catch (IOException | RuntimeException e) {
            return "mode unknown";
        }
    }

    static String permString(int mode) {
        String rwx = "rwxrwxrwx";
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 9; i++) sb.append((mode & (1 << (8 - i))) != 0 ? rwx.charAt(i) : '-');
        if ((mode & 04000) != 0) sb.setCharAt(2, (mode & 0100) != 0 ? 's' : 'S');
        return sb.toString();
    }


    private static void deleteTree(Path p) {
        try (var s = Files.walk(p)) {
            for (Path x : s.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(x);
        } catch (IOException e) {
            System.err.println("versionfs: warning: doctor could not remove " + p + ": " + e.getMessage());
        }
    }
}
