/*
 * `make install-files` and `make uninstall` as a packager runs them: this
 * build tree installed with DESTDIR and PREFIX=/usr puts exactly the expected
 * files in place (programs byte for byte, the units pointing at /usr/bin,
 * nothing under /etc), an application builds against the installed header
 * and library with pkg-config alone and runs, and uninstall leaves no file
 * behind. `make install` is install-files after a release build, which is
 * too slow to repeat here.
 */
#include "fwt_proc.h"
#include "fwt_proc.h" /* fwt_repo_root, fwt_find_program */
#include "fwtest.h"

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The tree this test was built in (build/<mode>) and its mode's name. */
static void build_tree(char *dir, size_t cap, char *mode, size_t mcap)
{
    char bin[PATH_MAX];
    snprintf(bin, sizeof(bin), "%s", fwt_bin("freeway"));
    *strrchr(bin, '/') = '\0'; /* build/<mode>/tests/../bin */
    char up[PATH_MAX + 4];
    snprintf(up, sizeof(up), "%s/..", bin);
    if (realpath(up, dir) == NULL || strlen(dir) >= cap)
        FWT_FAIL("cannot resolve %s", up);
    snprintf(mode, mcap, "%s", strrchr(dir, '/') + 1);
}

/* Runs `make -C SRC GOAL MODE=mode BUILD=build DESTDIR=dest PREFIX=/usr`; its status. */
static int make(const char *goal, const char *mode, const char *build, const char *dest, char **out)
{
    char makebin[PATH_MAX], a_mode[64], a_build[PATH_MAX + 8], a_dest[PATH_MAX + 8];
    fwt_find_program("make", "make", makebin, sizeof(makebin));
    snprintf(a_mode, sizeof(a_mode), "MODE=%s", mode);
    snprintf(a_build, sizeof(a_build), "BUILD=%s", build);
    snprintf(a_dest, sizeof(a_dest), "DESTDIR=%s", dest);
    const char *argv[] = {makebin, "-C",    fwt_repo_root(), "--no-print-directory", goal,
                          a_mode,  a_build, a_dest,          "PREFIX=/usr",          NULL};
    return fwt_run((char *const *)argv, 120000, out);
}

/* The whole file (malloc'd, *len set); NULL if it cannot be read. */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* dest/rel is a regular file with this mode and, if same_as is set, the same bytes. */
static void expect_file(const char *dest, const char *rel, mode_t mode, const char *same_as)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dest, rel);
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
        FWT_FAIL("%s was not installed", rel);
    if ((st.st_mode & 07777) != mode)
        FWT_FAIL("%s has mode %o, want %o", rel, (unsigned)(st.st_mode & 07777), (unsigned)mode);
    if (same_as == NULL)
        return;
    size_t la, lb;
    char *a = read_all(path, &la), *b = read_all(same_as, &lb);
    FWT_ASSERT(a != NULL && b != NULL);
    if (la != lb || memcmp(a, b, la) != 0)
        FWT_FAIL("%s differs from %s", rel, same_as);
    free(a);
    free(b);
}

/* Every regular file under the install root, relative to it, one per line. */
static char found[1 << 16];
static size_t found_root_len;

static int note_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_F && S_ISREG(st->st_mode)) {
        size_t used = strlen(found);
        snprintf(found + used, sizeof(found) - used, "%s\n", path + found_root_len + 1);
    }
    return 0;
}

static const char *files_under(const char *dest)
{
    found[0] = '\0';
    found_root_len = strlen(dest);
    FWT_ASSERT(nftw(dest, note_file, 16, FTW_PHYS) == 0);
    return found;
}

