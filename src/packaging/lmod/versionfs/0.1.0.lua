-- Lmod modulefile for versionfs installed from the release tarball:
--   tar -xzf versionfs-0.1.0.tar.gz -C /opt/apps && mv /opt/apps/versionfs-0.1.0 /opt/apps/versionfs/0.1.0
-- then put this file at MODULEPATH_DIR/versionfs/0.1.0.lua and set root below.
help([[
versionfs 0.1.0: keep every version of a file that a program keeps overwriting.
In a batch script:  versionfs run --target job.gbw -- orca job.inp
Manual: man versionfs, man versionfs-run. Needs Java 17+ (loaded with this module).
]])
whatis("Name: versionfs")
whatis("Version: 0.1.0")
whatis("Description: keep every version of a file that a program keeps overwriting (FUSE)")

local root = "/opt/apps/versionfs/0.1.0" -- EDIT: the folder the tarball was unpacked into

-- Java 17+: the launcher runs $JAVA_HOME/bin/java, else java on PATH. EDIT the module name to
-- your site's (EasyBuild installs it as Java/17).
depends_on("Java/17")

prepend_path("PATH", pathJoin(root, "bin"))
prepend_path("MANPATH", pathJoin(root, "share/man"))
-- bash-completion (2.x) finds share/bash-completion/completions/versionfs through XDG_DATA_DIRS
-- when 'versionfs <TAB>' is first pressed.
prepend_path("XDG_DATA_DIRS", pathJoin(root, "share"))
