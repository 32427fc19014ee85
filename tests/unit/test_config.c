/* Option tables: flags, config files, defaults, --help, durations and sizes. */
#include "fwtest.h"
#include "fwt_proc.h"

#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

typedef struct demo_cfg_s {
    char *config;
    char *listen;
    char *zk;
    int64_t workers;
    int verbose;
    uint64_t max_bytes;
    int64_t sync;
} demo_cfg_t;

static const fw_option_t demo_opts[] = {
    {"config", FW_OPT_STRING, offsetof(demo_cfg_t, config), NULL, "FILE", "config file"},
    {"listen", FW_OPT_STRING, offsetof(demo_cfg_t, listen), "127.0.0.1:7000", "ADDR:PORT",
     "where to listen"},
    {"zk", FW_OPT_STRING, offsetof(demo_cfg_t, zk), "${FW_TEST_ZK_VAR:-127.0.0.1:2181/freeway}",
     "HOSTS[/chroot]", "ZooKeeper"},
    {"workers", FW_OPT_INT, offsetof(demo_cfg_t, workers), "4", "N", "threads"},
    {"verbose", FW_OPT_BOOL, offsetof(demo_cfg_t, verbose), "false", NULL, "say more"},
    {"max-bytes", FW_OPT_SIZE, offsetof(demo_cfg_t, max_bytes), "64M", "BYTES", "memory bound"},
    {"sync-interval", FW_OPT_DURATION, offsetof(demo_cfg_t, sync), "5ms", "DURATION", "sync"},
    FW_OPTIONS_END,
};

static demo_cfg_t cfg;
static char err[512];

static void free_cfg(void *arg)
{
    (void)arg;
    fw_config_free(demo_opts, &cfg);
}

static int parse(int argc, char **argv, char ***rest, int *nrest)
{
    fw_config_free(demo_opts, &cfg);
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    return fw_config_parse(demo_opts, &cfg, argc, argv, rest, nrest, err, sizeof(err));
}

FWT_TEST(defaults_and_flags)
{
    fwt_defer(free_cfg, NULL);
    unsetenv("FW_TEST_ZK_VAR");
    char **rest;
    int nrest;
    char *a1[] = {"prog", NULL};
    FWT_ASSERT_INT_EQ(parse(1, a1, &rest, &nrest), FW_CONFIG_OK);
    FWT_ASSERT_STR_EQ(cfg.listen, "127.0.0.1:7000");
    FWT_ASSERT_STR_EQ(cfg.zk, "127.0.0.1:2181/freeway");
    FWT_ASSERT_INT_EQ(cfg.workers, 4);
    FWT_ASSERT_INT_EQ(cfg.verbose, 0);
    FWT_ASSERT_UINT_EQ(cfg.max_bytes, 64u << 20);
    FWT_ASSERT_INT_EQ(cfg.sync, 5);
    FWT_ASSERT_INT_EQ(nrest, 0);

    setenv("FW_TEST_ZK_VAR", "10.0.0.1:2181/x", 1);
    char *a2[] = {"prog",      "send",  "--listen=0.0.0.0:1", "--workers", "-3",
                  "--verbose", "file1", "--max-bytes",        "1G",        "--sync-interval",
                  "2m",        "--",    "--workers",          NULL};
    FWT_ASSERT_INT_EQ(parse(13, a2, &rest, &nrest), FW_CONFIG_OK);
    FWT_ASSERT_STR_EQ(cfg.listen, "0.0.0.0:1");
    FWT_ASSERT_STR_EQ(cfg.zk, "10.0.0.1:2181/x");
    FWT_ASSERT_INT_EQ(cfg.workers, -3);
    FWT_ASSERT_INT_EQ(cfg.verbose, 1);
    FWT_ASSERT_UINT_EQ(cfg.max_bytes, 1u << 30);
    FWT_ASSERT_INT_EQ(cfg.sync, 120000);
    /* Positional arguments stay in order; after --, flags are positional too. */
    FWT_ASSERT_INT_EQ(nrest, 3);
    FWT_ASSERT_STR_EQ(rest[0], "send");
    FWT_ASSERT_STR_EQ(rest[1], "file1");
    FWT_ASSERT_STR_EQ(rest[2], "--workers");
    unsetenv("FW_TEST_ZK_VAR");
}

