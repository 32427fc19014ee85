/*
 * docs/metrics.md lists only what the code registers: every name in its
 * tables is a string literal in a daemon's source (or, for the series
 * every daemon has, a pattern in common/metrics.c). The other direction,
 * that every family a running daemon exposes is listed, is checked against
 * real daemons in tests/integration/test_cli_status.c.
 */
#include "fwtest.h"
#include "fwt_proc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    FWT_ASSERT(f != NULL);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    FWT_ASSERT(buf != NULL);
    FWT_ASSERT_UINT_EQ(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Every .c file of dir (a source folder), concatenated. */
static void append_sources(const char *dir, char **all, size_t *len)
{
    char path[FWT_PATH_MAX];
    snprintf(path, sizeof(path), "%s", fwt_source(dir));
    DIR *d = opendir(path);
    FWT_ASSERT(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0)
            continue;
        char file[FWT_PATH_MAX * 2];
        snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
        char *text = slurp(file);
        size_t tlen = strlen(text);
        *all = realloc(*all, *len + tlen + 1);
        FWT_ASSERT(*all != NULL);
        memcpy(*all + *len, text, tlen + 1);
        *len += tlen;
        free(text);
    }
    closedir(d);
}

FWT_TEST(every_documented_metric_is_registered_by_the_code)
{
    char *doc = slurp(fwt_source("docs/metrics.md"));
    char *code = NULL;
    size_t len = 0;
    append_sources("calligraphus", &code, &len);
    append_sources("copier", &code, &len);
    append_sources("ptail", &code, &len);
    append_sources("common", &code, &len);
    int names = 0;
    for (char *p = strstr(doc, "\n| `freeway_"); p != NULL; p = strstr(p + 1, "\n| `freeway_")) {
        char name[160], want[200];
        FWT_ASSERT_INT_EQ(sscanf(p, "\n| `%159[^`]`", name), 1);
        const char *generic = "freeway_<component>_";
        if (strncmp(name, generic, strlen(generic)) == 0)
            snprintf(want, sizeof(want), "\"freeway_%%s_%s\"", name + strlen(generic));
        else
            snprintf(want, sizeof(want), "\"%s\"", name);
        if (strstr(code, want) == NULL)
            FWT_FAIL("docs/metrics.md lists %s, which no daemon registers", name);
        names++;
    }
    FWT_ASSERT(names >= 50);
    free(code);
    free(doc);
}