/* The names in dir ending with suffix, each as PREFIX/name, appended to list. */
static int add_dir(char *list, size_t cap, const char *dir, const char *suffix, const char *prefix)
{
    DIR *d = opendir(dir);
    FWT_ASSERT(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        if (e->d_name[0] == '.' || len <= sl || strcmp(e->d_name + len - sl, suffix) != 0)
            continue;
        size_t used = strlen(list);
        snprintf(list + used, cap - used, "%s/%s\n", prefix, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* 1 if the list (lines ending in \n) has the line that starts at line. */
static int has_line(const char *list, const char *line)
{
    size_t n = strcspn(line, "\n");
    for (const char *p = list; *p != '\0'; p = strchr(p, '\n') + 1)
        if (strncmp(p, line, n) == 0 && p[n] == '\n')
            return 1;
    return 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* Compiles and runs a small application against the install under dest. */
static void build_application(const char *dest, const char *mode)
{
    const char *dir = fwt_tmpdir();
    char src[PATH_MAX], app[PATH_MAX];
    snprintf(src, sizeof(src), "%s/app.c", dir);
    snprintf(app, sizeof(app), "%s/app", dir);
    FILE *f = fopen(src, "w");
    FWT_ASSERT(f != NULL);
    fputs("#include <freeway.h>\n"
          "#include <stdio.h>\n"
          "int main(void)\n"
          "{\n"
          "    fw_producer_options_t po;\n"
          "    fw_producer_options_init(&po);\n"
          "    printf(\"%s / %s\\n\", fw_err_name(FW_EUNKNOWN_CATEGORY),\n"
          "           fw_strerror(FW_ERETRY_LATER));\n"
          "    return 0;\n"
          "}\n",
          f);
    FWT_ASSERT(fclose(f) == 0);

    /* pkg-config reads the installed freeway.pc; the sysroot maps /usr to dest/usr. */
    char pcpath[PATH_MAX];
    snprintf(pcpath, sizeof(pcpath), "%s/usr/lib/pkgconfig", dest);
    setenv("PKG_CONFIG_PATH", pcpath, 1);
    setenv("PKG_CONFIG_SYSROOT_DIR", dest, 1);
    char pkgconfig[PATH_MAX];
    fwt_find_program("pkg-config", "pkg-config", pkgconfig, sizeof(pkgconfig));
    const char *pc[] = {pkgconfig, "--cflags", "--libs", "freeway", NULL};
    char *flags;
    int rc = fwt_run((char *const *)pc, 30000, &flags);
    unsetenv("PKG_CONFIG_SYSROOT_DIR");
    unsetenv("PKG_CONFIG_PATH");
    if (rc != 0)
        FWT_FAIL("pkg-config --cflags --libs freeway: exit status %d:\n%s", rc, flags);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "-I%s/usr/include/freeway", dest);
    if (strstr(flags, want) == NULL || strstr(flags, "-lfreeway") == NULL)
        FWT_FAIL("pkg-config says \"%s\", want %s and -lfreeway", flags, want);

    /* The library was built in this mode: an asan archive needs the sanitizers. */
    int asan = strcmp(mode, "asan") == 0;
    char cc[PATH_MAX];
    fwt_find_program(asan ? "clang" : "cc", asan ? "clang" : "gcc", cc, sizeof(cc));
    const char *argv[64];
    int n = 0;
    argv[n++] = cc;
    argv[n++] = "-std=c11";
    argv[n++] = "-Wall";
    argv[n++] = "-Werror";
    if (asan)
        argv[n++] = "-fsanitize=address,undefined";
    argv[n++] = "-o";
    argv[n++] = app;
    argv[n++] = src;
    for (char *save = NULL, *tok = strtok_r(flags, " \n", &save); tok != NULL && n < 62;
         tok = strtok_r(NULL, " \n", &save))
        argv[n++] = tok;
    argv[n] = NULL;
    char *out;
    rc = fwt_run((char *const *)argv, 120000, &out);
    if (rc != 0)
        FWT_FAIL("the application does not build against the install (status %d):\n%s", rc, out);
    free(out);
    free(flags);

    const char *run[] = {app, NULL};
    FWT_ASSERT_INT_EQ(fwt_run((char *const *)run, 30000, &out), 0);
    FWT_ASSERT_STR_EQ(out, "FW_EUNKNOWN_CATEGORY / temporarily unable to accept; retry later\n");
    free(out);
}

FWT_TEST(install_files_then_uninstall)
{
    /* make's own variables from a `make test` around us must not reach this make. */
    unsetenv("MAKEFLAGS");
    unsetenv("MFLAGS");
    unsetenv("MAKELEVEL");
    unsetenv("MAKEOVERRIDES");
    char build[1024], mode[64], dest[1024];
    build_tree(build, sizeof(build), mode, sizeof(mode));
    snprintf(dest, sizeof(dest), "%.400s/dest", fwt_tmpdir());

    /* A tree that is not built installs nothing and says why. */
    char empty[1024];
    snprintf(empty, sizeof(empty), "%.400s/empty-build", fwt_tmpdir());
    FWT_ASSERT(mkdir(empty, 0755) == 0);
    char *out;
    FWT_ASSERT(make("install-files", mode, empty, dest, &out) != 0);
    if (strstr(out, "is not built") == NULL)
        FWT_FAIL("install-files from an empty tree said:\n%s", out);
    free(out);
    struct stat st;
    FWT_ASSERT(stat(dest, &st) != 0);

    int rc = make("install-files", mode, build, dest, &out);
    if (rc != 0)
        FWT_FAIL("make install-files: exit status %d:\n%s", rc, out);
    free(out);

    const char *src = fwt_repo_root();
    char want[8192] = "", path[1024], from[PATH_MAX];
    static const char *const programs[] = {"calligraphus", "ptail", "copier", "freeway"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "usr/bin/%s", programs[i]);
        expect_file(dest, path, 0755, fwt_bin(programs[i]));
        snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s\n", path);
    }
    snprintf(from, sizeof(from), "%s/lib/dist/libfreeway.a", build);
    expect_file(dest, "usr/lib/libfreeway.a", 0644, from);
    expect_file(dest, "usr/lib/pkgconfig/freeway.pc", 0644, NULL);
    snprintf(from, sizeof(from), "%s/client/freeway.h", src);
    expect_file(dest, "usr/include/freeway/freeway.h", 0644, from);
    snprintf(from, sizeof(from), "%s/common/error.h", src);
    expect_file(dest, "usr/include/freeway/error.h", 0644, from);
    strcat(want, "usr/lib/libfreeway.a\nusr/lib/pkgconfig/freeway.pc\n"
                 "usr/include/freeway/freeway.h\nusr/include/freeway/error.h\n");

    /* Units: one per deploy/systemd file, their paths rewritten for PREFIX=/usr. */
    snprintf(from, sizeof(from), "%s/deploy/systemd", src);
    int nunits = add_dir(want, sizeof(want), from, ".service", "usr/lib/systemd/system");
    FWT_ASSERT_INT_OP(nunits, >=, 3);
    for (char *line = want; (line = strstr(line, "usr/lib/systemd/system/")) != NULL; line++) {
        snprintf(path, sizeof(path), "%.*s", (int)strcspn(line, "\n"), line);
        expect_file(dest, path, 0644, NULL);
        char full[PATH_MAX];
        snprintf(full, sizeof(full), "%s/%s", dest, path);
        size_t len;
        char *unit = read_all(full, &len);
        FWT_ASSERT(unit != NULL);
        if (strstr(unit, "/usr/local") != NULL || strstr(unit, "ExecStart=/usr/bin/") == NULL ||
            strstr(unit, "--config /etc/freeway/") == NULL)
            FWT_FAIL("%s is not rewritten for PREFIX=/usr:\n%s", path, unit);
        free(unit);
    }

    /* Example configs under the docs, byte for byte; the docs themselves. */
    snprintf(from, sizeof(from), "%s/deploy/config", src);
    FWT_ASSERT_INT_OP(add_dir(want, sizeof(want), from, ".conf", "usr/share/doc/freeway/examples"),
                      >=, 3);
    snprintf(from, sizeof(from), "%s/docs", src);
    FWT_ASSERT_INT_OP(add_dir(want, sizeof(want), from, ".md", "usr/share/doc/freeway"), >=, 1);
    strcat(want, "usr/share/doc/freeway/README.md\nusr/share/doc/freeway/deploy.md\n");
    snprintf(from, sizeof(from), "%s/deploy/config/copier.conf", src);
    expect_file(dest, "usr/share/doc/freeway/examples/copier.conf", 0644, from);
    snprintf(from, sizeof(from), "%s/docs/configuration.md", src);
    expect_file(dest, "usr/share/doc/freeway/configuration.md", 0644, from);
    snprintf(from, sizeof(from), "%s/deploy/README.md", src);
    expect_file(dest, "usr/share/doc/freeway/deploy.md", 0644, from);

    /* Exactly these files: nothing missing, nothing else (nothing under /etc). */
    const char *got = files_under(dest);
    for (const char *line = want; *line != '\0'; line = strchr(line, '\n') + 1)
        if (!has_line(got, line))
            FWT_FAIL("%.*s was not installed; installed:\n%s", (int)strcspn(line, "\n"), line, got);
    for (const char *line = got; *line != '\0'; line = strchr(line, '\n') + 1)
        if (!has_line(want, line))
            FWT_FAIL("%.*s was installed, and is not expected", (int)strcspn(line, "\n"), line);
    if (count_lines(got) != count_lines(want))
        FWT_FAIL("installed %d files, want %d:\n%s\nwant:\n%s", count_lines(got), count_lines(want),
                 got, want);
    snprintf(from, sizeof(from), "%s/etc", dest);
    FWT_ASSERT(stat(from, &st) != 0);

    build_application(dest, mode);

    rc = make("uninstall", mode, build, dest, &out);
    if (rc != 0)
        FWT_FAIL("make uninstall: exit status %d:\n%s", rc, out);
    free(out);
    got = files_under(dest);
    if (got[0] != '\0')
        FWT_FAIL("uninstall left files behind:\n%s", got);
    snprintf(from, sizeof(from), "%s/usr/share/doc/freeway", dest);
    FWT_ASSERT(stat(from, &st) != 0);
}
