/*
 * A SPANK plugin for the test cluster that registers pyxis's srun options (--container-image,
 * --container-name, --container-mounts, ...) so the real srun accepts them, and hands each option
 * it received to the step's tasks as an environment variable:
 *
 *   SFLOW_PYXIS_CONTAINER_IMAGE=<value>        one per option given (a flag's value is "1")
 *   SFLOW_PYXIS_OPTIONS="--container-image=<value> --container-writable ..."   all of them
 *
 * It runs no container: it proves what reached the step, not that an image ran.
 * Built by scripts/dev-slurm from Debian's Slurm headers (libslurm-dev).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <slurm/spank.h>

SPANK_PLUGIN(pyxis, 1);

static int noop(int val, const char *optarg, int remote) { return 0; }

/* pyxis's option names: with an argument (has_arg 1) or flags (0) */
static struct spank_option options[] = {
    {"container-image", "[USER@][REGISTRY#]IMAGE[:TAG]|PATH", "image to run the step in", 1, 0, noop},
    {"container-name", "NAME[:FLAG]", "name of a container to create or reuse", 1, 0, noop},
    {"container-mounts", "SRC[:DST[:FLAGS]][,...]", "bind mounts", 1, 0, noop},
    {"container-workdir", "PATH", "working directory inside the container", 1, 0, noop},
    {"container-save", "PATH", "save the container to a squashfs file", 1, 0, noop},
    {"container-env", "NAME[,NAME...]", "variables the container's own value of wins over", 1, 0, noop},
    {"container-writable", NULL, "make the container writable", 0, 0, noop},
    {"container-readonly", NULL, "make the container read-only", 0, 0, noop},
    {"container-mount-home", NULL, "mount the user's home directory", 0, 0, noop},
    {"no-container-mount-home", NULL, "do not mount the user's home directory", 0, 0, noop},
    {"container-remap-root", NULL, "become root inside the container", 0, 0, noop},
    {"no-container-remap-root", NULL, "do not become root inside the container", 0, 0, noop},
    {"container-entrypoint", NULL, "run the image's entrypoint", 0, 0, noop},
    {"no-container-entrypoint", NULL, "do not run the image's entrypoint", 0, 0, noop},
    SPANK_OPTIONS_TABLE_END,
};

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    for (struct spank_option *opt = options; opt->name; opt++)
        if (spank_option_register(sp, opt) != ESPANK_SUCCESS)
            return -1;
    return 0;
}

/* SFLOW_PYXIS_ + the option name in capitals, '-' as '_' */
static void env_name(const char *option, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "SFLOW_PYXIS_");
    for (const char *c = option; *c && n + 1 < size; c++)
        out[n++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
    out[n] = '\0';
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
    char all[16384] = "", name[128], item[4096];
    for (struct spank_option *opt = options; opt->name; opt++) {
        char *value = NULL;
        if (spank_option_getopt(sp, opt, &value) != ESPANK_SUCCESS)
            continue;
        env_name(opt->name, name, sizeof name);
        spank_setenv(sp, name, opt->has_arg && value ? value : "1", 1);
        if (opt->has_arg && value)
            snprintf(item, sizeof item, "%s--%s=%s", *all ? " " : "", opt->name, value);
        else
            snprintf(item, sizeof item, "%s--%s", *all ? " " : "", opt->name);
        strncat(all, item, sizeof all - strlen(all) - 1);
    }
    if (*all)
        spank_setenv(sp, "SFLOW_PYXIS_OPTIONS", all, 1);
    return 0;
}