FWT_TEST(errors_name_the_option)
{
    fwt_defer(free_cfg, NULL);
    char **rest;
    int nrest;
    struct {
        char *arg1, *arg2;
        const char *needle;
    } cases[] = {
        {"--nope", NULL, "unknown option --nope"},
        {"--workers", "ten", "--workers: \"ten\" is not an integer"},
        {"--max-bytes", "12T", "is not a size"},
        {"--sync-interval", "5", "is not a duration"},
        {"--sync-interval", "5sec", "is not a duration"},
        {"--verbose=maybe", NULL, "is not true or false"},
        {"--listen", NULL, "--listen needs a value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = {"prog", cases[i].arg1, cases[i].arg2, NULL};
        int argc = cases[i].arg2 ? 3 : 2;
        FWT_ASSERT_INT_EQ(parse(argc, argv, &rest, &nrest), -EINVAL);
        if (strstr(err, cases[i].needle) == NULL)
            FWT_FAIL("error \"%s\" does not say \"%s\"", err, cases[i].needle);
    }
    char *help[] = {"prog", "--workers", "x", "--help", NULL};
    FWT_ASSERT_INT_EQ(parse(4, help, &rest, &nrest), FW_CONFIG_HELP);
    char *version[] = {"prog", "--version", NULL};
    FWT_ASSERT_INT_EQ(parse(2, version, &rest, &nrest), FW_CONFIG_VERSION);
}

FWT_TEST(config_file_then_flags)
{
    fwt_defer(free_cfg, NULL);
    char path[600];
    snprintf(path, sizeof(path), "%s/demo.conf", fwt_tmpdir());
    FILE *f = fopen(path, "w");
    FWT_ASSERT(f != NULL);
    fprintf(f, "# a comment\n\n  listen = 127.0.0.1:9000  \nworkers=8\nverbose = yes\n"
               "max-bytes = 2K\n");
    fclose(f);
    char **rest;
    int nrest;
    char *argv[] = {"prog", "--config", path, "--workers", "9", NULL};
    FWT_ASSERT_INT_EQ(parse(5, argv, &rest, &nrest), FW_CONFIG_OK);
    FWT_ASSERT_STR_EQ(cfg.listen, "127.0.0.1:9000"); /* from the file */
    FWT_ASSERT_INT_EQ(cfg.workers, 9);               /* the flag wins */
    FWT_ASSERT_INT_EQ(cfg.verbose, 1);
    FWT_ASSERT_UINT_EQ(cfg.max_bytes, 2048);
    FWT_ASSERT_INT_EQ(cfg.sync, 5); /* neither: the default */
    FWT_ASSERT_STR_EQ(cfg.config, path);

    f = fopen(path, "w");
    fprintf(f, "workers = 1\nbogus = 2\n");
    fclose(f);
    FWT_ASSERT_INT_EQ(parse(3, argv, &rest, &nrest), -EINVAL);
    if (strstr(err, "demo.conf:2: unknown option \"bogus\"") == NULL)
        FWT_FAIL("error \"%s\" does not name the file, line and key", err);
    f = fopen(path, "w");
    fprintf(f, "workers 1\n");
    fclose(f);
    FWT_ASSERT_INT_EQ(parse(3, argv, &rest, &nrest), -EINVAL);
    FWT_ASSERT(strstr(err, "expected `name = value`") != NULL);
    char *missing[] = {"prog", "--config", "/nonexistent/x.conf", NULL};
    FWT_ASSERT_INT_EQ(parse(3, missing, &rest, &nrest), -ENOENT);
    FWT_ASSERT(strstr(err, "/nonexistent/x.conf") != NULL);
}

FWT_TEST(durations_and_sizes)
{
    int64_t ms;
    uint64_t bytes;
    FWT_ASSERT_OK(fw_parse_duration("250ms", &ms));
    FWT_ASSERT_INT_EQ(ms, 250);
    FWT_ASSERT_OK(fw_parse_duration("0", &ms));
    FWT_ASSERT_INT_EQ(ms, 0);
    FWT_ASSERT_OK(fw_parse_duration("1h", &ms));
    FWT_ASSERT_INT_EQ(ms, 3600000);
    const char *bad_d[] = {"", "ms", "-1s", "1.5s", "1 s", "10", "1d", "99999999999999999999h"};
    for (size_t i = 0; i < sizeof(bad_d) / sizeof(bad_d[0]); i++)
        if (fw_parse_duration(bad_d[i], &ms) != -EINVAL)
            FWT_FAIL("duration \"%s\" accepted", bad_d[i]);
    FWT_ASSERT_OK(fw_parse_size("4096", &bytes));
    FWT_ASSERT_UINT_EQ(bytes, 4096);
    FWT_ASSERT_OK(fw_parse_size("3M", &bytes));
    FWT_ASSERT_UINT_EQ(bytes, 3u << 20);
    const char *bad_s[] = {"", "K", "1k", "1KB", "-1", "1.5M", "17179869184G"};
    for (size_t i = 0; i < sizeof(bad_s) / sizeof(bad_s[0]); i++)
        if (fw_parse_size(bad_s[i], &bytes) != -EINVAL)
            FWT_FAIL("size \"%s\" accepted", bad_s[i]);
}

FWT_TEST(usage_lists_every_option)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    fw_config_usage(demo_opts, f);
    fclose(f);
    for (const fw_option_t *o = demo_opts; o->name != NULL; o++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", o->name);
        if (strstr(text, flag) == NULL)
            FWT_FAIL("--help does not list %s", flag);
    }
    FWT_ASSERT(strstr(text, "(default: 64M)") != NULL);
    FWT_ASSERT(strstr(text, "--help") != NULL);
    free(text);
}
