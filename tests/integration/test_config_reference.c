/*
 * The configuration reference and the deployment files against the real
 * programs: docs/configuration.md documents every option that each daemon's
 * and each `freeway` command's --help lists, with the same value, type and
 * default, and nothing that does not exist; every deploy/config/<daemon>.conf
 * names every option of its daemon with its default and starts that daemon
 * (against a real ZooKeeper, until /readyz says 200); every unit under
 * deploy/systemd/ passes `systemd-analyze verify`.
 *
 * The programs are found from what was built (build/<mode>/bin: every binary
 * but `freeway` is a daemon; the commands come from `freeway --help`), so a
 * new daemon, command or option fails here until it is documented. The
 * source tree is $FW_SOURCE_DIR, else the checkout this binary was built in.
 */
#include "fwt_proc.h"
#include "fwt_proc.h" /* fwt_repo_root, fwt_find_program */
#include "fwt_zk.h"
#include "fwtest.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_OPTS  64
#define MAX_PROGS 24
#define MAX_FILES 32

/* One option, as --help shows it or as the reference documents it. */
typedef struct opt_s {
    char name[64];  /* without the dashes */
    char value[64]; /* the metavar; "" for a flag (bool) */
    char def[192];  /* the default --help shows; "" for none */
    char type[16];  /* the reference's type column, or what a probe found */
    int line;       /* where in docs/configuration.md */
} opt_t;

/* One program: a daemon ("ptail") or a command ("freeway send"). */
typedef struct prog_s {
    char name[64];
    char bin[32]; /* "ptail", "freeway" */
    char cmd[32]; /* "", "send" */
    opt_t opts[MAX_OPTS];
    int nopts;
} prog_t;

/* Mismatches found so far; each is printed as it is found, the test fails at the end. */
static int problems;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  mismatch: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    problems++;
}

static void no_problems(const char *what)
{
    if (problems > 0)
        FWT_FAIL("%d mismatch(es) between %s (listed above)", problems, what);
}

/* ---- files and processes ---------------------------------------------------------------- */

static const char *source_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0] != '\0')
        return dir;
    const char *env = getenv("FW_SOURCE_DIR");
    snprintf(dir, sizeof(dir), "%s", env != NULL && *env != '\0' ? env : fwt_repo_root());
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof(probe), "%s/docs/configuration.md", dir);
    if (access(probe, R_OK) != 0)
        FWT_FAIL("no %s: set FW_SOURCE_DIR to the source tree", probe);
    return dir;
}

/* SRC/rel, in one of four static buffers used in turn. */
static const char *src_path(const char *rel)
{
    static char bufs[4][PATH_MAX + 256];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "%s/%s", source_dir(), rel);
    return b;
}

/* The whole file, NUL-terminated (malloc'd); fails the test if it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        FWT_FAIL("cannot read %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    FWT_ASSERT(buf != NULL);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            FWT_ASSERT(buf != NULL);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        FWT_FAIL("cannot write %s", path);
}

/* Runs PROG [CMD] args... (NULL-terminated); the exit status, the output in *out. */
static int run_prog(const prog_t *p, const char *const *args, char **out)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = fwt_bin(p->bin);
    if (p->cmd[0] != '\0')
        argv[n++] = p->cmd;
    for (int i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return fwt_run((char *const *)argv, 30000, out);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sorted names of the entries of dir that end with suffix (""), into names. */
static int list_dir(const char *dir, const char *suffix, char names[][128], int max)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        FWT_FAIL("cannot list %s: %s", dir, strerror(errno));
    int n = 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= sl || strcmp(e->d_name + len - sl, suffix) != 0)
            continue;
        if (n == max)
            FWT_FAIL("more than %d entries in %s", max, dir);
        snprintf(names[n++], 128, "%.127s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, 128, compare_names);
    return n;
}

/* ---- the programs and their --help ------------------------------------------------------ */

/* The next line of *text (NUL-terminated in place), or NULL at the end. */
static char *next_line(char **text)
{
    char *s = *text;
    if (s == NULL || *s == '\0')
        return NULL;
    char *nl = strchr(s, '\n');
    if (nl != NULL) {
        *nl = '\0';
        *text = nl + 1;
    } else {
        *text = s + strlen(s);
    }
    return s;
}

static const opt_t *find_opt(const prog_t *p, const char *name)
{
    for (int i = 0; i < p->nopts; i++)
        if (strcmp(p->opts[i].name, name) == 0)
            return &p->opts[i];
    return NULL;
}

/*
 * The default --help shows at the end of an option's line: the text of a final
 * "(default: X)" whose closing parenthesis ends the line (fw_config_usage puts the
 * table's default there; a few helps say a computed default the same way).
 */
