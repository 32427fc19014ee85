/*
 * Child processes, the per-test temp dir, free ports and deadline waits for
 * tests. Owns the table of spawned processes and their end-of-test kill; the
 * test framework proper (registration, cleanups) is fwtest.c.
 */
#include "fwt_proc.h"

#include "fwtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FWT_MAX_PROCS 512

/*
 * What the end-of-test cleanup needs to know about a child. Kept here rather
 * than in fwt_proc_t because cleanups run after the test function returned,
 * when a caller's fwt_proc_t on the stack no longer exists. `reaped` stops us
 * from signalling a pid the kernel may have handed to someone else.
 */
struct fwt_slot {
    int in_use;
    pid_t pid;
    int reaped;
    int status;
    char name[64];
};

static struct fwt_slot procs[FWT_MAX_PROCS];

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- processes ----------------------------------------------------------- */

static struct fwt_slot *slot_of(fwt_proc_t *p)
{
    if (p->slot < 0 || p->slot >= FWT_MAX_PROCS || !procs[p->slot].in_use ||
        procs[p->slot].pid != p->pid || p->pid <= 0)
        FWT_FAIL("fwt_proc: \"%s\" (pid %d) was not started by fwt_proc_spawn", p->name,
                 (int)p->pid);
    return &procs[p->slot];
}

/* Reaps the child if it has exited; returns 1 if it has (now or before). */
static int slot_poll(struct fwt_slot *s)
{
    if (s->reaped)
        return 1;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) {
        s->reaped = 1;
        s->status = st;
        return 1;
    }
    if (r < 0 && errno == ECHILD) {
        /* Someone else reaped it (a stray waitpid(-1)); it is gone either way. */
        s->reaped = 1;
        s->status = 0;
        return 1;
    }
    return 0;
}

static void slot_kill(struct fwt_slot *s)
{
    if (!s->in_use || s->reaped)
        return;
    kill(s->pid, SIGKILL);
    int st;
    while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
    }
    s->reaped = 1;
    s->status = st;
}

/* The cleanup registered by fwt_proc_spawn. It must not fail the test: it
 * also runs from fwt_fail and from the SIGTERM handler. */
static void proc_cleanup(void *arg)
{
    struct fwt_slot *s = arg;
    slot_kill(s);
    s->in_use = 0;
}

static void kill_all(void)
{
    for (int i = 0; i < FWT_MAX_PROCS; i++)
        slot_kill(&procs[i]);
}

