/*
 * A SPANK plugin for the test cluster: pyxis's srun options (--container-image, --container-name,
 * --container-mounts, ...) with a real OCI runtime (runc) behind them, on an unpacked root
 * filesystem instead of pyxis's enroot/squashfs images.
 *
 * For a step with --container-image or --container-name, on each node:
 *   user_init (slurmstepd, as root)    mounts an overlay of the image's root filesystem (upper dir
 *                                      per step, or kept per container name and job), and
 *                                      starts a runc container on it (mount namespace only, the
 *                                      step's --container-mounts as bind mounts)
 *   task_init_privileged (each task)   joins that container's mount namespace (setns) and changes
 *                                      to --container-workdir, or to the task's own directory when
 *                                      it exists there: the task's execve then runs in the image
 *   exit (slurmstepd)                  deletes the runc container and unmounts the overlay
 *   job_epilog                         removes the job's named containers' upper dirs
 *
 * Every option received is also handed to the tasks as an environment variable
 * (SFLOW_PYXIS_CONTAINER_IMAGE=<value>, a flag's value is "1"; SFLOW_PYXIS_OPTIONS="--container-image=
 * <value> --container-writable ..."), so tests can check exactly what reached the step.
 *
 * plugstack.conf arguments: runtime=PATH (runc), state=DIR (overlays, bundles, runc's state),
 * images=DIR (one root filesystem per image, see image_rootfs). Built by scripts/dev-slurm from
 * Debian's Slurm headers (libslurm-dev).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

SPANK_PLUGIN(pyxis, 1);

/* The options this step was given, by index in `options` (NULL: not given; a flag's value is ""). */
static char *given[16];

static int take(int val, const char *optarg, int remote)
{
    free(given[val]);
    given[val] = strdup(optarg ? optarg : "");
    return 0;
}

/* pyxis's option names: with an argument (has_arg 1) or flags (0) */
static struct spank_option options[] = {
    {"container-image", "[USER@][REGISTRY#]IMAGE[:TAG]|PATH", "image to run the step in", 1, 0, take},
    {"container-name", "NAME[:FLAG]", "name of a container to create or reuse", 1, 1, take},
    {"container-mounts", "SRC[:DST[:FLAGS]][,...]", "bind mounts", 1, 2, take},
    {"container-workdir", "PATH", "working directory inside the container", 1, 3, take},
    {"container-save", "PATH", "save the container to a squashfs file", 1, 4, take},
    {"container-env", "NAME[,NAME...]", "variables the container's own value of wins over", 1, 5, take},
    {"container-writable", NULL, "make the container writable", 0, 6, take},
    {"container-readonly", NULL, "make the container read-only", 0, 7, take},
    {"container-mount-home", NULL, "mount the user's home directory", 0, 8, take},
    {"no-container-mount-home", NULL, "do not mount the user's home directory", 0, 9, take},
    {"container-remap-root", NULL, "become root inside the container", 0, 10, take},
    {"no-container-remap-root", NULL, "do not become root inside the container", 0, 11, take},
    {"container-entrypoint", NULL, "run the image's entrypoint", 0, 12, take},
    {"no-container-entrypoint", NULL, "do not run the image's entrypoint", 0, 13, take},
    SPANK_OPTIONS_TABLE_END,
};

static char runtime[PATH_MAX] = "/usr/sbin/runc";
static char state_dir[PATH_MAX] = "/tmp/sflow-slurm-lab/containers";
static char images_dir[PATH_MAX] = "/tmp/sflow-slurm-lab/images";

/* The container this slurmstepd started (inherited by its tasks through fork). */
static struct {
    int active;
    pid_t pid, runtime_pid; /* the container's process; the runtime in the foreground, its parent */
    char id[256], step_dir[PATH_MAX], workdir[PATH_MAX];
} ctr;

#define MSG "pyxis (test cluster): "

/* The value of an option given to this step (a flag's value is ""), or NULL. */
static const char *option(const char *name)
{
    for (struct spank_option *opt = options; opt->name; opt++)
        if (strcmp(opt->name, name) == 0)
            return given[opt->val];
    return NULL;
}

