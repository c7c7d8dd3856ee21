package io.versionfs.run;

import io.versionfs.Await;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** verify and restore on the versions of a real run. */
class ToolsIT {
    @TempDir
    Path dir;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    private Result vfs(String... args) throws Exception {
        return TestSupport.vfs(dir, 120, args);
    }

    @Test
    void verifyFindsDamageAndRestoreBringsBackAMiddleVersionExactly() throws Exception {
        Result r = vfs("run", "--target", "job.gbw", "--", "python3", TestSupport.FSOPS.toString(), "rewrite", "job.gbw", "t", "1", "5", "50000");
        assertEquals(0, r.exit(), r.err());
        Path v = dir.resolve("job.gbw.versions");
        Result ok = vfs("verify", v.toString());
        assertEquals(0, ok.exit(), ok.out() + ok.err());
        assertTrue(ok.out().contains("intact: 5 version(s) checked"), ok.out());

        // restore version 3 over the target: refused without --force, exact with it
        Result refused = vfs("restore", v.toString(), "3");
        assertEquals(202, refused.exit(), refused.err());
        assertArrayEquals(TestSupport.payload("t", 5, 50000), Files.readAllBytes(dir.resolve("job.gbw")), "nothing changed");
        Result done = vfs("restore", v.toString(), "3", "--force");
        assertEquals(0, done.exit(), done.err());
        assertArrayEquals(TestSupport.payload("t", 3, 50000), Files.readAllBytes(dir.resolve("job.gbw")));
        assertEquals(0, vfs("restore", v.toString(), "latest", "--to", "copy.gbw").exit());
        String t2 = String.valueOf(TestSupport.manifestVersions(v).get(1).get("time"));
        assertEquals(0, vfs("restore", v.toString(), "--at", t2, "--to", "at.gbw").exit());
        assertArrayEquals(TestSupport.payload("t", 2, 50000), Files.readAllBytes(dir.resolve("at.gbw")), "--at: the last saved by then");
        assertArrayEquals(TestSupport.payload("t", 5, 50000), Files.readAllBytes(dir.resolve("copy.gbw")));

        // flip a byte in version 2; put a stray version file in the folder
        List<Path> files = TestSupport.versions(v, "job", ".gbw");
        byte[] b = Files.readAllBytes(files.get(1));
        b[100] ^= 1;
        Files.write(files.get(1), b);
        Files.writeString(v.resolve("job.000099.gbw"), "stray");
        Result bad = vfs("verify", v.toString());
        assertEquals(207, bad.exit(), bad.out());
        assertTrue(bad.out().contains("damaged: ") && bad.out().contains(files.get(1).getFileName().toString()), bad.out());
        assertTrue(bad.out().contains("unlisted: ") && bad.out().contains("job.000099.gbw"), bad.out());
        Result refusedDamaged = vfs("restore", v.toString(), "2", "--to", "two.gbw");
        assertEquals(207, refusedDamaged.exit(), refusedDamaged.err());
        assertTrue(!Files.exists(dir.resolve("two.gbw")), "a damaged version is never restored");
        assertEquals(1, refusedDamaged.err().strip().lines().count(), refusedDamaged.err());
    }

