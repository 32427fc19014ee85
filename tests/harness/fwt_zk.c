/*
 * Real ZooKeeper servers for tests: config generation, the java command line,
 * readiness through the `srvr` four-letter command, and stop/kill/restart.
 * Process bookkeeping and end-of-test kills belong to fwt_proc.c.
 */
#include "fwt_zk.h"

#include "fwtest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ZK_READY_TIMEOUT_MS 30000
#define ZK_STOP_TIMEOUT_MS  10000
/* Long enough for a JVM busy starting up on a loaded 2-core machine. */
#define ZK_PROBE_TIMEOUT_MS 2000
#define ZK_START_ATTEMPTS   4
#define ZK_TAIL_LINES       25

/* Numbers server directories, so retries and several servers never share one. */
static int zk_seq;

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *java_path(void)
{
    const char *java = getenv("JAVA");
    return java != NULL && *java != '\0' ? java : "/usr/bin/java";
}

static const char *zk_jar(void)
{
    const char *jar = getenv("FW_ZK_JAR");
    return jar != NULL && *jar != '\0' ? jar : "/usr/share/java/zookeeper.jar";
}

/*
 * Debian's classpath has no SLF4J binding, so the server would log nothing
 * (not even why it exited). slf4j-simple comes with libslf4j-java, which
 * libzookeeper-java depends on; it logs INFO to stderr without a config file
 * and costs no measurable startup time.
 */
#define ZK_SLF4J_SIMPLE "/usr/share/java/slf4j-simple.jar"

static void check_install(void)
{
    if (access(java_path(), X_OK) != 0)
        FWT_FAIL("fwt_zk: no java at %s (set $JAVA, or run scripts/install-deps)", java_path());
    if (access(zk_jar(), R_OK) != 0)
        FWT_FAIL("fwt_zk: no ZooKeeper jar at %s (set $FW_ZK_JAR, or run scripts/install-deps)",
                 zk_jar());
}

#define SET_PATH(dst, ...)                                                                         \
    do {                                                                                           \
        if (snprintf((dst), sizeof(dst), __VA_ARGS__) >= (int)sizeof(dst))                         \
            FWT_FAIL("fwt_zk: path too long under %s", fwt_tmpdir());                              \
    } while (0)

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        FWT_FAIL("fwt_zk: mkdir %s: %s", path, strerror(errno));
}

/* Fills zk's paths for a new directory DIR (created, with DIR/data). */
static void zk_init_dir(fwt_zk_t *zk, const char *dir, int id)
{
    memset(zk, 0, sizeof(*zk));
    zk->id = id;
    SET_PATH(zk->dir, "%s", dir);
    SET_PATH(zk->cfg_path, "%s/zoo.cfg", dir);
    SET_PATH(zk->log_path, "%s/server.log", dir);
    make_dir(zk->dir);
    char data[FWT_PATH_MAX];
    SET_PATH(data, "%s/data", dir);
    make_dir(data);
    if (id > 0) {
        char myid[FWT_PATH_MAX];
        SET_PATH(myid, "%s/data/myid", dir);
        FILE *f = fopen(myid, "w");
        if (f == NULL || fprintf(f, "%d\n", id) < 0 || fclose(f) != 0)
            FWT_FAIL("fwt_zk: write %s: %s", myid, strerror(errno));
    }
}

/* Writes DIR/zoo.cfg (engineering-notes §2.2); servers is the server.N block
 * of an ensemble, or NULL for a standalone server. */
static void zk_write_cfg(fwt_zk_t *zk, const char *servers)
{
    snprintf(zk->connect, sizeof(zk->connect), "127.0.0.1:%d", zk->port);
    FILE *f = fopen(zk->cfg_path, "w");
    if (f == NULL)
        FWT_FAIL("fwt_zk: create %s: %s", zk->cfg_path, strerror(errno));
    fprintf(f,
            "# Written by tests/harness/fwt_zk.c for one test.\n"
            "tickTime=200\n"
            "initLimit=10\n"
            "syncLimit=5\n"
            "dataDir=%s/data\n"
            "clientPort=%d\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=srvr,ruok,mntr,stat\n"
            "maxSessionTimeout=10000\n"
            "forceSync=no\n"
            "%s",
            zk->dir, zk->port, servers != NULL ? servers : "");
    if (ferror(f) || fclose(f) != 0)
        FWT_FAIL("fwt_zk: write %s: %s", zk->cfg_path, strerror(errno));
}

/* Notes in the server log where each start begins, so a log that spans
 * retries and restarts can be read. */