static void help_default(const char *help, char *def, size_t cap)
{
    def[0] = '\0';
    const char *p = NULL;
    for (const char *q = help; (q = strstr(q, "(default: ")) != NULL; q++)
        p = q;
    if (p == NULL)
        return;
    int depth = 0;
    const char *end = NULL;
    for (const char *q = p; *q != '\0'; q++) {
        if (*q == '(')
            depth++;
        else if (*q == ')' && --depth == 0) {
            end = q;
            break;
        }
    }
    if (end == NULL || end[1] != '\0')
        return;
    const char *v = p + strlen("(default: ");
    snprintf(def, cap, "%.*s", (int)(end - v), v);
}

/*
 * The options of p from its --help: the lines after "options:" that start with
 * "  --NAME". fw_config_usage pads "--NAME METAVAR" to a column, so one blank
 * after the name means a metavar follows and more mean a flag. --help and
 * --version, which every program has, must be there and are not kept.
 */
static void parse_help(prog_t *p, char *text)
{
    int in_options = 0, has_help = 0, has_version = 0;
    char *line;
    p->nopts = 0;
    while ((line = next_line(&text)) != NULL) {
        if (strcmp(line, "options:") == 0) {
            in_options = 1;
            continue;
        }
        if (!in_options || strncmp(line, "  --", 4) != 0)
            continue;
        char *s = line + 4;
        size_t nlen = strcspn(s, " ");
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)nlen, s);
        s += nlen;
        if (strcmp(name, "help") == 0 || strcmp(name, "version") == 0) {
            has_help |= strcmp(name, "help") == 0;
            has_version |= strcmp(name, "version") == 0;
            continue;
        }
        if (p->nopts == MAX_OPTS)
            FWT_FAIL("%s: more than %d options", p->name, MAX_OPTS);
        opt_t *o = &p->opts[p->nopts++];
        memset(o, 0, sizeof(*o));
        snprintf(o->name, sizeof(o->name), "%s", name);
        if (s[0] == ' ' && s[1] != ' ' && s[1] != '\0') {
            size_t vlen = strcspn(s + 1, " ");
            snprintf(o->value, sizeof(o->value), "%.*s", (int)vlen, s + 1);
            s += 1 + vlen;
        }
        while (*s == ' ')
            s++;
        help_default(s, o->def, sizeof(o->def));
    }
    if (!in_options)
        FWT_FAIL("%s --help has no \"options:\" line", p->name);
    if (!has_help || !has_version)
        FWT_FAIL("%s --help does not list --help and --version", p->name);
}

static void load_help(prog_t *p)
{
    const char *args[] = {"--help", NULL};
    char *out;
    int rc = run_prog(p, args, &out);
    if (rc != 0)
        FWT_FAIL("%s --help: exit status %d:\n%s", p->name, rc, out);
    parse_help(p, out);
    free(out);
}

/*
 * Every program that was built: each binary beside `freeway` in build/<mode>/bin
 * is a daemon; `freeway --help` lists the commands under "commands:". Each one's
 * options come from its --help. Returns how many.
 */
static int discover(prog_t *progs)
{
    char bindir[PATH_MAX];
    snprintf(bindir, sizeof(bindir), "%s", fwt_bin("freeway"));
    *strrchr(bindir, '/') = '\0';
    static char names[MAX_PROGS][128];
    int nbins = list_dir(bindir, "", names, MAX_PROGS);
    int n = 0;
    for (int i = 0; i < nbins; i++) {
        if (strcmp(names[i], "freeway") == 0)
            continue;
        prog_t *p = &progs[n++];
        memset(p, 0, sizeof(*p));
        snprintf(p->name, sizeof(p->name), "%.63s", names[i]);
        snprintf(p->bin, sizeof(p->bin), "%.31s", names[i]);
    }
    if (n == 0)
        FWT_FAIL("no daemon binaries beside %s", fwt_bin("freeway"));

    const char *argv[] = {fwt_bin("freeway"), "--help", NULL};
    char *out;
    int rc = fwt_run((char *const *)argv, 30000, &out);
    if (rc != 0)
        FWT_FAIL("freeway --help: exit status %d:\n%s", rc, out);
    char *text = out, *line;
    int in_commands = 0, ncmds = 0;
    while ((line = next_line(&text)) != NULL) {
        if (strcmp(line, "commands:") == 0) {
            in_commands = 1;
            continue;
        }
        if (!in_commands)
            continue;
        if (line[0] == '\0')
            break;
        char cmd[32];
        if (sscanf(line, " %31s", cmd) != 1)
            continue;
        if (n == MAX_PROGS)
            FWT_FAIL("more than %d programs", MAX_PROGS);
        prog_t *p = &progs[n++];
        memset(p, 0, sizeof(*p));
        snprintf(p->name, sizeof(p->name), "freeway %s", cmd);
        snprintf(p->bin, sizeof(p->bin), "freeway");
        snprintf(p->cmd, sizeof(p->cmd), "%s", cmd);
        ncmds++;
    }
    free(out);
    if (ncmds == 0)
        FWT_FAIL("freeway --help lists no commands under \"commands:\"");
    for (int i = 0; i < n; i++)
        load_help(&progs[i]);
    return n;
}

