package io.versionfs;

import io.versionfs.cli.Main;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The release tarball that 'mvn package' writes (target/versionfs-VERSION.tar.gz), installed the
 * way a site installs it (unpacked into a prefix, or by the recipes in src/packaging/), and used
 * from there: the launcher, --version, man pages, bash completion, Spack, EasyBuild and Lmod.
 */
class PackagingIT {
    private static final Path PROJECT = TestSupport.PROJECT;
    private static final Path PACKAGING = PROJECT.resolve("src/packaging");

    /** The release, as pom.xml says (not as the build wrote it: that is what is checked). */
    private static String version;
    private static Path tarball;
    /** Where the tarball was unpacked: PREFIX/bin/versionfs, PREFIX/share/... */
    private static Path prefix;

    @TempDir
    static Path installs;

    @TempDir
    Path dir;

    record Out(int exit, String out, String err) {
        String all() {
            return "exit " + exit + "\nstdout:\n" + out + "\nstderr:\n" + err;
        }
    }

    @BeforeAll
    static void unpack() throws Exception {
        String pom = Files.readString(PROJECT.resolve("pom.xml"));
        Matcher m = Pattern.compile("<artifactId>versionfs</artifactId>\\s*<version>([^<]+)</version>").matcher(pom);
        assertTrue(m.find(), "no <version> after <artifactId>versionfs</artifactId> in pom.xml");
        version = m.group(1);
        tarball = PROJECT.resolve("target/versionfs-" + version + ".tar.gz");
        assertTrue(Files.isRegularFile(tarball), tarball + " was not written by 'mvn package'");
        Out r = run(installs, Map.of(), 120, "tar", "-xzf", tarball.toString());
        assertEquals(0, r.exit, r.all());
        prefix = installs.resolve("versionfs-" + version);
        assertTrue(Files.isDirectory(prefix), "the tarball does not unpack into versionfs-" + version + "/");
    }

    @AfterEach
    void noMountLeft() throws Exception {
        TestSupport.assertNoMountUnder(dir);
    }

    /**
     * Runs a command (bounded) as a user's shell would: without the build's VERSIONFS_JAR (the
     * launcher must find its own jar); env entries with a null value are removed too.
     */
    static Out run(Path cwd, Map<String, String> env, long timeoutSec, String... cmd) throws Exception {
        Map<String, String> e = new java.util.HashMap<>();
        e.put("VERSIONFS_JAR", null);
        e.putAll(env);
        TestSupport.Result r = TestSupport.run(cwd, e, timeoutSec, cmd);
        return new Out(r.exit(), r.out(), r.err());
    }

    /**
     * versionfs's subcommands as the CLI defines them (one man page each), less the hidden ones
     * (agent: started by run on the other nodes of a job, never by a user).
     */
    private static List<String> subcommands() {
        List<String> out = new ArrayList<>();
        new CommandLine(new Main()).getSubcommands().forEach((name, cl) -> {
            if (!cl.getCommandSpec().usageMessage().hidden()) out.add(name);
        });
        return out;
    }

    /** The commit the build should have recorded: HEAD of this checkout, or "unknown" without git. */
    private static String expectedCommit() throws Exception {
        try {
            Out r = run(PROJECT, Map.of(), 30, "git", "rev-parse", "--short=7", "HEAD");
            if (r.exit == 0 && r.out.trim().matches("[0-9a-f]{7,40}")) return r.out.trim();
        } catch (java.io.IOException noGit) {
            // git not installed
        }
        return "unknown";
    }

    private static Pattern versionLine(String commit) {
        return Pattern.compile("versionfs " + Pattern.quote(version) + " \\(commit " + Pattern.quote(commit)
                + ", built \\d{4}-\\d{2}-\\d{2}\\)");
    }