    @Test
    void aFolderWithNoVersionYetIsAnEmptyListingAndATargetFileNamesItsFolder() throws Exception {
        // What a run has made before its first version (the run's own folder, no manifest line yet).
        Files.createDirectories(dir.resolve("job.gbw.versions/.versionfs"));
        Files.writeString(dir.resolve("job.gbw"), "x\n");
        Result r = vfs("list", "--json", "job.gbw.versions");
        assertEquals(0, r.exit(), r.err());
        assertEquals("[]", r.out().strip());
        r = vfs("verify", "job.gbw.versions");
        assertEquals(0, r.exit(), r.err());
        r = vfs("list", "job.gbw");
        assertEquals(203, r.exit(), r.err());
        assertTrue(r.err().contains("give " + dir.resolve("job.gbw.versions")) || r.err().contains("give job.gbw.versions"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        Files.createDirectory(dir.resolve("other"));
        r = vfs("list", "other");
        assertEquals(203, r.exit(), "a folder that is not a versions folder stays an error: " + r.err());
    }

    @Test
    void diffShowsTextChangesAndBinaryRanges() throws Exception {
        String py = "python3 " + TestSupport.FSOPS;
        Result r = vfs("run", "--target", "t.txt", "--target", "b.dat", "--", "sh", "-c",
                py + " write t.txt 'one\ntwo\n' && " + py + " write t.txt 'one\nTWO\n' && "
                        + "python3 -c \"open('b.dat','wb').write(bytes(range(256))*400)\" && " + py + " overwrite-middle b.dat XYZ 5000");
        assertEquals(0, r.exit(), r.err());
        Result text = vfs("diff", dir.resolve("t.txt.versions").toString(), "1", "2");
        assertEquals(0, text.exit(), text.err());
        assertTrue(text.out().contains("-two") && text.out().contains("+TWO"), text.out());
        Result bin = vfs("diff", dir.resolve("b.dat.versions").toString(), "1", "2");
        assertEquals(0, bin.exit(), bin.err());
        assertTrue(bin.out().contains("in 1 range(s)") && bin.out().contains("bytes 5000-"), bin.out());
        Result js = vfs("diff", "--json", dir.resolve("b.dat.versions").toString(), "1", "latest");
        assertTrue(js.out().contains("\"ranges\":[[5000,"), js.out());
    }

    @Test
    void diffComparesVersionsLargerThanTheToolsHeapAcrossChunkEdges() throws Exception {
        // 300 MiB each, twice: more than the launcher's 128 MiB heap could hold (it read both files whole).
        String job = "head -c 300M /dev/zero > b.dat"
                + " && printf XXXXXXXXXX | dd of=b.dat bs=1 seek=1048570 conv=notrunc status=none"
                + " && printf Y | dd of=b.dat bs=1 seek=209715200 conv=notrunc status=none"
                + " && printf 0123456789 >> b.dat";
        Result r = vfs("run", "--target", "b.dat", "--", "sh", "-c", job);
        assertEquals(0, r.exit(), r.err());
        Result js = vfs("diff", "--json", dir.resolve("b.dat.versions").toString(), "1", "latest");
        assertEquals(0, js.exit(), js.err());
        long size = 300L << 20;
        assertTrue(js.out().contains("\"ranges\":[[1048570,1048580],[209715200,209715201],[" + size + "," + (size + 10) + "]]"), js.out());
        assertTrue(js.out().contains("\"bytes_changed\":21"), js.out());
        assertTrue(js.out().contains("\"size_b\":" + (size + 10)), js.out());
    }

    @Test
    void listFollowPrintsVersionsAsTheyComeAndEndsWithTheRun() throws Exception {
        // The job's 0.4 s pace is the scenario (versions keep coming while list follows), not a wait:
        // however late list starts, it must print all five and end with the run.
        String job = "for i in 1 2 3 4 5; do echo v$i > job.gbw; sleep 0.4; done";
        Process run = new ProcessBuilder(TestSupport.LAUNCHER.toString(), "run", "--target", "job.gbw", "--", "sh", "-c", job)
                .directory(dir.toFile()).redirectErrorStream(true).redirectOutput(dir.resolve("run.log").toFile()).start();
        Path open = dir.resolve("job.gbw.versions/.versionfs/open");
        Await.until(Await.LONG, Await.POLL, "the run's open marker", () -> {
            if (Files.exists(open)) return true;
            if (!run.isAlive()) throw new AssertionError("the run ended before list could follow it: " + Files.readString(dir.resolve("run.log")));
            return false;
        }, () -> Files.readString(dir.resolve("run.log")));
        Result follow = vfs("list", "--follow", dir.resolve("job.gbw.versions").toString());
        assertTrue(run.waitFor(60, java.util.concurrent.TimeUnit.SECONDS));
        assertEquals(0, follow.exit(), follow.err());
        long rows = follow.out().lines().filter(l -> l.contains("job.gbw") && l.contains("saved")).count();
        assertEquals(5, rows, "every version, as it came: " + follow.out());
    }

    @Test
    void onVersionRunsOncePerVersionAndFailuresDoNotFailTheJob() throws Exception {
        Files.createDirectory(dir.resolve("side"));
        String hook = "sha1sum \"$VERSIONFS_PATH\" > \"side/$VERSIONFS_VERSION.sha1\"; echo \"$VERSIONFS_VERSION $VERSIONFS_TARGET\" >> seen.txt;"
                + " [ \"$VERSIONFS_VERSION\" != 3 ]";
        Result r = vfs("run", "--on-version", hook, "--target", "job.gbw", "--", "python3", TestSupport.FSOPS.toString(),
                "rewrite", "job.gbw", "h", "1", "5", "10000");
        assertEquals(0, r.exit(), "a failing hook does not fail the job: " + r.err());
        List<String> seen = Files.readAllLines(dir.resolve("seen.txt")).stream().sorted().toList();
        assertEquals(List.of("1 job.gbw", "2 job.gbw", "3 job.gbw", "4 job.gbw", "5 job.gbw"), seen, "once per version");
        for (int n = 1; n <= 5; n++) assertTrue(Files.exists(dir.resolve("side/" + n + ".sha1")));
        List<io.versionfs.capture.ManifestLine> events = io.versionfs.capture.Manifest.readChecked(dir.resolve("job.gbw.versions"))
                .rows().stream().filter(m -> "hook".equals(m.event())).toList();
        assertEquals(5, events.size(), events.toString());
        assertEquals(1, events.stream().filter(m -> m.exit() != 0).count(), events.toString());
        assertTrue(r.err().contains("5 ran, 1 failed"), r.err());
        EngineIT.verifyVersions(dir.resolve("job.gbw.versions"));
        Result later = vfs("hook", dir.resolve("job.gbw.versions").toString(), "--from", "3", "--", "echo $VERSIONFS_VERSION >> later.txt");
        assertEquals(0, later.exit(), later.err());
        assertEquals(List.of("3", "4", "5"), Files.readAllLines(dir.resolve("later.txt")));
    }

    @Test
    void progressIsOneUpdatingLineOnATerminalAndPlainLinesOtherwise() throws Exception {
        // The job's 1 s pace is the scenario: it runs across several progress ticks (progressEvery=1),
        // which is what --quiet must not print and a terminal must see rewritten in place.
        String job = "for i in 1 2 3 4; do echo v$i > job.gbw; sleep 1; done";
        java.util.Map<String, String> fast = java.util.Map.of("VERSIONFS_JAVA_OPTS", "-Dversionfs.progressEvery=1");
        Result plain = TestSupport.run(dir, fast, 120, TestSupport.LAUNCHER.toString(), "run", "--target", "job.gbw", "--", "sh", "-c", job);
        assertEquals(0, plain.exit(), plain.err());
        assertTrue(plain.err().contains("version(s) so far") && !plain.err().contains("\r"), plain.err());
        Result quiet = TestSupport.run(dir, fast, 120, TestSupport.LAUNCHER.toString(), "run", "--quiet", "--target", "job.gbw",
                "--", "sh", "-c", job);
        assertTrue(!quiet.err().contains("so far"), quiet.err());
        // On a terminal (script(1) gives the run a pty): the line is rewritten in place.
        Result tty = TestSupport.run(dir, null, 120, "script", "-qec", TestSupport.LAUNCHER + " run --target job.gbw -- sh -c '"
                + job + "'", "/dev/null");
        assertTrue(tty.out().contains("\rversionfs: ") && tty.out().contains("so far"), tty.out());
    }

    @Test
    void hooksStillPendingAtTermAreReportedWithTheLineToRunThemLater() throws Exception {
        // The scenario: hooks slow enough (20 s) to be pending at TERM, a job alive until then (sleep 60).
        String[] cmd = {TestSupport.LAUNCHER.toString(), "run", "--grace", "1", "--on-version", "sleep 20", "--target", "job.gbw",
                "--", "sh", "-c", "for i in 1 2 3; do echo v$i > job.gbw; done; touch started; sleep 60"};
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("out.txt").toFile()).start();
        Await.until(Await.LONG, "the job's started file", () -> Files.exists(dir.resolve("started")),
                () -> Files.readString(dir.resolve("out.txt")));
        TestSupport.run(dir, null, 10, "kill", "-TERM", String.valueOf(p.pid()));
        assertTrue(p.waitFor(90, java.util.concurrent.TimeUnit.SECONDS), "ended within a bounded time");
        String out = Files.readString(dir.resolve("out.txt"));
        assertTrue(out.contains("left undone: run them later with versionfs hook"), out);
        EngineIT.verifyVersions(dir.resolve("job.gbw.versions"));
    }
}