static prog_t *find_prog(prog_t *progs, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(progs[i].name, name) == 0)
            return &progs[i];
    return NULL;
}

static int is_daemon(const prog_t *p)
{
    return strcmp(p->bin, "freeway") != 0;
}

/* ---- docs/configuration.md ---------------------------------------------------------------- */

/* Trims blanks, drops backticks and turns "\|" into "|", in place. */
static char *clean_cell(char *s)
{
    char *w = s;
    for (char *r = s; *r != '\0'; r++) {
        if (*r == '`')
            continue;
        if (r[0] == '\\' && r[1] == '|')
            r++;
        *w++ = *r;
    }
    *w = '\0';
    while (*s == ' ')
        s++;
    for (w = s + strlen(s); w > s && w[-1] == ' ';)
        *--w = '\0';
    return s;
}

/* Splits a table row "| a | b |" on its unescaped bars; the number of cells. */
static int split_row(char *line, char **cells, int max)
{
    int n = 0;
    char *start = line + 1;
    for (char *p = start; *p != '\0'; p++) {
        if (p[0] == '\\' && p[1] == '|') {
            p++;
            continue;
        }
        if (*p != '|')
            continue;
        *p = '\0';
        if (n < max)
            cells[n++] = clean_cell(start);
        start = p + 1;
    }
    return n;
}

/*
 * The reference's tables: a heading with a `program` in backticks starts its
 * section; each row "| `--name` | value | type | default | meaning |" below it is
 * one option. "flag" as the value is a bool's (no metavar); "—" is no default.
 */
static int parse_reference(prog_t *docs)
{
    char *text = slurp(src_path("docs/configuration.md"));
    char *cursor = text, *line;
    int n = 0, lineno = 0;
    prog_t *cur = NULL;
    while ((line = next_line(&cursor)) != NULL) {
        lineno++;
        if (line[0] == '#') {
            cur = NULL;
            char *a = strchr(line, '`'), *b = a ? strchr(a + 1, '`') : NULL;
            if (b == NULL)
                continue;
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)(b - a - 1), a + 1);
            cur = find_prog(docs, n, name);
            if (cur == NULL) {
                if (n == MAX_PROGS)
                    FWT_FAIL("more than %d sections in the reference", MAX_PROGS);
                cur = &docs[n++];
                memset(cur, 0, sizeof(*cur));
                snprintf(cur->name, sizeof(cur->name), "%s", name);
            }
            continue;
        }
        if (strncmp(line, "| `--", 5) != 0)
            continue;
        char *cells[8];
        int nc = split_row(line, cells, 8);
        if (cur == NULL)
            FWT_FAIL("docs/configuration.md:%d: an option row outside a `program` section", lineno);
        if (nc != 5)
            FWT_FAIL("docs/configuration.md:%d: %d cells, want 5 (option, value, type, default, "
                     "meaning)",
                     lineno, nc);
        if (strncmp(cells[0], "--", 2) != 0 || find_opt(cur, cells[0] + 2) != NULL)
            FWT_FAIL("docs/configuration.md:%d: \"%s\" is not a new --option of %s", lineno,
                     cells[0], cur->name);
        if (cur->nopts == MAX_OPTS)
            FWT_FAIL("%s: more than %d options in the reference", cur->name, MAX_OPTS);
        opt_t *o = &cur->opts[cur->nopts++];
        memset(o, 0, sizeof(*o));
        o->line = lineno;
        snprintf(o->name, sizeof(o->name), "%s", cells[0] + 2);
        snprintf(o->value, sizeof(o->value), "%s", strcmp(cells[1], "flag") == 0 ? "" : cells[1]);
        snprintf(o->type, sizeof(o->type), "%s", cells[2]);
        snprintf(o->def, sizeof(o->def), "%s", strcmp(cells[3], "—") == 0 ? "" : cells[3]);
        if (cells[4][0] == '\0')
            FWT_FAIL("docs/configuration.md:%d: --%s has no meaning", lineno, o->name);
    }
    free(text);
    /* Sections without option rows (the page's other headings) are not programs. */
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (docs[i].nopts > 0)
            docs[kept++] = docs[i];
    return kept;
}

static prog_t progs[MAX_PROGS], docs[MAX_PROGS];