static void parse_args(int ac, char **av)
{
    for (int i = 0; i < ac; i++) {
        if (strncmp(av[i], "runtime=", 8) == 0)
            snprintf(runtime, sizeof runtime, "%s", av[i] + 8);
        else if (strncmp(av[i], "state=", 6) == 0)
            snprintf(state_dir, sizeof state_dir, "%s", av[i] + 6);
        else if (strncmp(av[i], "images=", 7) == 0)
            snprintf(images_dir, sizeof images_dir, "%s", av[i] + 7);
    }
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
    parse_args(ac, av);
    for (struct spank_option *opt = options; opt->name; opt++)
        if (spank_option_register(sp, opt) != ESPANK_SUCCESS)
            return -1;
    return 0;
}

/* ------------------------------------------------------------------ small helpers */

static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* True if PATH is a mount point (its device differs from its parent's). */
static int is_mounted(const char *path)
{
    char parent[PATH_MAX];
    struct stat a, b;
    snprintf(parent, sizeof parent, "%s/..", path);
    return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* Starts argv (stdin /dev/null, output appended to LOG); its pid, or -1. */
static pid_t spawn(const char *log, char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        closefrom(3);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Its exit status, -1 if it died (or was already reaped by slurmstepd). */
static int wait_for(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs argv (stdin /dev/null, output appended to LOG); returns its exit status, -1 if it died. */
static int run(const char *log, char *const argv[])
{
    pid_t pid = spawn(log, argv);
    return pid < 0 ? -1 : wait_for(pid);
}

static void remove_tree(const char *path)
{
    char *argv[] = {"/bin/rm", "-rf", "--one-file-system", (char *)path, NULL};
    run(NULL, argv);
}

/* The last line of a log file, for an error message. */
static const char *last_line(const char *log)
{
    static char line[512];
    char buf[512];
    FILE *f = fopen(log, "r");
    line[0] = '\0';
    if (!f)
        return line;
    while (fgets(buf, sizeof buf, f))
        if (buf[0] != '\n')
            snprintf(line, sizeof line, "%s", buf);
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    return line;
}

/* JSON string body: quotes and backslashes escaped, control characters dropped. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s >= 0x20)
            fputc(*s, f);
    }
    fputc('"', f);
}

/* ------------------------------------------------------------------ images and mounts */

/*
 * An image's root filesystem: an absolute path that is a directory is used as it is; any other
 * reference loses its docker:// scheme, USER@ and REGISTRY# parts, has '/' replaced by '+' and is
 * looked up under images_dir ("sflow-test:local" -> <images>/sflow-test:local). No pulls.
 */
static int image_rootfs(const char *image, char *out, size_t size)
{
    if (image[0] == '/') {
        snprintf(out, size, "%s", image);
        return is_dir(out) ? 0 : -1;
    }
    const char *ref = image;
    if (strncmp(ref, "docker://", 9) == 0)
        ref += 9;
    const char *at = strchr(ref, '@'), *hash = strchr(ref, '#');
    if (at && (!hash || at < hash))
        ref = at + 1;
    if ((hash = strchr(ref, '#')))
        ref = hash + 1;
    int n = snprintf(out, size, "%s/", images_dir);
    for (; *ref && (size_t)n + 1 < size; ref++)
        out[n++] = *ref == '/' ? '+' : *ref;
    out[n] = '\0';
    return is_dir(out) ? 0 : -1;
}

/* Writes one bind mount per "SRC[:DST[:FLAGS]]" of a --container-mounts value. */
static int write_mounts(FILE *f, const char *list, const char *home)
{
    char buf[16384], *save = NULL;
    snprintf(buf, sizeof buf, "%s", list ? list : "");
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *src = item, *dst = strchr(item, ':'), *flags = NULL;
        if (dst) {
            *dst++ = '\0';
            if ((flags = strchr(dst, ':')))
                *flags++ = '\0';
        }
        if (!dst || !*dst)
            dst = src;
        if (src[0] != '/' || dst[0] != '/') {
            slurm_error(MSG "--container-mounts: '%s': source and destination must be absolute paths", item);
            return -1;
        }
        if (access(src, F_OK) < 0) {
            slurm_error(MSG "--container-mounts: source %s does not exist on this node", src);
            return -1;
        }
        int ro = flags && (strcmp(flags, "ro") == 0 || strstr(flags, "ro+") || strstr(flags, "+ro"));
        fputs(",\n  {\"type\": \"bind\", \"source\": ", f);
        json_str(f, src);
        fputs(", \"destination\": ", f);
        json_str(f, dst);
        fprintf(f, ", \"options\": [\"rbind\", \"%s\"]}", ro ? "ro" : "rw");
    }
    if (home && *home == '/' && is_dir(home)) {
        fputs(",\n  {\"type\": \"bind\", \"source\": ", f);
        json_str(f, home);
        fputs(", \"destination\": ", f);
        json_str(f, home);
        fputs(", \"options\": [\"rbind\", \"rw\"]}", f);
    }
    return 0;
}

/* The OCI bundle: the container only has its own mount namespace and sleeps; tasks join it. */
static int write_bundle(const char *dir, const char *rootfs, int readonly, const char *mounts, const char *home)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("{\"ociVersion\": \"1.0.2\",\n"
          " \"process\": {\"terminal\": false, \"user\": {\"uid\": 0, \"gid\": 0}, \"cwd\": \"/\",\n"
          "  \"args\": [\"/bin/sleep\", \"infinity\"], \"env\": [\"PATH=/usr/bin:/bin\"]},\n"
          " \"root\": {\"path\": ",
          f);
    json_str(f, rootfs);
    fprintf(f, ", \"readonly\": %s},\n \"mounts\": [\n", readonly ? "true" : "false");
    fputs("  {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
          "  {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
          " \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},\n"
          "  {\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\","
          " \"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\"]},\n"
          "  {\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\","
          " \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", \"size=65536k\"]},\n"
          "  {\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\","
          " \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]}",
          f);
    int rc = write_mounts(f, mounts, home);
    fputs("\n ],\n \"linux\": {\"namespaces\": [{\"type\": \"mount\"}], \"cgroupsPath\": \"/sflow-lab/", f);
    fprintf(f, "%s\"}\n}\n", ctr.id);
    if (fclose(f) != 0)
        return -1;
    return rc;
}

/* ------------------------------------------------------------------ the container's life */

/*
 * Mounts the step's root filesystem at <step dir>/rootfs: an overlay of LOWER with UPPER as its
 * upper dir (the step's own, or a container name's) and a work dir of the step's. Two steps that
 * share a name may mount the same upper dir at once: index=off lets them (as separate processes
 * writing separate files, as pyxis allows).
 */
static int mount_overlay(const char *lower, const char *upper)
{
    char work[PATH_MAX], root[PATH_MAX], data[3 * PATH_MAX + 64];
    snprintf(work, sizeof work, "%s/work", ctr.step_dir);
    snprintf(root, sizeof root, "%s/rootfs", ctr.step_dir);
    if (mkdirs(upper) < 0 || mkdirs(work) < 0 || mkdirs(root) < 0)
        return -1;
    /* ':' separates lower dirs and ',' options: both are escaped in paths */
    size_t n = (size_t)snprintf(data, sizeof data, "lowerdir=");
    for (const char *c = lower; *c && n + 3 < sizeof data; c++) {
        if (*c == ':' || *c == ',' || *c == '\\')
            data[n++] = '\\';
        data[n++] = *c;
    }
    snprintf(data + n, sizeof data - n, ",upperdir=%s,workdir=%s,index=off", upper, work);
    return mount("overlay", root, "overlay", 0, data);
}

/* The image a named container was made from (recorded at its creation), or "". */
static void recorded_image(const char *dir, char *out, size_t size, const char *record)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/image", dir);
    out[0] = '\0';
    FILE *f = fopen(path, record ? "w" : "r");
    if (!f)
        return;
    if (record)
        fputs(record, f);
    else if (fgets(out, (int)size, f))
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* Mounts this step's root filesystem (a name's upper dir is reused); its path goes to ROOTFS. */
static int prepare_rootfs(const char *job_dir, const char *image, const char *name, char *rootfs, size_t size)
{
    char dir[PATH_MAX], upper[PATH_MAX + 8], lower[PATH_MAX], known[PATH_MAX];
    if (name)
        snprintf(dir, sizeof dir, "%s/name-%s", job_dir, name);
    else
        snprintf(dir, sizeof dir, "%s", ctr.step_dir);
    if (mkdirs(dir) < 0)
        return slurm_error(MSG "cannot create %s: %m", dir), -1;
    recorded_image(dir, known, sizeof known, NULL);
    if (!*known && !image)
        return slurm_error(MSG "container '%s' does not exist on this node and no --container-image was given", name),
               -1;
    const char *use = *known ? known : image; /* pyxis: an existing name wins over the image */
    if (image_rootfs(use, lower, sizeof lower) < 0)
        return slurm_error(MSG "image '%s' is not on this cluster: no root filesystem at %s (this lab pulls no "
                               "images; see docs/slurm-lab.md)",
                           use, lower),
               -1;
    snprintf(upper, sizeof upper, "%s/upper", dir);
    if (mount_overlay(lower, upper) < 0)
        return slurm_error(MSG "overlay of %s on %s/rootfs failed: %m", lower, ctr.step_dir), -1;
    if (!*known)
        recorded_image(dir, known, sizeof known, use);
    snprintf(rootfs, size, "%s/rootfs", ctr.step_dir);
    return 0;
}

static int runtime_cmd(const char *log, const char *a, const char *b, const char *c, const char *d,
                       const char *e, const char *f, const char *g)
{
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s/runc", state_dir);
    char *argv[] = {runtime, "--root", root, (char *)a, (char *)b, (char *)c, (char *)d, (char *)e, (char *)f, (char *)g, NULL};
    return run(log, argv);
}

static void remove_container(const char *id, const char *log)
{
    runtime_cmd(log, "kill", id, "KILL", NULL, NULL, NULL, NULL);
    runtime_cmd(log, "delete", "--force", id, NULL, NULL, NULL, NULL);
}

/* Removes this step's container and overlay; an unnamed one's upper dir goes with it. */
static void teardown(void)
{
    char rootfs[PATH_MAX], state[2 * PATH_MAX];
    runtime_cmd(NULL, "kill", ctr.id, "KILL", NULL, NULL, NULL, NULL);
    if (ctr.runtime_pid > 0) /* it reaps the container's process and deletes the container */
        wait_for(ctr.runtime_pid);
    ctr.runtime_pid = 0;
    /* slurmstepd may have killed runc first: its orphaned process is ours (subreaper) to reap */
    snprintf(state, sizeof state, "%s/runc/%s", state_dir, ctr.id);
    for (int i = 0; i < 200; i++) { /* up to 10 s */
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        remove_container(ctr.id, NULL);
        if (access(state, F_OK) < 0)
            break;
        usleep(50000);
    }
    snprintf(rootfs, sizeof rootfs, "%s/rootfs", ctr.step_dir);
    if (is_mounted(rootfs))
        umount2(rootfs, MNT_DETACH);
    remove_tree(ctr.step_dir);
    /* the node's and the job's dirs too once empty (a named container's upper dir keeps them) */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", ctr.step_dir);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        *slash = '\0';
        rmdir(dir);
    }
    ctr.active = 0;
}

