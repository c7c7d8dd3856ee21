package io.versionfs.capture;

import io.versionfs.sys.LibC;
import io.versionfs.sys.Posix;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One "node" of a job on several nodes, as its own process (for {@link NodeNumberingIT}): opens
 * the versions folder as an agent does ({@link VersionStore#openOnNode}, its own NodeNumbering and
 * manifest) and captures from several threads at once. Every 7th capture is of a folder, which
 * cannot be copied (a version lost after its number was asked for); every 5th gives the oldest
 * version away as a full disk would ({@link Room#dropOne}). Prints "saved N lost L dropped D".
 *
 * <p>Arguments: versions folder, host, scratch folder, threads, captures per thread, and
 * optionally {@code batch}: then it opens the folder as the batch node does (the folder's own
 * open, numbering across nodes, the mark), prints "marked", captures, and is killed (halts)
 * once its lines are written, before any merge: what a batch node killed mid-job leaves.
 */
public final class NodeWriter {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]), scratch = Path.of(args[2]);
        String host = args[1];
        int threads = Integer.parseInt(args[3]), each = Integer.parseInt(args[4]);
        Files.createDirectories(scratch);
        AtomicInteger saved = new AtomicInteger(), lost = new AtomicInteger(), dropped = new AtomicInteger();
        boolean batch = args.length > 5 && args[5].equals("batch");
        VersionStore opened = batch ? VersionStore.open(dir, Instant.now()) : VersionStore.openOnNode(dir, Instant.now(), new NodeNumbering(host));
        if (batch) {
            opened.acrossNodes(new NodeNumbering(host));
            opened.drain();
            ManifestMerge.mark(opened);
            System.out.println("marked");
            System.out.flush();
        }
        try (VersionStore store = opened) {
            List<Thread> ts = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                int tt = t;
                ts.add(new Thread(() -> {
                    for (int i = 0; i < each; i++) {
                        VersionStore.Captured c = capture(store, scratch, host, tt, i);
                        (c.version().lost() ? lost : saved).incrementAndGet();
                        if (i % 5 == 4 && store.room().dropOne()) dropped.incrementAndGet();
                    }
                }));
            }
            ts.forEach(Thread::start);
            for (Thread t : ts) t.join();
            if (batch) {
                store.drain();
                System.out.println("saved " + saved + " lost " + lost + " dropped " + dropped + " (killed now)");
                System.out.flush();
                Runtime.getRuntime().halt(0);
            }
        }
        System.out.println("saved " + saved + " lost " + lost + " dropped " + dropped);
    }

    private static VersionStore.Captured capture(VersionStore store, Path scratch, String host, int t, int i) {
        try {
            Path src = scratch.resolve("src-" + t + "-" + i);
            if (i % 7 == 6) Files.createDirectories(src); // cannot be copied: lost
            else Files.write(src, (host + " " + t + " " + i + "\n").repeat(1 + i % 13).getBytes(StandardCharsets.UTF_8));
            int fd = Posix.C.openat(LibC.AT_FDCWD, src.toString(), LibC.O_RDONLY | LibC.O_CLOEXEC, 0);
            try {
                return store.captureFd(fd, "job.gbw", "close", 0, host, () -> false);
            } finally {
                Posix.C.close(fd);
            }
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
