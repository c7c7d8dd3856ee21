package io.versionfs;

import io.versionfs.capture.Manifest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Shared helpers: run real processes, read versions and manifests, check mounts. */
public final class TestSupport {
    public static final Path PROJECT = Path.of("").toAbsolutePath();
    public static final Path FSOPS = PROJECT.resolve("src/test/resources/fsops.py");
    public static final Path LAUNCHER = PROJECT.resolve("bin/versionfs");

    private TestSupport() {}

    public record Result(int exit, String out, String err) {}

    /**
     * Runs a command to completion (bounded), capturing stdout and stderr; {@code env} entries are
     * added, or removed when their value is null.
     */
    public static Result run(Path cwd, Map<String, String> env, long timeoutSec, String... cmd) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(cwd.toFile());
        if (env != null) {
            for (Map.Entry<String, String> e : env.entrySet()) {
                if (e.getValue() == null) pb.environment().remove(e.getKey());
                else pb.environment().put(e.getKey(), e.getValue());
            }
        }
        Path out = Files.createTempFile("vfs-out", ".txt"), err = Files.createTempFile("vfs-err", ".txt");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.PIPE);
        Process p = pb.start();
        p.getOutputStream().close();
        if (!p.waitFor(timeoutSec, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            fail("timed out after " + timeoutSec + " s: " + String.join(" ", cmd) + "\nstderr: " + Files.readString(err));
        }
        Result r = new Result(p.exitValue(), Files.readString(out), Files.readString(err));
        Files.delete(out);
        Files.delete(err);
        return r;
    }

    /** A small tmpfs (a full disk on demand), unmounted on close. Needs root: the test is skipped otherwise. */
    public record SmallDisk(Path path) implements AutoCloseable {
        @Override
        public void close() throws Exception {
            run(path.getParent(), null, 30, "umount", "-l", path.toString());
        }
    }

    public static SmallDisk smallDisk(Path at, String size) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(isRoot(), "needs root to mount a small tmpfs");
        Files.createDirectory(at);
        assertEquals(0, run(at.getParent(), null, 30, "mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", at.toString()).exit,
                "mount a " + size + " tmpfs at " + at);
        return new SmallDisk(at);
    }

    /**
     * A loop-mounted XFS with reflinks (blocks shared between files, as on many HPC scratch
     * filesystems), in a sparse 320 MiB image beside {@code at} (XFS's minimum is 300 MiB); unmounted
     * and its loop device freed on close. Needs root and xfsprogs (bin/prereqs --test installs it).
     */
    public static SmallDisk reflinkDisk(Path at) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(isRoot(), "needs root to loop-mount XFS");
        Path img = at.resolveSibling(at.getFileName() + ".img");
        try (var f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(320L << 20);
        }
        assertEquals(0, run(at.getParent(), null, 60, "mkfs.xfs", "-q", "-f", "-m", "reflink=1", img.toString()).exit,
                "mkfs.xfs (apt-get install xfsprogs)");
        Files.createDirectory(at);
        assertEquals(0, run(at.getParent(), null, 60, "mount", "-o", "loop", img.toString(), at.toString()).exit,
                "loop-mount " + img + " at " + at);
        return new SmallDisk(at);
    }

    /**
     * An ordinary user for a test run, as on a cluster: created if missing ({@code useradd -m}, with
     * any {@code others} the test needs beside it), and {@code /dev/fuse} made 0666 as a cluster has it
     * until {@link #close} puts its mode back. Needs root and /dev/fuse: the caller is skipped otherwise.
     */
    public static final class OrdinaryUser implements AutoCloseable {
        public final String name;
        public final int uid, gid;
        private final String devFuseMode;

        private OrdinaryUser(String name, int uid, int gid, String devFuseMode) {
            this.name = name;
            this.uid = uid;
            this.gid = gid;
            this.devFuseMode = devFuseMode;
        }

        public static OrdinaryUser create(String name, String... others) throws Exception {
            org.junit.jupiter.api.Assumptions.assumeTrue(isRoot(), "skipped: needs root to create the test user " + name
                    + " and open /dev/fuse to users as a cluster does (run the tests as root, e.g. bin/test)");
            org.junit.jupiter.api.Assumptions.assumeTrue(Files.exists(Path.of("/dev/fuse")), "skipped: this machine has no /dev/fuse");
            for (String u : Stream.concat(Stream.of(name), Arrays.stream(others)).toList()) {
                if (run(PROJECT, null, 30, "id", "-u", u).exit() == 0) continue;
                Result r = run(PROJECT, null, 60, "useradd", "-m", "-s", "/bin/sh", u);
                assertEquals(0, r.exit(), "useradd " + u + ": " + r.err());
            }
            int uid = Integer.parseInt(run(PROJECT, null, 30, "id", "-u", name).out().trim());
            int gid = Integer.parseInt(run(PROJECT, null, 30, "id", "-g", name).out().trim());
            OrdinaryUser user = new OrdinaryUser(name, uid, gid, run(PROJECT, null, 30, "stat", "-c", "%a", "/dev/fuse").out().trim());
            chmodDevFuse("666");
            return user;
        }

        /** Gives each of {@code paths} (not what a symlink points to) to the user and its group. */
        public void own(Path... paths) throws IOException {
            for (Path p : paths) {
                Files.setAttribute(p, "unix:uid", uid, LinkOption.NOFOLLOW_LINKS);
                Files.setAttribute(p, "unix:gid", gid, LinkOption.NOFOLLOW_LINKS);
            }
        }

        /** Puts /dev/fuse's mode back. */
        @Override
        public void close() throws Exception {
            chmodDevFuse(devFuseMode);
        }

        /** Sets /dev/fuse's mode (a test of a node that does not open it to users); {@link #close} still restores the first. */
        public static void chmodDevFuse(String mode) throws Exception {
            Result r = run(PROJECT, null, 30, "chmod", mode, "/dev/fuse");
            assertEquals(0, r.exit(), "chmod " + mode + " /dev/fuse: " + r.err());
        }
    }

    /**
     * A new folder in {@code parent} that every user can read, holding a copy of the launcher
     * ({@code bin/versionfs}) and the jar ({@code versionfs.jar}, for {@code VERSIONFS_JAR}): an
     * install an {@link OrdinaryUser} can run, as a cluster's shared software folder is.
     */
    public static Path worldReadableInstall(Path parent, String prefix) throws IOException {
        Path base = mode(Files.createTempDirectory(parent, prefix), "rwxr-xr-x");
        mode(Files.createDirectory(base.resolve("bin")), "rwxr-xr-x");
        mode(Files.copy(LAUNCHER, base.resolve("bin/versionfs")), "rwxr-xr-x");
        mode(Files.copy(PROJECT.resolve("target/versionfs.jar"), base.resolve("versionfs.jar")), "rw-r--r--");
        return base;
    }

    /** {@code p} with its mode set to {@code perms} ("rwxr-xr-x"), whatever the umask. */
    private static Path mode(Path p, String perms) throws IOException {
        return Files.setPosixFilePermissions(p, PosixFilePermissions.fromString(perms));
    }

    /** {@code n} random bytes (content no filesystem can deduplicate or compress away). */
    public static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        new java.util.Random(n).nextBytes(b);
        return b;
    }

    /** The launcher and {@code args}, as one command line. */
    public static String[] launcher(String... args) {
        return Stream.concat(Stream.of(LAUNCHER.toString()), Arrays.stream(args)).toArray(String[]::new);
    }

    /** Runs {@code versionfs ARGS} through the real launcher in {@code cwd} (bounded). */
    public static Result vfs(Path cwd, long timeoutSec, String... args) throws Exception {
        return run(cwd, null, timeoutSec, launcher(args));
    }

    /** Runs fsops.py COMMAND ARGS as its own process and asserts it succeeded. */
    public static void fsops(String... args) throws Exception {
        String[] cmd = Stream.concat(Stream.of("python3", FSOPS.toString()), Arrays.stream(args)).toArray(String[]::new);
        Result r = run(PROJECT, null, 120, cmd);
        assertEquals(0, r.exit, "fsops " + String.join(" ", args) + " failed: " + r.err);
    }

    public static Process fsopsAsync(String... args) throws IOException {
        String[] cmd = Stream.concat(Stream.of("python3", FSOPS.toString()), Arrays.stream(args)).toArray(String[]::new);
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.INHERIT).start();
    }

    /** The content fsops.py's payload(tag, i, size) writes. */
    public static byte[] payload(String tag, int i, int size) {
        byte[] head = (tag + ":" + i + ":" + size + "\n").getBytes(StandardCharsets.US_ASCII);
        if (size < head.length) return head;
        int sum = 0;
        for (byte b : tag.getBytes(StandardCharsets.UTF_8)) sum += b & 0xff;
        byte fill = (byte) (65 + (i * 7 + sum) % 26);
        byte[] out = new byte[size];
        Arrays.fill(out, fill);
        System.arraycopy(head, 0, out, 0, head.length);
        return out;
    }

    /** Version files of {@code name} in {@code dir}, in capture (lexical) order. */
    public static List<Path> versions(Path dir, String stem, String ext) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().matches(java.util.regex.Pattern.quote(stem) + "\\.\\d{6}" + java.util.regex.Pattern.quote(ext)))
                    .sorted().collect(Collectors.toList());
        }
    }

    public static List<Map<String, Object>> manifestVersions(Path dir) throws IOException {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (io.versionfs.capture.ManifestLine m : Manifest.read(dir)) if (m.version() != null) rows.add(m.toMap());
        return rows;
    }

    public static String read(Path p) throws IOException {
        return Files.readString(p, StandardCharsets.ISO_8859_1);
    }

    /** Lines of /proc/mounts for versionfs mounts. */
    public static List<String> versionfsMounts() throws IOException {
        return Files.readAllLines(Path.of("/proc/mounts")).stream().filter(l -> l.contains("fuse.versionfs")).collect(Collectors.toList());
    }

    public static void assertNoMountUnder(Path dir) throws IOException {
        String abs = dir.toAbsolutePath().toString();
        List<String> left = versionfsMounts().stream().filter(l -> l.split(" ")[1].startsWith(abs)).toList();
        assertTrue(left.isEmpty(), "FUSE mounts left behind: " + left);
    }

    /**
     * Aborts the FUSE connection of every versionfs mount under {@code dir} (as
     * {@code echo 1 > /sys/fs/fuse/connections/N/abort}): the way out of a deadlocked mount, whose
     * processes even SIGKILL cannot end, so that a test that found one fails instead of hanging
     * the suite. Reads /proc/self/mountinfo (the device number; never stats the mount), then
     * unmounts the dead mount lazily. Returns how many it aborted.
     */
    public static int abortMountsUnder(Path dir) throws Exception {
        String abs = dir.toAbsolutePath().toString();
        int n = 0;
        for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
            String[] f = line.split(" ");
            if (!line.contains("fuse.versionfs") || !f[4].startsWith(abs)) continue;
            String minor = f[2].substring(f[2].indexOf(':') + 1);
            Path abort = Path.of("/sys/fs/fuse/connections", minor, "abort");
            if (Files.exists(abort)) {
                Files.writeString(abort, "1");
                n++;
            }
            run(Path.of("/"), null, 30, "fusermount", "-u", "-z", f[4]); // the dead mount out of the way
        }
        return n;
    }

    /** Running = exists and is not a zombie waiting to be reaped by whoever inherited it. */
    public static boolean isRunning(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
            return stat.charAt(stat.lastIndexOf(')') + 2) != 'Z';
        } catch (IOException e) {
            return false;
        }
    }

    public static boolean isRoot() {
        return "root".equals(System.getProperty("user.name"));
    }
}