static int job_dir_of(spank_t sp, char *out, size_t size, uint32_t *job)
{
    char host[256];
    if (spank_get_item(sp, S_JOB_ID, job) != ESPANK_SUCCESS || gethostname(host, sizeof host) < 0)
        return -1;
    snprintf(out, size, "%s/job-%u/%s", state_dir, *job, host);
    return 0;
}

static int start_container(spank_t sp, const char *image, const char *name_opt)
{
    char job_dir[PATH_MAX], name[256] = "", rootfs[PATH_MAX], log[PATH_MAX + 16], pidfile[PATH_MAX + 8],
        host[256], home[PATH_MAX] = "";
    uint32_t job, step;
    if (job_dir_of(sp, job_dir, sizeof job_dir, &job) < 0 ||
        spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS || gethostname(host, sizeof host) < 0)
        return slurm_error(MSG "cannot tell the job, step or node"), -1;
    if (step >= SLURM_BATCH_SCRIPT) /* batch and extern steps: not ours */
        return 0;
    if (name_opt) {
        snprintf(name, sizeof name, "%s", name_opt);
        name[strcspn(name, ":")] = '\0'; /* NAME[:FLAG] */
        for (char *c = name; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
                return slurm_error(MSG "--container-name '%s': use letters, digits, '-', '_' and '.'", name), -1;
    }

    snprintf(ctr.id, sizeof ctr.id, "sflow-%u.%u-%s", job, step, host);
    snprintf(ctr.step_dir, sizeof ctr.step_dir, "%s/step-%u", job_dir, step);
    const char *workdir = option("container-workdir");
    snprintf(ctr.workdir, sizeof ctr.workdir, "%s", workdir ? workdir : "");
    int made = mkdirs(ctr.step_dir);
    if (made < 0 && errno == ENOENT) /* another step's teardown removed the emptied node dir */
        made = mkdirs(ctr.step_dir);
    if (made < 0)
        return slurm_error(MSG "cannot create %s: %m", ctr.step_dir), -1;
    snprintf(log, sizeof log, "%s/runtime.log", ctr.step_dir);
    snprintf(pidfile, sizeof pidfile, "%s/pid", ctr.step_dir);

    if (prepare_rootfs(job_dir, image, name[0] ? name : NULL, rootfs, sizeof rootfs) < 0)
        return teardown(), -1;
    ctr.active = 1;

    int writable = option("container-writable") && !option("container-readonly");
    if (option("container-mount-home") && !option("no-container-mount-home"))
        spank_getenv(sp, "HOME", home, sizeof home);
    if (write_bundle(ctr.step_dir, rootfs, !writable, option("container-mounts"), home) < 0)
        return teardown(), -1;
    /*
     * The runtime stays in the foreground, a child of slurmstepd: it is the parent of the
     * container's process, so it reaps it and deletes the container when teardown kills it (a
     * detached container's process would be an orphan of PID 1, and a zombie that PID 1 is slow
     * to reap keeps its cgroup busy, so the container could not be deleted).
     */
    char root[PATH_MAX + 8];
    snprintf(root, sizeof root, "%s/runc", state_dir);
    char *argv[] = {runtime, "--root", root, "run", "--pid-file", pidfile, "--bundle", ctr.step_dir, ctr.id, NULL};
    if ((ctr.runtime_pid = spawn(log, argv)) < 0) {
        slurm_error(MSG "cannot start %s: %m", runtime);
        return teardown(), -1;
    }
    FILE *f = NULL;
    ctr.pid = 0;
    for (int i = 0; i < 6000 && ctr.pid <= 0; i++) { /* up to 60 s: its pid file, or its end */
        int status;
        if (waitpid(ctr.runtime_pid, &status, WNOHANG) == ctr.runtime_pid) {
            ctr.runtime_pid = 0;
            slurm_error(MSG "%s run %s failed: %s", runtime, ctr.id, last_line(log));
            return teardown(), -1;
        }
        if ((f = fopen(pidfile, "r"))) {
            if (fscanf(f, "%d", &ctr.pid) != 1)
                ctr.pid = 0;
            fclose(f);
        }
        if (ctr.pid <= 0)
            usleep(10000);
    }
    if (ctr.pid <= 0) {
        slurm_error(MSG "container %s did not start in 60s: %s", ctr.id, last_line(log));
        return teardown(), -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ SPANK hooks */

/* In slurmstepd, before the tasks fork; its errors reach the user's srun. Root for the mounts. */
int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
    const char *image = option("container-image"), *name = option("container-name");
    if (!image && !name)
        return 0;
    parse_args(ac, av);
    /* orphans of the container's runtime come to slurmstepd, which reaps them (not PID 1) */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    uid_t euid = geteuid();
    gid_t egid = getegid();
    if ((euid != 0 && seteuid(0) < 0) || (egid != 0 && setegid(0) < 0))
        return slurm_error(MSG "cannot regain root to start the container: %m"), -1;
    int rc = start_container(sp, image && *image ? image : NULL, name && *name ? name : NULL);
    if ((egid != 0 && setegid(egid) < 0) || (euid != 0 && seteuid(euid) < 0))
        return slurm_error(MSG "cannot drop root again: %m"), -1;
    return rc;
}

/* In each task, as root: the container's mount namespace, joined in task_init. */
static int ns_fd = -1;

int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
    if (!ctr.active)
        return 0;
    char ns[64];
    snprintf(ns, sizeof ns, "/proc/%d/ns/mnt", (int)ctr.pid);
    if ((ns_fd = open(ns, O_RDONLY | O_CLOEXEC)) < 0)
        return slurm_error(MSG "cannot open container %s's namespace %s: %m", ctr.id, ns), -1;
    return 0;
}

/*
 * Joins the container just before the task's execve, after slurmstepd changed to the task's
 * directory: then the task starts in --container-workdir, else in that same directory when the
 * container has it (a mounted path), else in /.
 */
static int enter_container(void)
{
    char cwd[PATH_MAX] = "";
    if (!getcwd(cwd, sizeof cwd))
        cwd[0] = '\0';
    if (setns(ns_fd, CLONE_NEWNS) < 0)
        return slurm_error(MSG "cannot join container %s: %m", ctr.id), -1;
    close(ns_fd);
    if (*ctr.workdir && chdir(ctr.workdir) < 0)
        return slurm_error(MSG "--container-workdir %s: %m", ctr.workdir), -1;
    if (!*ctr.workdir && (!*cwd || chdir(cwd) < 0) && chdir("/") < 0)
        return slurm_error(MSG "cannot change to / in container %s: %m", ctr.id), -1;
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
    if (ns_fd >= 0 && enter_container() < 0)
        return -1;
    char all[16384] = "", name[128], item[4096];
    for (struct spank_option *opt = options; opt->name; opt++) {
        const char *value = given[opt->val];
        if (!value)
            continue;
        env_name(opt->name, name, sizeof name);
        spank_setenv(sp, name, opt->has_arg ? value : "1", 1);
        if (opt->has_arg)
            snprintf(item, sizeof item, "%s--%s=%s", *all ? " " : "", opt->name, value);
        else
            snprintf(item, sizeof item, "%s--%s", *all ? " " : "", opt->name);
        strncat(all, item, sizeof all - strlen(all) - 1);
    }
    if (*all)
        spank_setenv(sp, "SFLOW_PYXIS_OPTIONS", all, 1);
    return 0;
}

int slurm_spank_exit(spank_t sp, int ac, char **av)
{
    if (ctr.active && spank_context() == S_CTX_REMOTE)
        teardown();
    return 0;
}

/* At the job's end on each node: its named containers (and anything a step left) go. */
int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
    char job_dir[PATH_MAX], path[2 * PATH_MAX + 16], host[256], prefix[64], suffix[260];
    uint32_t job;
    parse_args(ac, av);
    if (job_dir_of(sp, job_dir, sizeof job_dir, &job) < 0 || gethostname(host, sizeof host) < 0)
        return 0;
    snprintf(prefix, sizeof prefix, "sflow-%u.", job);
    snprintf(suffix, sizeof suffix, "-%s", host);
    snprintf(path, sizeof path, "%s/runc", state_dir);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name), m = strlen(suffix);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && n > m && strcmp(e->d_name + n - m, suffix) == 0)
            remove_container(e->d_name, NULL);
    }
    if (d)
        closedir(d);
    d = opendir(job_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        snprintf(path, sizeof path, "%s/%s/rootfs", job_dir, e->d_name);
        if (e->d_name[0] != '.' && is_mounted(path))
            umount2(path, MNT_DETACH);
    }
    if (d)
        closedir(d);
    remove_tree(job_dir);
    snprintf(path, sizeof path, "%s/job-%u", state_dir, job);
    rmdir(path);
    return 0;
}
