package io.versionfs.run;

import io.versionfs.Await;
import io.versionfs.TestSupport;
import io.versionfs.TestSupport.Result;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static io.versionfs.TestSupport.manifestVersions;
import static io.versionfs.TestSupport.versions;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The rename patterns of real programs, reproduced with real processes: directory mode must
 * capture them all; symlink mode must detect them during the run and say what to do.
 */
class DirModeIT {
    @TempDir
    Path dir;

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    private Result run(String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(TestSupport.LAUNCHER.toString(), "run"));
        cmd.addAll(List.of(args));
        return TestSupport.run(dir, null, 180, cmd.toArray(String[]::new));
    }

    private List<String> contents(Path vdir, String stem, String ext) throws Exception {
        List<String> out = new ArrayList<>();
        for (Path p : versions(vdir, stem, ext)) out.add(Files.readString(p));
        return out;
    }

    private static String fsops() {
        return "python3 " + TestSupport.FSOPS;
    }

    /**
     * A symlink in the folder that leads to a target by its absolute path, which goes through the
     * mount (it is over the folder), written through with O_CREAT. The lookup used to answer such
     * a name "absent" (so that the kernel creates in one step), the kernel then sent the create for
     * the symlink's own name while holding the folder locked, and versionfs, opening that name,
     * followed the link back through its own mount and waited for that lock: the job and
     * versionfs stuck in D state for good, beyond SIGKILL. A dangling link is the same with a
     * file that does not exist yet. Bounded: on a hang the mount is aborted and the test fails.
     */
    @Test
    void aSymlinkLeadingThroughTheMountIsFollowedWithoutDeadlock() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "init\n");
        Path out = dir.getParent().resolve(dir.getFileName() + ".out"), err = dir.getParent().resolve(dir.getFileName() + ".err");
        Process p = new ProcessBuilder(TestSupport.LAUNCHER.toString(), "run", "--mode", "dir", "--target", "*.gbw", "--target", "loop*",
                "--", "bash", "-c", "ln -s \"$PWD/job.gbw\" x.gbw && echo w > x.gbw && ln -s \"$PWD/other\" loop && echo o > loop"
                        + " && cat x.gbw loop > seen").directory(dir.toFile()).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        if (!p.waitFor(90, java.util.concurrent.TimeUnit.SECONDS)) {
            int aborted = TestSupport.abortMountsUnder(dir);
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            org.junit.jupiter.api.Assertions.fail("the run hung (" + aborted + " mount(s) aborted): " + Files.readString(err));
        }
        String stderr = Files.readString(err);
        Files.deleteIfExists(out);
        Files.deleteIfExists(err);
        assertEquals(0, p.exitValue(), stderr);
        assertEquals("w\no\n", Files.readString(dir.resolve("seen")));
        assertEquals("w\n", Files.readString(dir.resolve("job.gbw")));
        assertEquals("o\n", Files.readString(dir.resolve("other")));
        assertTrue(Files.isSymbolicLink(dir.resolve("x.gbw")) && Files.isSymbolicLink(dir.resolve("loop")), "the links stay links");
        assertEquals(List.of("init\n", "w\n"), contents(dir.resolve("job.gbw.versions"), "job", ".gbw"), "the write through the link is a version");
        EngineIT.verifyVersions(dir.resolve("job.gbw.versions"));
    }

    /**
     * A target in a subfolder, beside an unrelated file of the same name in the folder itself:
     * the summary named the unrelated file, and took it for one written behind the mount.
     */
    @Test
    void aTargetInASubfolderIsReportedAtItsOwnPath() throws Exception {
        Files.createDirectory(dir.resolve("sub"));
        Files.writeString(dir.resolve("job.gbw"), "unrelated\n");
        Result r = run("--mode", "dir", "--json", "--target", "sub/job.gbw", "--", "sh", "-c", "echo one > sub/job.gbw; echo two > sub/job.gbw");
        assertEquals(0, r.exit(), r.err());
        assertFalse(r.err().contains("WRITTEN BEHIND"), r.err());
        Map<String, Object> json = io.versionfs.text.Json.parseObject(r.out().trim());
        @SuppressWarnings("unchecked")
        List<Map<String, Object>> files = (List<Map<String, Object>>) json.get("files");
        assertEquals(List.of(dir.resolve("sub/job.gbw").toString()), files.stream().map(f -> f.get("file")).toList(), r.out());
        assertEquals(0L, ((Number) json.get("unversionable")).longValue(), r.out());
        assertEquals(List.of("one\n", "two\n"), contents(dir.resolve("sub/job.gbw.versions"), "job", ".gbw"));
        assertEquals("unrelated\n", Files.readString(dir.resolve("job.gbw")));
    }

    /** Hooks run while the job runs, although the versions folder is read-only through the mount. */
    @Test
    void hooksRunDuringTheJobInDirectoryMode() throws Exception {
        Result r = run("--mode", "dir", "--on-version", "echo \"hook $VERSIONFS_VERSION $(cat \"$VERSIONFS_PATH\")\"",
                "--target", "job.gbw", "--", "sh", "-c",
                "echo one > job.gbw; echo two > job.gbw; i=0; while [ $i -lt 300 ] && ! grep -q 'hook 1 one' job.gbw.versions/hooks.log;"
                        + " do sleep 0.1; i=$((i+1)); done; grep -c hook job.gbw.versions/hooks.log > seen-during-job");
        assertEquals(0, r.exit(), r.err());
        assertTrue(Integer.parseInt(Files.readString(dir.resolve("seen-during-job")).strip()) >= 1,
                "the first hook ran while the job was still running: " + r.err());
        String log = Files.readString(dir.resolve("job.gbw.versions/hooks.log"));
        assertTrue(log.contains("hook 1 one") && log.contains("hook 2 two"), log);
        assertTrue(r.err().contains("2 ran, 0 failed"), r.err());
    }

    @Test
    void orcaAutoStartRenameAwayThenFreshWrite() throws Exception {
        Files.writeString(dir.resolve("job.gbw"), "guess");
        // Absolute paths, as in an input file: the folder is at the same path under versionfs.
        String gbw = dir.resolve("job.gbw").toString(), ges = dir.resolve("job.ges").toString();
        Result r = run("--mode", "dir", "--target", "job.gbw", "--", "sh", "-c",
                "cat " + gbw + " > seen; " + fsops() + " rename " + gbw + " " + ges + "; "
                        + fsops() + " write " + gbw + " scf1; " + fsops() + " write " + gbw + " scf2");
        assertEquals(0, r.exit(), r.err());
        assertEquals("guess", Files.readString(dir.resolve("seen")));
        assertEquals(List.of("guess", "scf1", "scf2"), contents(dir.resolve("job.gbw.versions"), "job", ".gbw"));
        assertEquals("guess", Files.readString(dir.resolve("job.ges")));
        assertEquals("scf2", Files.readString(dir.resolve("job.gbw")));
        assertFalse(Files.isSymbolicLink(dir.resolve("job.gbw")));
        assertTrue(Files.readString(dir.resolve("job.gbw.versions/manifest.jsonl")).contains("\"event\":\"rename\""));
    }

    @Test
    void tempFilePlusRenameOverTheTargetManyTimes() throws Exception {
        StringBuilder sh = new StringBuilder();
        for (int i = 1; i <= 15; i++) sh.append(fsops()).append(" save-via-rename state.cpt step").append(i).append("; ");
        Result r = run("--mode", "dir", "--target", "state.cpt", "--", "sh", "-c", sh.toString());
        assertEquals(0, r.exit(), r.err());
        List<String> expected = new ArrayList<>();
        for (int i = 1; i <= 15; i++) expected.add("step" + i);
        assertEquals(expected, contents(dir.resolve("state.cpt.versions"), "state", ".cpt"));
        List<Map<String, Object>> rows = manifestVersions(dir.resolve("state.cpt.versions"));
        assertTrue(rows.stream().allMatch(m -> m.get("reason").equals("rename")), rows.toString());
        assertFalse(Files.exists(dir.resolve("state.cpt.tmp")));
    }

    @Test
    void renameToBakNThenNewFile() throws Exception {
        StringBuilder sh = new StringBuilder(fsops() + " write restart.wfn r0; ");
        for (int i = 1; i <= 3; i++) {
            sh.append("mv restart.wfn restart.wfn.bak-").append(i).append("; ")
                    .append(fsops()).append(" write restart.wfn r").append(i).append("; ");
        }
        Result r = run("--mode", "dir", "--target", "restart.wfn", "--", "sh", "-c", sh.toString());
        assertEquals(0, r.exit(), r.err());
        assertEquals(List.of("r0", "r1", "r2", "r3"), contents(dir.resolve("restart.wfn.versions"), "restart", ".wfn"));
        assertEquals("r0", Files.readString(dir.resolve("restart.wfn.bak-1")), "the program's own backups are untouched");
        assertEquals("r2", Files.readString(dir.resolve("restart.wfn.bak-3")));
    }

    @Test
    void deleteAndRecreateContinuesTheSequence() throws Exception {
        Result r = run("--mode", "dir", "--target", "out.dat", "--", "sh", "-c",
                fsops() + " write out.dat a; rm out.dat; " + fsops() + " write out.dat b; rm out.dat; " + fsops() + " write out.dat c");
        assertEquals(0, r.exit(), r.err());
        assertEquals(List.of("a", "b", "c"), contents(dir.resolve("out.dat.versions"), "out", ".dat"));
    }

    @Test
    void oneGlobTwoFilesWrittenAlternately() throws Exception {
        StringBuilder sh = new StringBuilder();
        for (int i = 1; i <= 4; i++) {
            sh.append(fsops()).append(" write a.xyz a").append(i).append("; ")
                    .append(fsops()).append(" write b.xyz b").append(i).append("; ");
        }
        sh.append("echo scratch > big.tmp");
        Result r = run("--mode", "dir", "--target", "*.xyz", "--", "sh", "-c", sh.toString());
        assertEquals(0, r.exit(), r.err());
        assertEquals(List.of("a1", "a2", "a3", "a4"), contents(dir.resolve("a.xyz.versions"), "a", ".xyz"));
        assertEquals(List.of("b1", "b2", "b3", "b4"), contents(dir.resolve("b.xyz.versions"), "b", ".xyz"));
        assertFalse(Files.exists(dir.resolve("big.tmp.versions")), "non-matching files pass through unversioned");
        assertEquals("scratch\n", Files.readString(dir.resolve("big.tmp")));
        assertTrue(r.err().contains("a.xyz: 4 versions") && r.err().contains("b.xyz: 4 versions"), "summary groups by file: " + r.err());
    }

    @Test
    void globInSymlinkModeCoversExistingFilesAndSaysWhatItCannotDo() throws Exception {
        Result none = run("--target", "*.xyz", "--", "true");
        assertEquals(202, none.exit(), none.err());
        assertTrue(none.err().contains("--mode dir"), none.err());
        Files.writeString(dir.resolve("a.xyz"), "a0");
        Files.writeString(dir.resolve("b.xyz"), "b0");
        Result r = run("--target", "*.xyz", "--", "sh", "-c", "echo a1 > a.xyz; echo b1 > b.xyz");
        assertEquals(0, r.exit(), r.err());
        assertEquals(List.of("a0", "a1\n"), contents(dir.resolve("a.xyz.versions"), "a", ".xyz"));
        assertEquals(List.of("b0", "b1\n"), contents(dir.resolve("b.xyz.versions"), "b", ".xyz"));
    }

    @Test
    void symlinkModeReportsARenameWhileTheJobStillRuns() throws Exception {
        // The warning (--no-follow) or the note that the rename was followed (--no-trap) must come
        // during the run, before the job's own later output. The job goes on once it has read it
        // on its stderr (the run's, a file here): a report made only at the end keeps the job
        // waiting until it gives up (exit 124), one made during the run always comes first.
        String job = "echo v1 > job.gbw; mv job.gbw job.ges; %s; echo JOB-STILL-RUNNING >&2; echo v2 > job.gbw";
        String said = "grep -qs '%s' /proc/$$/fd/2";
        Result r = run("--no-follow", "--target", "job.gbw", "--", "sh", "-c",
                String.format(job, Await.shell(String.format(said, "renamed job.gbw to job.ges"))));
        assertEquals(0, r.exit(), r.err());
        int warn = r.err().indexOf("renamed job.gbw to job.ges");
        int later = r.err().indexOf("JOB-STILL-RUNNING");
        assertTrue(warn >= 0 && later > warn, "detected before the job went on: " + r.err());
        assertTrue(r.err().contains("!NoAutoStart"), "names ORCA's fix: " + r.err());
        Files.delete(dir.resolve("job.gbw"));
        Files.delete(dir.resolve("job.ges"));
        r = run("--no-trap", "--target", "job.gbw", "--", "sh", "-c",
                String.format(job, Await.shell(String.format(said, "renamed job.gbw to job.ges: followed"))));
        assertEquals(0, r.exit(), r.err());
        int followed = r.err().indexOf("renamed job.gbw to job.ges: followed");
        assertTrue(followed >= 0 && r.err().indexOf("JOB-STILL-RUNNING") > followed, "followed at once: " + r.err());
        // Held (the default): nothing to warn about, nothing to wait for (the rename is done when
        // mv returns); the summary says what was done for the job.
        Files.delete(dir.resolve("job.gbw"));
        Files.delete(dir.resolve("job.ges"));
        r = run("--target", "job.gbw", "--", "sh", "-c", String.format(job, "true"));
        assertEquals(0, r.exit(), r.err());
        assertEquals("v1\n", Files.readString(dir.resolve("job.ges")));
        assertEquals("v2\n", Files.readString(dir.resolve("job.gbw")));
        assertTrue(r.err().contains("note: held and done for the job: 1 rename(s) away (last to job.ges)"), r.err());
    }
}