static void log_marker(fwt_zk_t *zk, const char *what)
{
    int fd = open(zk->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    dprintf(fd, "==== fwt_zk: %s %s (client port %d) ====\n", what, zk->dir, zk->port);
    close(fd);
}

static void zk_spawn(fwt_zk_t *zk, const char *what)
{
    char cp[2 * FWT_PATH_MAX];
    if (access(ZK_SLF4J_SIMPLE, R_OK) == 0)
        snprintf(cp, sizeof(cp), "%s:%s", zk_jar(), ZK_SLF4J_SIMPLE);
    else
        snprintf(cp, sizeof(cp), "%s", zk_jar());
    char *argv[] = {
        (char *)java_path(),
        "-Xmx128m",
        "-XX:+UseSerialGC",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
        "-cp",
        cp,
        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        zk->cfg_path,
        NULL,
    };
    char name[32];
    if (zk->id > 0)
        snprintf(name, sizeof(name), "zk%d", zk->id);
    else
        snprintf(name, sizeof(name), "zk");
    log_marker(zk, what);
    fwt_proc_spawn(&zk->proc, name, argv, zk->log_path);
}

/* ---- srvr ------------------------------------------------------------------------ */

/* Points at the "Mode: " line in buf, or NULL. */
static const char *find_mode(const char *buf)
{
    if (strncmp(buf, "Mode: ", 6) == 0)
        return buf;
    const char *m = strstr(buf, "\nMode: ");
    return m != NULL ? m + 1 : NULL;
}

/*
 * Sends `srvr` to 127.0.0.1:port and reads the answer into out (NUL-
 * terminated). Returns the bytes read or a negative errno. Stops reading as
 * soon as the answer is decided instead of waiting for EOF: a 3.8 server
 * that is still loading its database answers "not currently serving" and
 * then may fail to close the socket (an NPE in ServerCnxn.cleanupWriterSocket,
 * seen in its log), and a SIGSTOPped server accepts in the kernel but never
 * answers; both would otherwise hang the probe.
 */
static int srvr_query(int port, char *out, size_t len, int timeout_ms)
{
    out[0] = '\0';
    int64_t deadline = fwt_now_ms() + timeout_ms;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    int rc = 0;
    size_t got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto out;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int64_t left = deadline - fwt_now_ms();
        if (poll(&pfd, 1, left > 0 ? (int)left : 0) <= 0) {
            rc = -ETIMEDOUT;
            goto out;
        }
        int err = 0;
        socklen_t elen = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) {
            rc = -err;
            goto out;
        }
    }
    if (send(fd, "srvr", 4, MSG_NOSIGNAL) != 4) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        int64_t left = deadline - fwt_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            rc = got > 0 ? 0 : -ETIMEDOUT;
            break;
        }
        ssize_t n = recv(fd, out + got, len - 1 - got, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            rc = got > 0 ? 0 : -errno;
            break;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        out[got] = '\0';
        const char *mode = find_mode(out);
        if ((mode != NULL && strchr(mode, '\n') != NULL) ||
            strstr(out, "not currently serving") != NULL || got == len - 1)
            break;
    }
out:
    close(fd);
    return rc < 0 ? rc : (int)got;
}

int fwt_zk_mode(fwt_zk_t *zk, char *mode, size_t len)
{
    char buf[2048];
    int rc = srvr_query(zk->port, buf, sizeof(buf), ZK_PROBE_TIMEOUT_MS);
    if (rc < 0)
        return rc;
    const char *m = find_mode(buf);
    if (m == NULL)
        return -EAGAIN;
    m += 6;
    size_t n = strcspn(m, "\r\n");
    if (len > 0) {
        if (n >= len)
            n = len - 1;
        memcpy(mode, m, n);
        mode[n] = '\0';
    }
    return 0;
}

int fwt_zk_serving(fwt_zk_t *zk)
{
    char mode[32];
    return fwt_zk_mode(zk, mode, sizeof(mode)) == 0;
}

int fwt_zk_ensemble_leader(fwt_zk_t zk[3])
{
    for (int i = 0; i < 3; i++) {
        char mode[32];
        if (fwt_zk_mode(&zk[i], mode, sizeof(mode)) == 0 && strcmp(mode, "leader") == 0)
            return i;
    }
    return -1;
}

/* ---- waiting for servers ---------------------------------------------------------- */

/*
 * Waits until every server in zks[0..n) serves. Returns 0; or -ECHILD with
 * *dead set when one of them exited; or -ETIMEDOUT.
 */