FWT_TEST(reference_matches_every_help)
{
    int np = discover(progs);
    int nd = parse_reference(docs);
    for (int i = 0; i < np; i++) {
        prog_t *p = &progs[i], *d = find_prog(docs, nd, p->name);
        if (d == NULL) {
            problem("%s (%d options) has no section `%s` in docs/configuration.md", p->name,
                    p->nopts, p->name);
            continue;
        }
        for (int k = 0; k < p->nopts; k++) {
            const opt_t *o = &p->opts[k], *doc = find_opt(d, o->name);
            if (doc == NULL) {
                problem("%s --%s is not documented", p->name, o->name);
                continue;
            }
            if (strcmp(o->value, doc->value) != 0)
                problem("%s --%s: --help shows the value \"%s\", docs/configuration.md:%d \"%s\"",
                        p->name, o->name, o->value[0] ? o->value : "flag", doc->line,
                        doc->value[0] ? doc->value : "flag");
            if (strcmp(o->def, doc->def) != 0)
                problem("%s --%s: --help shows the default \"%s\", docs/configuration.md:%d "
                        "\"%s\"",
                        p->name, o->name, o->def[0] ? o->def : "—", doc->line,
                        doc->def[0] ? doc->def : "—");
        }
    }
    for (int i = 0; i < nd; i++) {
        prog_t *d = &docs[i], *p = find_prog(progs, np, d->name);
        if (p == NULL) {
            problem("docs/configuration.md documents `%s`, which is no program or command",
                    d->name);
            continue;
        }
        for (int k = 0; k < d->nopts; k++)
            if (find_opt(p, d->opts[k].name) == NULL)
                problem("docs/configuration.md:%d: %s has no option --%s", d->opts[k].line, d->name,
                        d->opts[k].name);
    }
    no_problems("the programs' --help and docs/configuration.md");
}

/*
 * What type the program parses option o as: it is given a value no type but a
 * string accepts, and then an unknown flag, so it exits 2 either way, after a
 * message that names the type ("is not a duration ...") or, for a string, after
 * taking the value and reaching the unknown flag (--config: after failing to
 * open the file named by the value).
 */
static const char *probe_type(const prog_t *p, const opt_t *o)
{
    static const char bad[] = "zz!not-a-value";
    char arg[128];
    snprintf(arg, sizeof(arg), "--%s=%s", o->name, bad);
    const char *args[] = {arg, "--zz-no-such-option", NULL};
    char *out;
    int rc = run_prog(p, args, &out);
    static const struct {
        const char *hint, *type;
    } hints[] = {
        {"is not an integer", "integer"},
        {"is not true or false", "bool"},
        {"is not a size", "size"},
        {"is not a duration", "duration"},
    };
    const char *type = NULL;
    char said[160];
    snprintf(said, sizeof(said), "--%s: \"%s\" ", o->name, bad);
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
        if (strstr(out, hints[i].hint) != NULL && strstr(out, said) != NULL)
            type = hints[i].type;
    if (type == NULL && (strstr(out, "unknown option --zz-no-such-option") != NULL ||
                         (strcmp(o->name, "config") == 0 && strstr(out, bad) != NULL)))
        type = "string";
    if (rc != 2 || type == NULL)
        FWT_FAIL("%s %s --zz-no-such-option: exit status %d (want 2) and no type in:\n%s", p->name,
                 arg, rc, out);
    free(out);
    return type;
}

FWT_TEST(reference_types_match_the_parsers)
{
    int np = discover(progs);
    int nd = parse_reference(docs);
    for (int i = 0; i < np; i++) {
        prog_t *p = &progs[i], *d = find_prog(docs, nd, p->name);
        for (int k = 0; k < p->nopts; k++) {
            const opt_t *o = &p->opts[k], *doc = d ? find_opt(d, o->name) : NULL;
            const char *type = probe_type(p, o);
            /* The --help parse and the parser agree on what is a flag. */
            if ((strcmp(type, "bool") == 0) != (o->value[0] == '\0'))
                problem("%s --%s parses as %s but --help shows %s", p->name, o->name, type,
                        o->value[0] ? o->value : "no value");
            if (doc != NULL && strcmp(doc->type, type) != 0)
                problem("%s --%s parses as %s, docs/configuration.md:%d says %s", p->name, o->name,
                        type, doc->line, doc->type);
            if (doc == NULL)
                problem("%s --%s is not documented", p->name, o->name);
        }
    }
    no_problems("the programs' parsers and docs/configuration.md");
}

/* ---- deploy/config ------------------------------------------------------------------------- */

/* One `name = value` of an example config, set or commented out ("# name = value"). */
typedef struct setting_s {
    char name[64];
    char value[256];
    int line;
    int documented; /* the comment above it says "Default: <the default>" */
} setting_t;

/* "name = value" (name in [a-z0-9-]) into s; 0 if line is not one. */
static int parse_setting(const char *line, setting_t *s)
{
    size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyz0123456789-");
    if (n == 0 || n >= sizeof(s->name) || strncmp(line + n, " = ", 3) != 0)
        return 0;
    snprintf(s->name, sizeof(s->name), "%.*s", (int)n, line);
    snprintf(s->value, sizeof(s->value), "%s", line + n + 3);
    return 1;
}

