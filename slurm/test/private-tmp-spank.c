/*
 * A SPANK plugin for versionfs's two-node test cluster that does what the private-tmpdir plugin
 * of real sites does: every job step (the batch step too)
 * runs in a mount namespace of its own, with a fresh /tmp. A FUSE mount made by one step is then
 * invisible to every other step, as on such clusters. Built and enabled by
 * `VERSIONFS_SLURM2_PRIVATE_TMP=1 two-nodes-up.sh` (plugstack.conf: required PLUGIN.so [DIR]).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <slurm/spank.h>

SPANK_PLUGIN(versionfs_private_tmp, 1);

/* In slurmstepd (remote context), after the options and before the tasks start: what private-tmpdir does. */
int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
    const char *dir = ac > 0 ? av[0] : "/tmp";
    (void) sp;
    if (spank_context() != S_CTX_REMOTE)
        return ESPANK_SUCCESS;
    if (unshare(CLONE_NEWNS) != 0) {
        slurm_error("versionfs_private_tmp: unshare(CLONE_NEWNS): %s", strerror(errno));
        return ESPANK_ERROR;
    }
    /* Nothing this step mounts goes back out; what the node mounts later still comes in. */
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) {
        slurm_error("versionfs_private_tmp: making / rslave: %s", strerror(errno));
        return ESPANK_ERROR;
    }
    if (mount("private-tmp", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0) {
        slurm_error("versionfs_private_tmp: tmpfs on %s: %s", dir, strerror(errno));
        return ESPANK_ERROR;
    }
    return ESPANK_SUCCESS;
}