static int wait_serving(fwt_zk_t *zks, int n, int timeout_ms, int *dead)
{
    int64_t deadline = fwt_now_ms() + timeout_ms;
    int serving[3] = {0, 0, 0};
    int delay = 1;
    for (;;) {
        int all = 1;
        for (int i = 0; i < n; i++) {
            if (serving[i])
                continue;
            if (!fwt_proc_running(&zks[i].proc)) {
                *dead = i;
                return -ECHILD;
            }
            serving[i] = fwt_zk_serving(&zks[i]);
            all = all && serving[i];
        }
        if (all)
            return 0;
        int64_t left = deadline - fwt_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        sleep_ms(delay < left ? delay : (int)left);
        delay = delay * 2 > 50 ? 50 : delay * 2;
    }
}

static const char *exit_desc(fwt_proc_t *p, char *buf, size_t len)
{
    int st = 0;
    if (fwt_proc_wait(p, 0, &st) != 0)
        snprintf(buf, len, "still running");
    else if (WIFEXITED(st))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
    else
        snprintf(buf, len, "wait status %#x", st);
    return buf;
}

/* ---- standalone -------------------------------------------------------------------- */

void fwt_zk_start(fwt_zk_t *zk)
{
    check_install();
    char tail[3072] = "";
    char why[64] = "";
    for (int attempt = 1; attempt <= ZK_START_ATTEMPTS; attempt++) {
        char dir[FWT_PATH_MAX];
        SET_PATH(dir, "%s/zk%d", fwt_tmpdir(), ++zk_seq);
        zk_init_dir(zk, dir, 0);
        zk->port = fwt_free_port();
        zk_write_cfg(zk, NULL);
        zk_spawn(zk, "start");
        int dead = -1;
        int rc = wait_serving(zk, 1, ZK_READY_TIMEOUT_MS, &dead);
        if (rc == 0)
            return;
        exit_desc(&zk->proc, why, sizeof(why));
        fwt_file_tail(zk->log_path, ZK_TAIL_LINES, tail, sizeof(tail));
        if (rc == -ETIMEDOUT) {
            fwt_zk_kill(zk);
            FWT_FAIL("fwt_zk_start: server in %s not serving on port %d after %d ms\n"
                     "--- tail of %s ---\n%s",
                     zk->dir, zk->port, ZK_READY_TIMEOUT_MS, zk->log_path, tail);
        }
        fprintf(stderr, "fwt_zk_start: server on port %d %s (attempt %d of %d)\n", zk->port, why,
                attempt, ZK_START_ATTEMPTS);
    }
    FWT_FAIL("fwt_zk_start: server exited before serving %d times; last one %s\n"
             "--- tail of %s ---\n%s",
             ZK_START_ATTEMPTS, why, zk->log_path, tail);
}

void fwt_zk_stop(fwt_zk_t *zk)
{
    fwt_proc_stop(&zk->proc, ZK_STOP_TIMEOUT_MS);
}

void fwt_zk_kill(fwt_zk_t *zk)
{
    fwt_proc_signal(&zk->proc, SIGKILL);
    if (fwt_proc_wait(&zk->proc, ZK_STOP_TIMEOUT_MS, NULL) != 0)
        FWT_FAIL("fwt_zk_kill: %s (pid %d) survived SIGKILL for %d ms", zk->proc.name,
                 (int)zk->proc.pid, ZK_STOP_TIMEOUT_MS);
}

void fwt_zk_restart(fwt_zk_t *zk)
{
    if (fwt_proc_running(&zk->proc))
        fwt_zk_stop(zk);
    char tail[3072] = "";
    char why[64] = "";
    for (int attempt = 1; attempt <= ZK_START_ATTEMPTS; attempt++) {
        zk_spawn(zk, "restart");
        int dead = -1;
        int rc = wait_serving(zk, 1, ZK_READY_TIMEOUT_MS, &dead);
        if (rc == 0)
            return;
        exit_desc(&zk->proc, why, sizeof(why));
        fwt_file_tail(zk->log_path, ZK_TAIL_LINES, tail, sizeof(tail));
        if (rc == -ETIMEDOUT) {
            fwt_zk_kill(zk);
            FWT_FAIL("fwt_zk_restart: server in %s not serving on port %d after %d ms\n"
                     "--- tail of %s ---\n%s",
                     zk->dir, zk->port, ZK_READY_TIMEOUT_MS, zk->log_path, tail);
        }
        /* The port must stay the same (clients know it), so the only remedy
         * for a transient bind failure is to wait a little and try again. */
        fprintf(stderr, "fwt_zk_restart: server on port %d %s (attempt %d of %d)\n", zk->port, why,
                attempt, ZK_START_ATTEMPTS);
        sleep_ms(200 * attempt);
    }
    FWT_FAIL("fwt_zk_restart: server exited before serving %d times; last one %s\n"
             "--- tail of %s ---\n%s",
             ZK_START_ATTEMPTS, why, zk->log_path, tail);
}