/*
 * The settings of an example config. The comment lines right above each one
 * (back to a blank line or the previous setting) must say "Default: X" with the
 * default --help shows ("none" when it shows none), followed by "." or the end.
 */
static int parse_example(const char *path, const prog_t *p, setting_t *out, int max)
{
    char *text = slurp(path);
    char *cursor = text, *line;
    int n = 0, lineno = 0;
    char comment[4096] = "";
    while ((line = next_line(&cursor)) != NULL) {
        lineno++;
        setting_t s;
        memset(&s, 0, sizeof(s));
        const char *body = line[0] == '#' ? line + 1 + (line[1] == ' ') : line;
        if (line[0] == '\0') {
            comment[0] = '\0';
            continue;
        }
        if (!parse_setting(body, &s)) {
            if (line[0] != '#')
                FWT_FAIL("%s:%d: neither a comment nor `name = value`: %s", path, lineno, line);
            size_t used = strlen(comment);
            snprintf(comment + used, sizeof(comment) - used, "%s\n", body);
            continue;
        }
        if (n == max)
            FWT_FAIL("%s: more than %d settings", path, max);
        s.line = lineno;
        const opt_t *o = find_opt(p, s.name);
        if (o != NULL) {
            char want[256];
            snprintf(want, sizeof(want), "Default: %s", o->def[0] ? o->def : "none");
            for (const char *q = comment; (q = strstr(q, want)) != NULL; q++) {
                char after = q[strlen(want)];
                if (after == '.' || after == '\n' || after == '\0')
                    s.documented = 1;
            }
        }
        out[n++] = s;
        comment[0] = '\0';
    }
    free(text);
    return n;
}

/* The daemon's verdict on a config file: loads it, then stops at an unknown flag. */
static void expect_file_accepted(const prog_t *p, const char *path)
{
    const char *args[] = {"--config", path, "--zz-no-such-option", NULL};
    char *out;
    int rc = run_prog(p, args, &out);
    if (rc != 2 || strstr(out, "unknown option --zz-no-such-option") == NULL)
        FWT_FAIL("%s does not accept %s (exit status %d):\n%s", p->name, path, rc, out);
    free(out);
}

/*
 * A published address is what producers, consumers and writers connect to:
 * a wildcard, port 0 or something that is no HOST:PORT would leave them
 * unable to, so the daemon refuses it at start with why.
 */
FWT_TEST(an_advertised_address_others_cannot_use_is_refused)
{
    int np = discover(progs);
    const char *daemons[] = {"calligraphus", "ptail"};
    const char *bad[] = {
        "writer 1.example.com:7410", "0.0.0.0:7410", "[::]:7410", "10.0.0.1:0", "10.0.0.1",
        "writer1.example.com:0"};
    for (size_t d = 0; d < sizeof(daemons) / sizeof(daemons[0]); d++) {
        prog_t *p = find_prog(progs, np, daemons[d]);
        FWT_ASSERT(p != NULL);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *args[] = {
                "--zk", "127.0.0.1:1/freeway", "--root", "/nonexistent", "--advertise", bad[i],
                NULL};
            char *out;
            int rc = run_prog(p, args, &out);
            if (rc != 2 || strstr(out, "--advertise") == NULL || strstr(out, bad[i]) == NULL)
                FWT_FAIL("%s --advertise %s: exit status %d, want 2 and why:\n%s", p->name, bad[i],
                         rc, out);
            free(out);
        }
    }
}

