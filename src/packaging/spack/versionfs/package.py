# Spack recipe for versionfs, installing from the release tarball (mvn package writes
# target/versionfs-VERSION.tar.gz). Copy this folder into a Spack repository
# (spack repo create / repos.yaml), set url to where your site keeps the tarball, put its
# sha256 (sha256sum versionfs-VERSION.tar.gz) in version(), then: spack install versionfs
from spack.package import *


class Versionfs(Package):
    """Keep every version of a file that a program keeps overwriting (e.g. ORCA's job.gbw):
    'versionfs run --target job.gbw -- orca job.inp' in a batch script mounts a small FUSE
    filesystem, saves a version at each close() after a write, and puts the file back at the
    end. Needs fusermount, libfuse2 and a usable /dev/fuse on the compute nodes."""

    homepage = "https://example.org/versionfs"  # EDIT: your site's page for versionfs
    url = "https://example.org/versionfs/versionfs-0.1.0.tar.gz"  # EDIT: where the tarball is kept

    license("MIT")

    # EDIT: the sha256 of the tarball you publish (not reproducible across builds: the jar
    # records the build day).
    version("0.1.0", sha256="0000000000000000000000000000000000000000000000000000000000000000")

    depends_on("java@17:", type="run")

    def install(self, spec, prefix):
        # The tarball is already the install layout: bin/versionfs (launcher),
        # share/versionfs/versionfs.jar, share/man/man1/*.1, share/bash-completion/completions/.
        install_tree("bin", prefix.bin)
        install_tree("share", prefix.share)
        mkdirp(prefix.share.doc.versionfs)
        install("README.md", prefix.share.doc.versionfs)
        install("LICENSE", prefix.share.doc.versionfs)

    def setup_run_environment(self, env):
        # bash-completion (2.x) looks for completions in $XDG_DATA_DIRS/bash-completion/completions.
        env.prepend_path("XDG_DATA_DIRS", self.prefix.share)
        # The launcher runs $JAVA_HOME/bin/java when JAVA_HOME is set, else java on PATH.
        env.set("JAVA_HOME", self.spec["java"].home)