void fwt_proc_spawn(fwt_proc_t *p, const char *name, char *const argv[], const char *log_path)
{
    /*
     * A restart into the same fwt_proc_t reuses its slot once the previous
     * child is reaped (its cleanup stays registered), so a test may restart
     * processes any number of times.
     */
    int reuse = -1;
    if (p->pid > 0 && p->slot >= 0 && p->slot < FWT_MAX_PROCS && procs[p->slot].in_use &&
        procs[p->slot].pid == p->pid && procs[p->slot].reaped)
        reuse = p->slot;
    memset(p, 0, sizeof(*p));
    p->slot = -1;
    snprintf(p->name, sizeof(p->name), "%s", name);
    if (snprintf(p->log_path, sizeof(p->log_path), "%s", log_path) >= (int)sizeof(p->log_path))
        FWT_FAIL("fwt_proc_spawn %s: log path too long: %s", name, log_path);

    int slot = reuse;
    for (int i = 0; i < FWT_MAX_PROCS && slot < 0; i++) {
        if (!procs[i].in_use) {
            slot = i;
            break;
        }
    }
    if (slot < 0)
        FWT_FAIL("fwt_proc_spawn %s: more than %d processes in one test", name, FWT_MAX_PROCS);

    /* Everything the child needs is prepared here: between fork and exec in a
     * process that may run ZooKeeper client threads, only async-signal-safe
     * calls are allowed (no malloc, no stdio). */
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        FWT_FAIL("fwt_proc_spawn %s: open %s: %s", name, log_path, strerror(errno));
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0)
        FWT_FAIL("fwt_proc_spawn %s: open /dev/null: %s", name, strerror(errno));
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0)
        FWT_FAIL("fwt_proc_spawn %s: pipe2: %s", name, strerror(errno));
    struct rlimit rl;
    int maxfd = 4096;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 65536)
        maxfd = (int)rl.rlim_cur;
    pid_t parent = getpid();

    pid_t pid = fork();
    if (pid < 0)
        FWT_FAIL("fwt_proc_spawn %s: fork: %s", name, strerror(errno));
    if (pid == 0) {
        /* Die with the test process. The parent may already have died
         * between fork and prctl, in which case no signal would ever come. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0) {
            int e = errno;
            (void)!write(errpipe[1], &e, sizeof(e));
            _exit(127);
        }
        /* The test's own sockets (ZooKeeper client connections, listeners)
         * must not leak into a server: a leaked client socket would keep a
         * connection open that the test believes it closed. */
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            for (int fd = 3; fd < maxfd; fd++)
                fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        /* fwtest ignores SIGPIPE, and ignored signals survive exec. */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        int e = errno;
        (void)!write(errpipe[1], &e, sizeof(e));
        _exit(127);
    }

    close(errpipe[1]);
    close(logfd);
    close(nullfd);
    int child_errno = 0;
    ssize_t n;
    while ((n = read(errpipe[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR) {
    }
    close(errpipe[0]);
    if (n > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        FWT_FAIL("fwt_proc_spawn %s: cannot execute %s: %s", name, argv[0], strerror(child_errno));
    }

    struct fwt_slot *s = &procs[slot];
    memset(s, 0, sizeof(*s));
    s->in_use = 1;
    s->pid = pid;
    snprintf(s->name, sizeof(s->name), "%s", name);
    p->pid = pid;
    p->slot = slot;
    if (reuse < 0)
        fwt_defer(proc_cleanup, s);
}

int fwt_proc_signal(fwt_proc_t *p, int sig)
{
    struct fwt_slot *s = slot_of(p);
    if (slot_poll(s))
        return -ESRCH;
    return kill(s->pid, sig) == 0 ? 0 : -errno;
}

int fwt_proc_wait(fwt_proc_t *p, int timeout_ms, int *status)
{
    struct fwt_slot *s = slot_of(p);
    int64_t deadline = fwt_now_ms() + timeout_ms;
    int delay = 1;
    for (;;) {
        if (slot_poll(s)) {
            if (status != NULL)
                *status = s->status;
            return 0;
        }
        int64_t left = deadline - fwt_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        sleep_ms(delay < left ? delay : (int)left);
        if (delay < 50)
            delay *= 2;
    }
}

void fwt_proc_stop(fwt_proc_t *p, int timeout_ms)
{
    struct fwt_slot *s = slot_of(p);
    if (slot_poll(s))
        return;
    kill(s->pid, SIGTERM);
    if (fwt_proc_wait(p, timeout_ms, NULL) == 0)
        return;
    fprintf(stderr, "fwt_proc_stop: %s (pid %d) ignored SIGTERM for %d ms; sending SIGKILL\n",
            s->name, (int)s->pid, timeout_ms);
    kill(s->pid, SIGKILL);
    if (fwt_proc_wait(p, 10000, NULL) != 0)
        FWT_FAIL("fwt_proc_stop: %s (pid %d) survived SIGKILL for 10 s", s->name, (int)s->pid);
}

int fwt_proc_running(fwt_proc_t *p)
{
    return !slot_poll(slot_of(p));
}

/* ---- temp dir -------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "fwt_tmpdir: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

struct fwt_tmp {
    char path[FWT_PATH_MAX];
    int made;
};

/* fwt_tmpdir() and fwt_tmpdir_mem(). */
static struct fwt_tmp tmp_disk, tmp_mem;

static void tmpdir_cleanup(void *arg)
{
    struct fwt_tmp *t = arg;
    if (!t->made)
        return;
    t->made = 0;
    /* Normally every child's own cleanup has run by now (they were registered
     * later); this covers a child spawned before the first fwt_tmpdir call, so
     * nothing writes into the directory while it is being removed. */
    kill_all();
    const char *keep = getenv("FW_TEST_KEEP");
    if (keep != NULL && strcmp(keep, "1") == 0) {
        fprintf(stderr, "kept %s\n", t->path);
        return;
    }
    nftw(t->path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tmpdir_make(struct fwt_tmp *t, const char *base)
{
    if (t->made)
        return t->path;
    if (snprintf(t->path, sizeof(t->path), "%s/freeway-test-XXXXXX", base) >= (int)sizeof(t->path))
        FWT_FAIL("fwt_tmpdir: base directory name too long: %s", base);
    if (mkdtemp(t->path) == NULL)
        FWT_FAIL("fwt_tmpdir: mkdtemp %s: %s", t->path, strerror(errno));
    t->made = 1;
    fwt_defer(tmpdir_cleanup, t);
    return t->path;
}

const char *fwt_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    return tmpdir_make(&tmp_disk, base);
}

const char *fwt_tmpdir_mem(void)
{
    struct stat st;
    if (stat("/dev/shm", &st) != 0 || !S_ISDIR(st.st_mode) || access("/dev/shm", W_OK | X_OK) != 0)
        return fwt_tmpdir();
    return tmpdir_make(&tmp_mem, "/dev/shm");
}

/* ---- ports ------------------------------------------------------------------- */

void fwt_free_ports(int *ports, int n)
{
    int fds[64];
    if (n < 1 || n > 64)
        FWT_FAIL("fwt_free_ports: n=%d out of range", n);
    for (int i = 0; i < n; i++) {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa.sin_port = 0;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0)
            FWT_FAIL("fwt_free_ports: socket: %s", strerror(errno));
        if (bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0)
            FWT_FAIL("fwt_free_ports: bind 127.0.0.1:0: %s", strerror(errno));
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

int fwt_free_port(void)
{
    int port;
    fwt_free_ports(&port, 1);
    return port;
}

/* ---- waiting and files ---------------------------------------------------------- */

void fwt_wait_until(int (*cond)(void *arg), void *arg, int timeout_ms, const char *what)
{
    int64_t start = fwt_now_ms();
    int64_t deadline = start + timeout_ms;
    int delay = 1;
    for (;;) {
        if (cond(arg))
            return;
        int64_t now = fwt_now_ms();
        if (now >= deadline)
            break;
        int64_t left = deadline - now;
        sleep_ms(delay < left ? delay : (int)left);
        if (delay < 50)
            delay = delay * 2 > 50 ? 50 : delay * 2;
    }
    /* One last look: cond may have spent the final stretch blocked. */
    if (cond(arg))
        return;
    FWT_FAIL("timed out after %d ms waiting for %s", timeout_ms, what);
}

/* Reads the whole file into a NUL-terminated heap buffer; NULL on error. */
static char *read_file(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (len + 1 == cap) {
            char *nbuf = realloc(buf, cap * 2);
            if (nbuf == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nbuf;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (buf != NULL) {
        buf[len] = '\0';
        *len_out = len;
    }
    return buf;
}

int fwt_file_contains(const char *path, const char *needle)
{
    size_t len;
    char *buf = read_file(path, &len);
    if (buf == NULL)
        return 0;
    int found = memmem(buf, len, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

char *fwt_file_tail(const char *path, int max_lines, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    buf[0] = '\0';
    size_t flen;
    char *all = read_file(path, &flen);
    if (all == NULL)
        return buf;
    /* Ignore one trailing newline so it does not count as an empty line. */
    size_t end = flen;
    if (end > 0 && all[end - 1] == '\n')
        end--;
    size_t start = end;
    int lines = 0;
    while (start > 0 && end - start < len - 1) {
        if (all[start - 1] == '\n' && ++lines == max_lines)
            break;
        start--;
    }
    memcpy(buf, all + start, end - start);
    buf[end - start] = '\0';
    free(all);
    return buf;
}

/* The directory of this test binary (build/<mode>/tests) into dir. */
static void self_dir(char *dir, size_t cap, const char *who)
{
    ssize_t n = readlink("/proc/self/exe", dir, cap - 1);
    if (n < 0)
        FWT_FAIL("%s: readlink /proc/self/exe: %s", who, strerror(errno));
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        FWT_FAIL("%s: odd executable path %s", who, dir);
    *slash = '\0';
}

/* build/<mode>/DIR/NAME, from this test binary's build/<mode>/tests/. */
static const char *built_path(const char *dir, const char *name)
{
    static char path[FWT_PATH_MAX];
    char self[FWT_PATH_MAX];
    self_dir(self, sizeof(self), "fwt_bin");
    if (snprintf(path, sizeof(path), "%s/../%s/%s", self, dir, name) >= (int)sizeof(path))
        FWT_FAIL("fwt_bin: path too long");
    if (access(path, X_OK) != 0)
        FWT_FAIL("fwt_bin: %s is not built (%s)", path, strerror(errno));
    return path;
}

const char *fwt_bin(const char *name)
{
    return built_path("bin", name);
}

const char *fwt_example(const char *name)
{
    return built_path("examples", name);
}

const char *fwt_tool(const char *name)
{
    return built_path("tools", name);
}

const char *fwt_source(const char *rel)
{
    static char path[FWT_PATH_MAX];
    char self[FWT_PATH_MAX];
    self_dir(self, sizeof(self), "fwt_source");
    if (snprintf(path, sizeof(path), "%s/../../../%s", self, rel) >= (int)sizeof(path))
        FWT_FAIL("fwt_source: path too long");
    if (access(path, R_OK) != 0)
        FWT_FAIL("fwt_source: %s: %s", path, strerror(errno));
    return path;
}

int fwt_run(char *const argv[], int timeout_ms, char **out)
{
    static int serial;
    char log[FWT_PATH_MAX];
    snprintf(log, sizeof(log), "%.*s/run-%d.log", FWT_PATH_MAX - 32, fwt_tmpdir(), ++serial);
    fwt_proc_t p;
    fwt_proc_spawn(&p, argv[0], argv, log);
    int status;
    if (fwt_proc_wait(&p, timeout_ms, &status) != 0)
        FWT_FAIL("fwt_run: %s did not finish within %d ms", argv[0], timeout_ms);
    size_t len;
    char *text = read_file(log, &len);
    if (text == NULL)
        text = strdup("");
    /* A sanitizer report in a child fails the test, whatever its exit status. */
    if (strstr(text, "ERROR: AddressSanitizer") || strstr(text, "ERROR: LeakSanitizer") ||
        strstr(text, "runtime error:"))
        FWT_FAIL("fwt_run: sanitizer report from %s:\n%s", argv[0], text);
    if (out != NULL)
        *out = text;
    else
        free(text);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

/* The repository's top directory, from this binary's path (build/<mode>/tests/NAME). */
const char *fwt_repo_root(void)
{
    static char root[PATH_MAX];
    if (root[0] != '\0')
        return root;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    FWT_ASSERT(n > 0);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    FWT_ASSERT(slash != NULL);
    *slash = '\0';
    char up[PATH_MAX + 16];
    snprintf(up, sizeof(up), "%s/../../..", self);
    if (realpath(up, root) == NULL)
        FWT_FAIL("cannot resolve the repository root %s", up);
    return root;
}

/* The first executable name on $PATH (fwt_proc_spawn does no PATH search). */
const char *fwt_find_program(const char *name, const char *package, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    char *copy = strdup(path != NULL ? path : "/usr/bin:/bin");
    FWT_ASSERT(copy != NULL);
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
        if (snprintf(buf, len, "%s/%s", dir, name) < (int)len && access(buf, X_OK) == 0) {
            free(copy);
            return buf;
        }
    }
    free(copy);
    FWT_FAIL("no %s on PATH: install the Debian package %s (scripts/install-deps does)", name,
             package);
}