FWT_TEST(example_configs_name_every_option)
{
    int np = discover(progs);
    static char confs[MAX_FILES][128];
    int nc = list_dir(src_path("deploy/config"), ".conf", confs, MAX_FILES);
    for (int i = 0; i < np; i++) {
        if (!is_daemon(&progs[i]))
            continue;
        int found = 0;
        for (int c = 0; c < nc; c++)
            found |= strncmp(confs[c], progs[i].name, strlen(progs[i].name)) == 0 &&
                     strcmp(confs[c] + strlen(progs[i].name), ".conf") == 0;
        if (!found)
            problem("daemon %s has no deploy/config/%s.conf", progs[i].name, progs[i].name);
    }
    for (int c = 0; c < nc; c++) {
        char daemon[128], path[PATH_MAX];
        snprintf(daemon, sizeof(daemon), "%.*s", (int)(strlen(confs[c]) - 5), confs[c]);
        snprintf(path, sizeof(path), "%s/%s", src_path("deploy/config"), confs[c]);
        prog_t *p = find_prog(progs, np, daemon);
        if (p == NULL || !is_daemon(p)) {
            problem("deploy/config/%s is for no daemon", confs[c]);
            continue;
        }
        static setting_t set[MAX_OPTS * 2];
        int ns = parse_example(path, p, set, MAX_OPTS * 2);
        for (int s = 0; s < ns; s++) {
            if (find_opt(p, set[s].name) == NULL)
                problem("deploy/config/%s:%d: %s has no option \"%s\"", confs[c], set[s].line,
                        daemon, set[s].name);
            else if (!set[s].documented)
                problem("deploy/config/%s:%d: the comment above %s does not say \"Default: %s\"",
                        confs[c], set[s].line, set[s].name,
                        find_opt(p, set[s].name)->def[0] ? find_opt(p, set[s].name)->def : "none");
            for (int t = 0; t < s; t++)
                if (strcmp(set[s].name, set[t].name) == 0)
                    problem("deploy/config/%s:%d: %s again (line %d)", confs[c], set[s].line,
                            set[s].name, set[t].line);
        }
        for (int k = 0; k < p->nopts; k++) {
            int present = strcmp(p->opts[k].name, "config") == 0; /* not allowed in a file */
            for (int s = 0; s < ns; s++)
                present |= strcmp(set[s].name, p->opts[k].name) == 0;
            if (!present)
                problem("deploy/config/%s names no %s (set or commented out)", confs[c],
                        p->opts[k].name);
        }
        /* As it is, and with every commented-out setting set: both parse. */
        expect_file_accepted(p, path);
        char *text = slurp(path), *cursor = text, *line;
        char all[PATH_MAX];
        snprintf(all, sizeof(all), "%s/all-%s", fwt_tmpdir(), confs[c]);
        FILE *f = fopen(all, "w");
        FWT_ASSERT(f != NULL);
        int uncommented = 0;
        while ((line = next_line(&cursor)) != NULL) {
            setting_t s;
            if (line[0] == '#' && parse_setting(line + 1 + (line[1] == ' '), &s)) {
                fprintf(f, "%s = %s\n", s.name, s.value);
                uncommented++;
            } else {
                fprintf(f, "%s\n", line);
            }
        }
        FWT_ASSERT(fclose(f) == 0);
        free(text);
        FWT_ASSERT_INT_OP(uncommented, >, 0);
        expect_file_accepted(p, all);
    }
    no_problems("deploy/config and the daemons' options");
}

/* ---- the examples running ------------------------------------------------------------------ */

/*
 * What each daemon's test run overrides on the command line, and only that:
 * ZooKeeper, the directories and the ports. {ZK}, {DIR} and {PORT} are filled in.
 */
static const struct {
    const char *daemon;
    const char *flags[16];
} overrides[] = {
    {"calligraphus",
     {"--zk", "{ZK}", "--root", "{DIR}/root", "--listen", "127.0.0.1:{PORT}", "--advertise",
      "127.0.0.1:{PORT}", "--metrics", "127.0.0.1:0", NULL}},
    {"ptail",
     {"--zk", "{ZK}", "--root", "{DIR}/root", "--listen", "127.0.0.1:{PORT}", "--advertise",
      "127.0.0.1:{PORT}", "--metrics", "127.0.0.1:0", NULL}},
    {"copier",
     {"--zk", "{ZK}", "--source", "{DIR}/root", "--dest", "file://{DIR}/copy", "--metrics",
      "127.0.0.1:0", NULL}},
};

/* s with {ZK}, {DIR} and {PORT} replaced, into out. */
static void fill(const char *s, const char *zk, const char *dir, int port, char *out, size_t cap)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    size_t len = 0;
    out[0] = '\0';
    while (*s != '\0' && len + 1 < cap) {
        const char *with = NULL;
        size_t skip = 0;
        if (strncmp(s, "{ZK}", 4) == 0)
            with = zk, skip = 4;
        else if (strncmp(s, "{DIR}", 5) == 0)
            with = dir, skip = 5;
        else if (strncmp(s, "{PORT}", 6) == 0)
            with = portstr, skip = 6;
        if (with != NULL) {
            len += (size_t)snprintf(out + len, cap - len, "%s", with);
            s += skip;
        } else {
            out[len++] = *s++;
            out[len] = '\0';
        }
    }
    if (len + 1 >= cap)
        FWT_FAIL("argument too long: %s", out);
}

typedef struct daemon_run_s {
    fwt_proc_t proc;
    char log[FWT_PATH_MAX];
    char metrics[64];
    int exited;
} daemon_run_t;

/* The daemon logged its metrics address (or exited: the caller looks why). */
static int metrics_logged(void *arg)
{
    daemon_run_t *r = arg;
    if (!fwt_proc_running(&r->proc)) {
        r->exited = 1;
        return 1;
    }
    FILE *f = fopen(r->log, "r");
    if (f == NULL)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char *p = strstr(line, "metrics on http://");
        if (p != NULL) {
            p += strlen("metrics on http://");
            size_t n = strcspn(p, "/ \n");
            if (n > 0 && n < sizeof(r->metrics)) {
                snprintf(r->metrics, sizeof(r->metrics), "%.*s", (int)n, p);
                found = 1;
            }
        }
    }
    fclose(f);
    return found;
}