    @Test
    void tarballHoldsTheInstallLayout() throws Exception {
        Out r = run(installs, Map.of(), 60, "tar", "-tvzf", tarball.toString());
        assertEquals(0, r.exit, r.all());
        Map<String, String> modes = new HashMap<>();
        for (String line : r.out.split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 6) modes.put(f[f.length - 1], f[0]);
        }
        String top = "versionfs-" + version + "/";
        List<String> want = new ArrayList<>(List.of("bin/versionfs", "share/versionfs/versionfs.jar",
                "share/bash-completion/completions/versionfs", "README.md", "LICENSE", "share/man/man1/versionfs.1"));
        for (String sub : subcommands()) want.add("share/man/man1/versionfs-" + sub + ".1");
        for (String w : want) assertTrue(modes.containsKey(top + w), "missing from the tarball: " + top + w + "\n" + r.out);
        assertEquals("-rwxr-xr-x", modes.get(top + "bin/versionfs"), "the launcher must be executable by all");
        assertEquals("-rw-r--r--", modes.get(top + "share/versionfs/versionfs.jar"));
        // bin/versionfs in the tarball is the launcher of this tree, not a copy that drifted.
        assertEquals(Files.readString(PROJECT.resolve("bin/versionfs")), Files.readString(prefix.resolve("bin/versionfs")));
    }

    @Test
    void runWorksFromTheInstalledLayout() throws Exception {
        Path tmp = Files.createDirectories(dir.resolve("tmp"));
        Out r = run(dir, Map.of("TMPDIR", tmp.toString()), 180, prefix.resolve("bin/versionfs").toString(),
                "run", "--target", "f", "--", "sh", "-c", "echo x > f");
        assertEquals(0, r.exit, r.all());
        Path f = dir.resolve("f");
        assertTrue(Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS), "f is not a regular file at the end\n" + r.all());
        assertEquals("x\n", Files.readString(f));
        List<Path> saved = TestSupport.versions(dir.resolve("f.versions"), "f", "");
        assertFalse(saved.isEmpty(), "no version saved\n" + r.all());
        assertEquals("x\n", Files.readString(saved.get(saved.size() - 1)));
        assertFalse(TestSupport.manifestVersions(dir.resolve("f.versions")).isEmpty(), "no version in the manifest");
    }

    @Test
    void versionShowsReleaseAndCommit() throws Exception {
        Out r = run(dir, Map.of(), 60, prefix.resolve("bin/versionfs").toString(), "--version");
        assertEquals(0, r.exit, r.all());
        String commit = expectedCommit();
        assertTrue(versionLine(commit).matcher(r.out.trim()).matches(),
                "expected 'versionfs " + version + " (commit " + commit + ", built YYYY-MM-DD)'\n" + r.all());
        // The source-tree launcher runs the same build.
        Out src = run(dir, Map.of(), 60, TestSupport.LAUNCHER.toString(), "--version");
        assertEquals(r.out, src.out, src.all());
    }

    @Test
    void buildWithoutGitSaysCommitUnknown(@TempDir Path copy) throws Exception {
        // What someone building from a source archive (no .git) gets; only the resources step runs.
        Files.copy(PROJECT.resolve("pom.xml"), copy.resolve("pom.xml"));
        Path res = Files.createDirectories(copy.resolve("src/main/resources/io/versionfs"));
        Files.copy(PROJECT.resolve("src/main/resources/io/versionfs/build.properties"), res.resolve("build.properties"));
        Out r;
        try {
            r = run(copy, Map.of(), 300, "mvn", "-o", "-q", "-B", "process-resources");
        } catch (java.io.IOException noMvn) {
            assumeTrue(false, "mvn is not on PATH (" + noMvn.getMessage() + "): cannot build a copy without .git");
            return;
        }
        assertEquals(0, r.exit, r.all());
        Properties p = new Properties();
        try (var in = Files.newInputStream(copy.resolve("target/classes/io/versionfs/build.properties"))) {
            p.load(in);
        }
        assertEquals("unknown", p.getProperty("commit"));
        assertEquals(version, p.getProperty("version"));
        assertTrue(p.getProperty("built").matches("\\d{4}-\\d{2}-\\d{2}"), "built=" + p.getProperty("built"));
    }

    @Test
    void incompleteInstallSaysSo() throws Exception {
        Out r = run(dir, Map.of(), 60, "tar", "-xzf", tarball.toString());
        assertEquals(0, r.exit, r.all());
        Path p = dir.resolve("versionfs-" + version);
        Files.delete(p.resolve("share/versionfs/versionfs.jar"));
        r = run(dir, Map.of(), 60, p.resolve("bin/versionfs").toString(), "--version");
        assertEquals(200, r.exit, r.all());
        assertTrue(r.err.contains("share/versionfs/versionfs.jar not found: this installation is incomplete"), r.all());
    }

    @Test
    void manPagesRender() throws Exception {
        Out which = run(dir, Map.of(), 30, "sh", "-c", "command -v man && command -v groff");
        assertEquals(0, which.exit, "man and groff are needed for this test (Debian: man-db, groff-base; "
                + "bin/prereqs --test installs them as root)\n" + which.all());
        Path man1 = prefix.resolve("share/man/man1");
        List<String> pages = new ArrayList<>(List.of("versionfs"));
        for (String sub : subcommands()) pages.add("versionfs-" + sub);
        Map<String, String> env = Map.of("LC_ALL", "C.UTF-8", "MANWIDTH", "100", "MANPAGER", "cat", "PAGER", "cat");
        for (String page : pages) {
            Path file = man1.resolve(page + ".1");
            Out r = run(dir, env, 60, "man", "--warnings", "-l", file.toString());
            assertEquals(0, r.exit, page + ": " + r.all());
            assertEquals("", r.err, page + ": man/groff warned");
            String text = r.out.replaceAll(".\b", ""); // no overstrike, should the formatter add it
            assertTrue(text.contains(page.toUpperCase() + "(1)"), page + ": no header\n" + text);
            assertTrue(text.contains("SYNOPSIS") && text.contains("DESCRIPTION"), page + ": sections missing\n" + text);
        }
        String run = run(dir, env, 60, "man", "-l", man1.resolve("versionfs-run.1").toString()).out;
        assertTrue(run.contains("--target") && run.contains("--versions-dir"), "versionfs-run(1) lacks the options\n" + run);
        // The layout works as a MANPATH entry (what the modules add).
        Map<String, String> mp = new HashMap<>(env);
        mp.put("MANPATH", prefix.resolve("share/man").toString());
        Out w = run(dir, mp, 60, "man", "-w", "versionfs-run");
        assertEquals(0, w.exit, w.all());
        assertEquals(man1.resolve("versionfs-run.1").toString(), w.out.trim());
    }

    @Test
    void completionScriptCompletesSubcommandsAndOptions() throws Exception {
        Path script = prefix.resolve("share/bash-completion/completions/versionfs");
        Out syntax = run(dir, Map.of(), 30, "bash", "-n", script.toString());
        assertEquals(0, syntax.exit, "not valid bash\n" + syntax.all());
        String probe = String.join("\n",
                "set -u",
                "source \"$1\"",
                "complete -p versionfs",
                "complete_line() {",
                "  COMP_LINE=$1; COMP_POINT=${#COMP_LINE}",
                "  read -r -a COMP_WORDS <<<\"$COMP_LINE\"",
                "  [[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')",
                "  COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))",
                "  COMPREPLY=()",
                "  _complete_versionfs versionfs \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"",
                "  echo \"$2: ${COMPREPLY[*]}\"",
                "}",
                "complete_line 'versionfs ' TOP",
                "complete_line 'versionfs run --ta' RUN",
                "");
        Out r = run(dir, Map.of(), 60, "bash", "-c", probe, "probe", script.toString());
        assertEquals(0, r.exit, r.all());
        assertTrue(r.out.contains("_complete_versionfs") && r.out.contains("versionfs"), "no 'complete' registered\n" + r.all());
        String top = r.out.lines().filter(l -> l.startsWith("TOP: ")).findFirst().orElse("");
        List<String> words = List.of(top.substring(Math.min(top.length(), 5)).split("\\s+"));
        for (String sub : subcommands()) assertTrue(words.contains(sub), "'versionfs <TAB>' does not offer " + sub + "\n" + r.all());
        String run = r.out.lines().filter(l -> l.startsWith("RUN: ")).findFirst().orElse("");
        assertTrue(List.of(run.split("\\s+")).contains("--target"), "'versionfs run --ta<TAB>' does not offer --target\n" + r.all());

        // As users get it: bash-completion loads the script on first <TAB>, found through
        // XDG_DATA_DIRS (what the modules set; versionfs is deliberately not on PATH here).
        Path bashCompletion = Path.of("/usr/share/bash-completion/bash_completion");
        assertTrue(Files.isRegularFile(bashCompletion), bashCompletion + " missing: this test needs Debian's "
                + "bash-completion (bin/prereqs --test installs it as root)");
        Map<String, String> xdg = new HashMap<>();
        xdg.put("XDG_DATA_DIRS", prefix.resolve("share").toString());
        xdg.put("BASH_COMPLETION_VERSINFO", null);
        xdg.put("BASH_COMPLETION_USER_DIR", dir.resolve("no-user-completions").toString());
        Out lazy = run(dir, xdg, 60, "bash", "-c", "source \"$1\"; __load_completion versionfs; complete -p versionfs", "probe",
                bashCompletion.toString());
        assertEquals(0, lazy.exit, "bash-completion did not find the script through XDG_DATA_DIRS\n" + lazy.all());
        assertTrue(lazy.out.contains("-F _complete_versionfs"), lazy.all());
    }

    /** A stand-in for Spack's package API: records the directives, installs with plain copies. */
    private static final String SPACK_STUB = String.join("\n",
            "import os, shutil",
            "CALLS = []",
            "class Prefix(str):",
            "    def __getattr__(self, name):",
            "        if name.startswith('__'): raise AttributeError(name)",
            "        return Prefix(os.path.join(self, name))",
            "    def join(self, name): return Prefix(os.path.join(self, name))",
            "class Package:",
            "    def __init__(self, spec=None):",
            "        self.spec = spec",
            "        self.prefix = spec.prefix if spec is not None else None",
            "def version(v, **kw): CALLS.append(('version', v, kw))",
            "def depends_on(s, **kw): CALLS.append(('depends_on', s, kw))",
            "def license(s, **kw): CALLS.append(('license', s, kw))",
            "def install_tree(src, dst): shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)",
            "def install(src, dst): shutil.copy(src, dst)",
            "def mkdirp(*ps):",
            "    for p in ps: os.makedirs(p, exist_ok=True)",
            "__all__ = ['Package', 'Prefix', 'version', 'depends_on', 'license', 'install_tree', 'install', 'mkdirp', 'CALLS']",
            "");

    private static final String SPACK_CHECK = String.join("\n",
            "import importlib.util, os, sys",
            "recipe, unpacked, dest, version = sys.argv[1:5]",
            "spec_ = importlib.util.spec_from_file_location('versionfs_recipe', recipe)",
            "mod = importlib.util.module_from_spec(spec_)",
            "spec_.loader.exec_module(mod)",
            "from spack.package import Package, Prefix, CALLS",
            "cls = mod.Versionfs",
            "assert issubclass(cls, Package), 'Versionfs is not a Package'",
            "assert ('version', version) in [c[:2] for c in CALLS], f'no version({version!r}) in {CALLS}'",
            "assert ('depends_on', 'java@17:', {'type': 'run'}) in CALLS, f'no depends_on(java@17:, type=run) in {CALLS}'",
            "assert cls.url.endswith(f'/versionfs-{version}.tar.gz'), cls.url",
            "class Java: home = '/opt/java17'",
            "class Spec:",
            "    prefix = Prefix(dest)",
            "    def __getitem__(self, name): return Java()",
            "pkg = cls(Spec())",
            "os.chdir(unpacked)",
            "pkg.install(Spec(), Prefix(dest))",
            "class Env:",
            "    def __init__(self): self.ops = []",
            "    def prepend_path(self, k, v): self.ops.append(('prepend_path', k, v))",
            "    def set(self, k, v): self.ops.append(('set', k, v))",
            "env = Env()",
            "pkg.setup_run_environment(env)",
            "assert ('prepend_path', 'XDG_DATA_DIRS', os.path.join(dest, 'share')) in env.ops, env.ops",
            "print('ok')",
            "");

    @Test
    void spackRecipeInstallsTheLayout() throws Exception {
        Path recipe = PACKAGING.resolve("spack/versionfs/package.py");
        Out compile = run(dir, Map.of("PYTHONPYCACHEPREFIX", dir.resolve("pycache").toString()), 60,
                "python3", "-m", "py_compile", recipe.toString());
        assertEquals(0, compile.exit, compile.all());
        Path stub = Files.createDirectories(dir.resolve("stub/spack"));
        Files.writeString(stub.resolve("__init__.py"), "");
        Files.writeString(stub.resolve("package.py"), SPACK_STUB);
        Path check = dir.resolve("check.py");
        Files.writeString(check, SPACK_CHECK);
        Path dest = dir.resolve("spack-prefix");
        Out r = run(dir, Map.of("PYTHONPATH", dir.resolve("stub").toString(), "PYTHONDONTWRITEBYTECODE", "1"), 60,
                "python3", check.toString(), recipe.toString(), prefix.toString(), dest.toString(), version);
        assertEquals(0, r.exit, r.all());
        assertEquals("ok", r.out.trim(), r.all());
        assertTrue(Files.isRegularFile(dest.resolve("share/man/man1/versionfs-run.1")));
        assertTrue(Files.isRegularFile(dest.resolve("share/doc/versionfs/LICENSE")));
        Out v = run(dir, Map.of(), 60, dest.resolve("bin/versionfs").toString(), "--version");
        assertEquals(0, v.exit, "the Spack-installed launcher does not run\n" + v.all());
        assertTrue(v.out.startsWith("versionfs " + version + " (commit "), v.all());
    }

    private static final String EASYCONFIG_CHECK = String.join("\n",
            "import os, sys",
            "eb, unpacked, version = sys.argv[1:4]",
            "SYSTEM = {'name': 'system', 'version': 'system'}",
            "g = {'SYSTEM': SYSTEM, 'SOURCE_TAR_GZ': '%(name)s-%(version)s.tar.gz'}",
            "exec(compile(open(eb).read(), eb, 'exec'), g)",
            "assert g['easyblock'] == 'Tarball', g['easyblock']",
            "assert g['name'] == 'versionfs' and g['version'] == version, (g['name'], g['version'])",
            "assert os.path.basename(eb) == f'versionfs-{version}.eb', eb",
            "srcs = [s % {'name': g['name'], 'version': g['version']} for s in g['sources']]",
            "assert srcs == [f'versionfs-{version}.tar.gz'], srcs",
            "assert ('Java', '17', '', SYSTEM) in g['dependencies'], g['dependencies']",
            "assert g['toolchain'] == SYSTEM",
            "assert len(g['checksums']) == 1, g['checksums']",
            "for f in g['sanity_check_paths']['files']:",
            "    assert os.path.isfile(os.path.join(unpacked, f)), f'sanity_check_paths: {f} not in the tarball'",
            "assert g['modextrapaths'].get('XDG_DATA_DIRS') == 'share', g['modextrapaths']",
            "print('ok')",
            "");

    @Test
    void easyconfigMatchesTheTarball() throws Exception {
        Path eb = PACKAGING.resolve("easybuild/versionfs-" + version + ".eb");
        assertTrue(Files.isRegularFile(eb), eb + " missing: the easyconfig must be named after the release in pom.xml");
        Path check = dir.resolve("check.py");
        Files.writeString(check, EASYCONFIG_CHECK);
        Out r = run(dir, Map.of("PYTHONDONTWRITEBYTECODE", "1"), 60, "python3", check.toString(), eb.toString(),
                prefix.toString(), version);
        assertEquals(0, r.exit, r.all());
        assertEquals("ok", r.out.trim(), r.all());
    }

    /**
     * Lmod's shell set-up as a login shell runs it (/etc/profile.d/lmod.sh is this file), installing
     * Debian's lmod first when root and it is missing; null if Lmod is not to be had.
     */
    private static Path lmodInit(StringBuilder why) throws Exception {
        Path init = Path.of("/usr/share/lmod/lmod/init/profile");
        if (Files.isRegularFile(init)) return init;
        if (!TestSupport.isRoot() || !Files.isExecutable(Path.of("/usr/bin/apt-get"))) {
            why.append("Lmod is not installed (").append(init).append(" missing) and this is not root on Debian,"
                    + " so it cannot be installed here (bin/prereqs --test installs Debian's lmod as root)");
            return null;
        }
        Out r = run(Path.of("/"), Map.of("DEBIAN_FRONTEND", "noninteractive"), 600, "apt-get",
                "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends", "lmod");
        if (r.exit == 0 && Files.isRegularFile(init)) return init;
        List<String> lines = (r.err.isBlank() ? r.out : r.err).strip().lines().toList();
        why.append("Lmod is not to be had here: 'apt-get install lmod' exited ").append(r.exit).append(" and ")
                .append(init).append(" is ").append(Files.isRegularFile(init) ? "there" : "still missing")
                .append(lines.isEmpty() ? "" : " (apt-get said: " + lines.get(lines.size() - 1) + ")");
        return null;
    }

    @Test
    void lmodModulefileLoads() throws Exception {
        Path modulefile = PACKAGING.resolve("lmod/versionfs/" + version + ".lua");
        assertTrue(Files.isRegularFile(modulefile), modulefile + " missing: the modulefile must be named after the release in pom.xml");
        StringBuilder why = new StringBuilder();
        Path init = lmodInit(why);
        assumeTrue(init != null, why.toString());

        // A module tree as a site has it: versionfs/VERSION.lua with root pointing at the unpacked
        // tarball, and a Java/17 module (here a stand-in for the JDK running this test).
        Path mp = dir.resolve("modulefiles");
        String text = Files.readString(modulefile);
        String rootLine = "local root = \"/opt/apps/versionfs/" + version + "\" -- EDIT: the folder the tarball was unpacked into";
        assertTrue(text.contains(rootLine), "the modulefile has no line: " + rootLine);
        Files.createDirectories(mp.resolve("versionfs"));
        Files.writeString(mp.resolve("versionfs/" + version + ".lua"),
                text.replace(rootLine, "local root = \"" + prefix + "\""));
        String javaHome = System.getProperty("java.home");
        Files.createDirectories(mp.resolve("Java"));
        Files.writeString(mp.resolve("Java/17.lua"), "setenv(\"JAVA_HOME\", \"" + javaHome + "\")\n"
                + "prepend_path(\"PATH\", \"" + javaHome + "/bin\")\n");
        String script = String.join("\n",
                "source \"$1\"",
                "set -eu",
                "export MODULEPATH=\"$2\"",
                "echo \"MANBEFORE: $(man -w ls 2>/dev/null || echo none)\"",
                "module load versionfs",
                "echo \"LOADED: $(module -t list 2>&1 | tr '\\n' ' ')\"",
                "echo \"WHICH: $(command -v versionfs)\"",
                "echo \"JAVA_HOME: $JAVA_HOME\"",
                "echo \"MANPATH: $MANPATH\"",
                "echo \"XDG_DATA_DIRS: $XDG_DATA_DIRS\"",
                "echo \"MAN: $(man -w versionfs-run)\"",
                "echo \"MANAFTER: $(man -w ls 2>/dev/null || echo none)\"",
                "echo \"VERSION: $(versionfs --version)\"",
                "module unload versionfs",
                "echo \"UNLOADED: $(command -v versionfs || echo gone)\"",
                "");
        Map<String, String> env = new HashMap<>();
        for (String k : List.of("JAVA_HOME", "MANPATH", "XDG_DATA_DIRS", "MODULEPATH", "MODULEPATH_ROOT", "BASH_ENV",
                "LOADEDMODULES", "_LMFILES_")) env.put(k, null);
        env.put("LMOD_ALLOW_ROOT_USE", "yes");
        Out r = run(dir, env, 120, "bash", "-c", script, "lmod-probe", init.toString(), mp.toString());
        assertEquals(0, r.exit, r.all());
        Map<String, String> got = r.out.lines().filter(l -> l.contains(": "))
                .collect(Collectors.toMap(l -> l.substring(0, l.indexOf(": ")), l -> l.substring(l.indexOf(": ") + 2), (a, b) -> b));
        assertTrue(got.getOrDefault("LOADED", "").contains("versionfs/" + version), r.all());
        assertTrue(got.getOrDefault("LOADED", "").contains("Java/17"), "Java/17 was not loaded with versionfs\n" + r.all());
        assertEquals(prefix.resolve("bin/versionfs").toString(), got.get("WHICH"), r.all());
        assertEquals(javaHome, got.get("JAVA_HOME"), r.all());
        assertTrue(Stream.of(got.getOrDefault("MANPATH", "").split(":")).anyMatch(prefix.resolve("share/man").toString()::equals), r.all());
        assertTrue(Stream.of(got.getOrDefault("XDG_DATA_DIRS", "").split(":")).anyMatch(prefix.resolve("share").toString()::equals), r.all());
        assertEquals(prefix.resolve("share/man/man1/versionfs-run.1").toString(), got.get("MAN"), r.all());
        // The system's own man pages are still found with the module loaded (MANPATH keeps its default).
        assertEquals(got.get("MANBEFORE"), got.get("MANAFTER"), r.all());
        assertTrue(versionLine(expectedCommit()).matcher(got.getOrDefault("VERSION", "")).matches(), r.all());
        assertEquals("gone", got.get("UNLOADED"), "versionfs still on PATH after 'module unload'\n" + r.all());
    }
}