/* ---- ensemble ------------------------------------------------------------------------ */

void fwt_zk_ensemble_start(fwt_zk_t zk[3])
{
    check_install();
    char msg[4096] = "";
    for (int attempt = 1; attempt <= ZK_START_ATTEMPTS; attempt++) {
        /* Nine distinct ports: client, quorum and election for each member. */
        int ports[9];
        fwt_free_ports(ports, 9);
        char ens[FWT_PATH_MAX];
        SET_PATH(ens, "%s/ensemble%d", fwt_tmpdir(), ++zk_seq);
        make_dir(ens);
        char servers[256];
        snprintf(servers, sizeof(servers),
                 "server.1=127.0.0.1:%d:%d\nserver.2=127.0.0.1:%d:%d\nserver.3=127.0.0.1:%d:%d\n",
                 ports[3], ports[6], ports[4], ports[7], ports[5], ports[8]);
        for (int i = 0; i < 3; i++) {
            char dir[FWT_PATH_MAX];
            SET_PATH(dir, "%s/zk%d", ens, i + 1);
            zk_init_dir(&zk[i], dir, i + 1);
            zk[i].port = ports[i];
            zk_write_cfg(&zk[i], servers);
        }
        for (int i = 0; i < 3; i++) {
            snprintf(zk[i].ensemble_connect, sizeof(zk[i].ensemble_connect),
                     "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", ports[0], ports[1], ports[2]);
            zk_spawn(&zk[i], "ensemble start");
        }
        int dead = -1;
        int rc = wait_serving(zk, 3, ZK_READY_TIMEOUT_MS, &dead);
        if (rc == 0)
            return;

        /* Collect what each member says before killing them all; a port
         * taken by someone else makes one member exit (client or election
         * port) or keep re-electing (quorum port), so retry on new ports. */
        size_t off = 0;
        for (int i = 0; i < 3; i++) {
            char why[64], tail[1024];
            exit_desc(&zk[i].proc, why, sizeof(why));
            fwt_file_tail(zk[i].log_path, 8, tail, sizeof(tail));
            int w = snprintf(msg + off, sizeof(msg) - off, "--- zk%d (%s), tail of %s ---\n%s\n",
                             i + 1, why, zk[i].log_path, tail);
            if (w > 0 && (size_t)w < sizeof(msg) - off)
                off += (size_t)w;
        }
        for (int i = 0; i < 3; i++) {
            if (fwt_proc_running(&zk[i].proc))
                fwt_zk_kill(&zk[i]);
        }
        fprintf(stderr, "fwt_zk_ensemble_start: %s (attempt %d of %d)\n",
                rc == -ECHILD ? "a member exited early" : "not all members serving in time",
                attempt, ZK_START_ATTEMPTS);
        if (rc == -ETIMEDOUT && attempt >= 2)
            break;
    }
    FWT_FAIL("fwt_zk_ensemble_start: no serving ensemble after retries\n%s", msg);
}

const char *fwt_zk_ensemble_connect(fwt_zk_t zk[3])
{
    return zk[0].ensemble_connect;
}

/* ---- session expiry ------------------------------------------------------------------ */

/*
 * Waits until the second handle is connected or learns the session is gone;
 * returns its state (0 if neither happened by deadline_ms). Polling
 * zoo_state() every 0.1 ms is simpler than a watcher plus a condition
 * variable; it did not change the odds of the race (about even either way).
 */
static int dup_wait(zhandle_t *zh, int64_t deadline_ms)
{
    for (;;) {
        int state = zoo_state(zh);
        if (state == ZOO_CONNECTED_STATE || state == ZOO_EXPIRED_SESSION_STATE)
            return state;
        if (fwt_now_ms() >= deadline_ms)
            return 0;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100000};
        nanosleep(&ts, NULL);
    }
}