/* GET path from addr (host:port): the HTTP status, or -1 if there is no answer. */
static int http_status(const char *addr, const char *path)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", addr);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return -1;
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[256], resp[64] = "";
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    int status = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && write(fd, req, (size_t)n) == n &&
        read(fd, resp, sizeof(resp) - 1) > 0 && sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    close(fd);
    return status;
}

static int readyz_ok(void *arg)
{
    daemon_run_t *r = arg;
    if (!fwt_proc_running(&r->proc)) {
        char tail[4096];
        FWT_FAIL("the daemon exited before it was ready:\n%s",
                 fwt_file_tail(r->log, 30, tail, sizeof(tail)));
    }
    return http_status(r->metrics, "/readyz") == 200;
}

/* Starts daemon on conf with the test's overrides, until /readyz says 200; then SIGTERM. */
static void run_example(const char *daemon, const char *conf, const char *zk)
{
    int o = -1;
    for (size_t i = 0; i < sizeof(overrides) / sizeof(overrides[0]); i++)
        if (strcmp(overrides[i].daemon, daemon) == 0)
            o = (int)i;
    if (o < 0)
        FWT_FAIL("daemon %s has a deploy/config file but no overrides in this test: add them",
                 daemon);
    char dir[FWT_PATH_MAX];
    snprintf(dir, sizeof(dir), "%.400s/%s", fwt_tmpdir(), daemon);
    char sub[FWT_PATH_MAX + 16];
    FWT_ASSERT(mkdir(dir, 0755) == 0);
    snprintf(sub, sizeof(sub), "%s/root", dir);
    FWT_ASSERT(mkdir(sub, 0755) == 0);
    snprintf(sub, sizeof(sub), "%s/copy", dir);
    FWT_ASSERT(mkdir(sub, 0755) == 0);

    static daemon_run_t r;
    static char filled[16][FWT_PATH_MAX];
    /* A port that was free may be taken before the daemon binds it: then try another. */
    for (int attempt = 0;; attempt++) {
        memset(&r, 0, sizeof(r));
        snprintf(r.log, sizeof(r.log), "%.400s/%.64s-%d.log", dir, daemon, attempt);
        int port = fwt_free_port();
        const char *argv[24];
        int n = 0;
        argv[n++] = fwt_bin(daemon);
        argv[n++] = "--config";
        argv[n++] = conf;
        for (int k = 0; overrides[o].flags[k] != NULL; k++) {
            fill(overrides[o].flags[k], zk, dir, port, filled[k], sizeof(filled[k]));
            argv[n++] = filled[k];
        }
        argv[n] = NULL;
        fwt_proc_spawn(&r.proc, daemon, (char *const *)argv, r.log);
        fwt_wait_until(metrics_logged, &r, 30000, "the daemon to log its metrics address");
        if (!r.exited)
            break;
        char tail[4096];
        if (attempt < 3 && fwt_file_contains(r.log, "cannot listen"))
            continue;
        FWT_FAIL("%s --config %s exited at start:\n%s", daemon, conf,
                 fwt_file_tail(r.log, 30, tail, sizeof(tail)));
    }
    fwt_wait_until(readyz_ok, &r, 30000, "/readyz to answer 200");

    FWT_ASSERT_INT_EQ(fwt_proc_signal(&r.proc, SIGTERM), 0);
    int status = 0;
    if (fwt_proc_wait(&r.proc, 30000, &status) < 0)
        FWT_FAIL("%s did not stop within 30 s of SIGTERM", daemon);
    char tail[4096];
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FWT_FAIL("%s ended with status 0x%x:\n%s", daemon, status,
                 fwt_file_tail(r.log, 30, tail, sizeof(tail)));
    static const char *const bad[] = {"ERROR", "AddressSanitizer", "LeakSanitizer",
                                      "runtime error:"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (fwt_file_contains(r.log, bad[i]))
            FWT_FAIL("%s logged \"%s\":\n%s", daemon, bad[i],
                     fwt_file_tail(r.log, 30, tail, sizeof(tail)));
}

FWT_TEST(example_configs_start_their_daemons)
{
    int np = discover(progs);
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char connect[128];
    snprintf(connect, sizeof(connect), "%s/freeway", zk.connect);
    int ran = 0;
    for (int i = 0; i < np; i++) {
        if (!is_daemon(&progs[i]))
            continue;
        char conf[PATH_MAX];
        snprintf(conf, sizeof(conf), "%s/%s.conf", src_path("deploy/config"), progs[i].name);
        if (access(conf, R_OK) != 0)
            FWT_FAIL("no %s", conf);
        run_example(progs[i].name, conf, connect);
        ran++;
    }
    FWT_ASSERT_INT_OP(ran, >=, 3);
}

/* ---- deploy/systemd ------------------------------------------------------------------------ */

/* The value of the first "key=" line of a unit, or NULL. */
static const char *unit_value(const char *unit, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = unit; *p != '\0';) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t n = strcspn(p + klen + 1, "\n");
            snprintf(out, cap, "%.*s", (int)n, p + klen + 1);
            return out;
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    return NULL;
}

FWT_TEST(systemd_units_verify)
{
    int np = discover(progs);
    char analyze[PATH_MAX];
    fwt_find_program("systemd-analyze", "systemd", analyze, sizeof(analyze));
    static char units[MAX_FILES][128];
    int nu = list_dir(src_path("deploy/systemd"), ".service", units, MAX_FILES);
    for (int i = 0; i < np; i++) {
        if (!is_daemon(&progs[i]))
            continue;
        char want[160];
        snprintf(want, sizeof(want), "freeway-%s.service", progs[i].name);
        int found = 0;
        for (int u = 0; u < nu; u++)
            found |= strcmp(units[u], want) == 0;
        if (!found)
            problem("daemon %s has no deploy/systemd/%s", progs[i].name, want);
    }
    char dir[FWT_PATH_MAX];
    snprintf(dir, sizeof(dir), "%.400s/units", fwt_tmpdir());
    FWT_ASSERT(mkdir(dir, 0755) == 0);
    for (int u = 0; u < nu; u++) {
        char path[PATH_MAX + 160];
        snprintf(path, sizeof(path), "%s/%s", src_path("deploy/systemd"), units[u]);
        char *text = slurp(path);
        /* freeway-DAEMON.service or freeway-DAEMON@.service runs DAEMON on its config. */
        char daemon[128], exec[512], want[512];
        int templ = strchr(units[u], '@') != NULL;
        snprintf(daemon, sizeof(daemon), "%.*s", (int)strcspn(units[u] + 8, "@."), units[u] + 8);
        prog_t *p = find_prog(progs, np, daemon);
        if (strncmp(units[u], "freeway-", 8) != 0 || p == NULL || !is_daemon(p)) {
            problem("deploy/systemd/%s runs no daemon", units[u]);
            free(text);
            continue;
        }
        snprintf(want, sizeof(want), "/usr/local/bin/%s --config /etc/freeway/%s%s.conf", daemon,
                 daemon, templ ? "-%i" : "");
        if (unit_value(text, "ExecStart", exec, sizeof(exec)) == NULL || strcmp(exec, want) != 0)
            problem("deploy/systemd/%s: ExecStart=%s, want ExecStart=%s", units[u],
                    unit_value(text, "ExecStart", exec, sizeof(exec)) ? exec : "(none)", want);
        static const char *const required[][2] = {
            {"Type", "simple"},        {"User", "freeway"},        {"Restart", "on-failure"},
            {"KillSignal", "SIGTERM"}, {"NoNewPrivileges", "yes"}, {"ProtectSystem", "strict"},
            {"PrivateTmp", "yes"},
        };
        for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++) {
            char v[256];
            if (unit_value(text, required[k][0], v, sizeof(v)) == NULL ||
                strcmp(v, required[k][1]) != 0)
                problem("deploy/systemd/%s: want %s=%s", units[u], required[k][0], required[k][1]);
        }

        /* systemd-analyze verify checks that ExecStart is executable: point it at ours. */
        char *copy = malloc(strlen(text) + PATH_MAX);
        FWT_ASSERT(copy != NULL);
        char *at = strstr(text, "/usr/local/bin/");
        FWT_ASSERT(at != NULL);
        const char *after = at + strlen("/usr/local/bin/") + strlen(daemon);
        sprintf(copy, "%.*s%s%s", (int)(at - text), text, fwt_bin(daemon), after);
        char out_path[2 * PATH_MAX + 160];
        snprintf(out_path, sizeof(out_path), "%s/%s", dir, units[u]);
        spit(out_path, copy);
        free(copy);
        free(text);
        char target[2 * PATH_MAX + 160];
        if (templ) /* an instance of the template, which verify finds beside it */
            snprintf(target, sizeof(target), "%s/freeway-%s@test.service", dir, daemon);
        else
            snprintf(target, sizeof(target), "%s", out_path);
        const char *argv[] = {analyze, "verify", target, NULL};
        char *out;
        int rc = fwt_run((char *const *)argv, 60000, &out);
        if (rc != 0 || out[0] != '\0')
            problem("systemd-analyze verify %s: exit status %d, and it said:\n%s", units[u], rc,
                    out);
        free(out);
    }
    no_problems("deploy/systemd and what the daemons and systemd expect");
}