void fwt_zk_expire_session(const char *connect, const clientid_t *cid, int (*expired)(void *arg),
                           void *arg, int timeout_ms)
{
    int64_t start = fwt_now_ms();
    int64_t deadline = start + timeout_ms;
    for (int round = 1;; round++) {
        zhandle_t *zh = zookeeper_init(connect, NULL, 10000, cid, NULL, ZOO_NO_LOG_CLIENTENV);
        if (zh == NULL)
            FWT_FAIL("fwt_zk_expire_session: zookeeper_init(%s): %s", connect, strerror(errno));
        int state = dup_wait(zh, deadline);
        /* Connected: closing sends CLOSE, which ends the session. Expired:
         * the session is already gone. Either way this handle is done. */
        zookeeper_close(zh);
        if (state == 0)
            FWT_FAIL("fwt_zk_expire_session: second handle on session %#llx did not connect "
                     "within %d ms",
                     (unsigned long long)cid->client_id, timeout_ms);

        int64_t round_end = fwt_now_ms() + 500;
        if (round_end > deadline)
            round_end = deadline;
        int delay = 1;
        for (;;) {
            if (expired(arg)) {
                if (round > 1)
                    fprintf(stderr, "fwt_zk_expire_session: session %#llx ended in round %d\n",
                            (unsigned long long)cid->client_id, round);
                return;
            }
            int64_t left = round_end - fwt_now_ms();
            if (left <= 0)
                break;
            sleep_ms(delay < left ? delay : (int)left);
            delay = delay * 2 > 50 ? 50 : delay * 2;
        }
        if (fwt_now_ms() >= deadline)
            FWT_FAIL("fwt_zk_expire_session: session %#llx not expired after %d ms (%d rounds)",
                     (unsigned long long)cid->client_id, timeout_ms, round);
    }
}

zhandle_t *fwt_zk_client(const char *connect)
{
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zhandle_t *zh = zookeeper_init(connect, NULL, 10000, NULL, NULL, ZOO_NO_LOG_CLIENTENV);
    if (zh == NULL)
        FWT_FAIL("zookeeper_init(%s): %s", connect, strerror(errno));
    /* The sync API answers ZCONNECTIONLOSS until the handshake is done. */
    int64_t deadline = fwt_now_ms() + 10000;
    int rc;
    while ((rc = zoo_exists(zh, "/", 0, NULL)) == ZCONNECTIONLOSS && fwt_now_ms() < deadline)
        usleep(20 * 1000);
    if (rc != ZOK)
        FWT_FAIL("connecting to ZooKeeper at %s: %s", connect, zerror(rc));
    return zh;
}

/* The file under the test's temp dir that script goes into, for stdin. */
static void write_script(const char *script, char *path, size_t cap)
{
    static int serial;
    snprintf(path, cap, "%.*s/zkcli-%d.txt", FWT_PATH_MAX - 32, fwt_tmpdir(), ++serial);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(script, f) < 0 || fclose(f) != 0)
        FWT_FAIL("fwt_zk: write %s: %s", path, strerror(errno));
}

char *fwt_zk_cli(const char *connect, const char *script)
{
    check_install();
    char path[FWT_PATH_MAX], cmd[3 * FWT_PATH_MAX];
    write_script(script, path, sizeof(path));
    /* The shell only redirects stdin (fwt_run gives children /dev/null). */
    snprintf(cmd, sizeof(cmd),
             "exec '%s' -cp '%s' org.apache.zookeeper.ZooKeeperMain -server %s < '%s'", java_path(),
             zk_jar(), connect, path);
    char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *out = NULL;
    fwt_run(argv, 60000, &out);
    return out;
}

void fwt_zk_digest_id(const char *user_password, char *out, size_t cap)
{
    check_install();
    char cmd[3 * FWT_PATH_MAX];
    snprintf(cmd, sizeof(cmd),
             "exec '%s' -cp '%s' org.apache.zookeeper.server.auth.DigestAuthenticationProvider "
             "'%s'",
             java_path(), zk_jar(), user_password);
    char *const argv[] = {"/bin/sh", "-c", cmd, NULL};
    char *text = NULL;
    fwt_run(argv, 60000, &text);
    /* "user:password->user:BASE64" on the last line (SLF4J's notes come first). */
    const char *arrow = strstr(text, "->");
    if (arrow == NULL)
        FWT_FAIL("fwt_zk: no digest id in:\n%s", text);
    size_t n = strcspn(arrow + 2, "\r\n");
    if (n >= cap)
        FWT_FAIL("fwt_zk: digest id too long");
    memcpy(out, arrow + 2, n);
    out[n] = '\0';
    free(text);
}
