/*
 * Options of a freeway program: one table per program drives its command
 * line flags, its config file and its --help, so the three never disagree.
 *
 * A config file holds `name = value` lines (blank lines and # comments
 * allowed); names are the long flag names without the dashes. The file is
 * read first (--config FILE), then flags override it, then defaults fill in
 * what neither set. Durations take ms, s, m or h ("250ms", "5s"); sizes take
 * K, M or G (powers of 1024) or plain bytes.
 */
#ifndef FW_CONFIG_H
#define FW_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    FW_OPT_STRING,   /* char * (owned by the config; freed by fw_config_free) */
    FW_OPT_INT,      /* int64_t */
    FW_OPT_BOOL,     /* int: true/false, yes/no, on/off, 1/0; a bare flag means true */
    FW_OPT_SIZE,     /* uint64_t bytes */
    FW_OPT_DURATION, /* int64_t milliseconds */
} fw_opt_type_t;

typedef struct fw_option_s {
    const char *name; /* "listen": --listen and the config key */
    fw_opt_type_t type;
    size_t offset;       /* where the value lives in the program's config struct */
    const char *def;     /* default, written as a user would; NULL for none;
                            "${VAR:-fallback}" takes $VAR when set */
    const char *metavar; /* "ADDR:PORT", for --help */
    const char *help;
} fw_option_t;

#define FW_OPTIONS_END                                                                             \
    {                                                                                              \
        NULL, 0, 0, NULL, NULL, NULL                                                               \
    }

typedef enum {
    FW_CONFIG_OK = 0,
    FW_CONFIG_HELP = 1,    /* --help was given: print fw_config_usage, exit 0 */
    FW_CONFIG_VERSION = 2, /* --version was given */
} fw_config_result_t;

/*
 * Parses argv (after argv[0]) into cfg per opts. Positional arguments are
 * left in *rest / *nrest (pointing into argv). Returns a fw_config_result_t,
 * or -EINVAL with a message for the user in err.
 */
int fw_config_parse(const fw_option_t *opts, void *cfg, int argc, char **argv, char ***rest,
                    int *nrest, char *err, size_t errlen);

/* Loads `name = value` lines from path into cfg. 0 or -errno / -EINVAL with err set. */
int fw_config_load_file(const fw_option_t *opts, void *cfg, const char *path, char *err,
                        size_t errlen);

/* Frees the strings the config owns. */
void fw_config_free(const fw_option_t *opts, void *cfg);

/*
 * A daemon's command line in one call: fw_config_parse, then --help (usage
 * on stdout), --version ("PROG VERSION"), or a bad flag or stray argument
 * (the error and the usage on stderr, and the config freed). Returns -1 to
 * go on, else the status to exit with (0, or 2 for bad usage).
 */
int fw_config_daemon(const char *prog, const fw_option_t *opts, void *cfg, int argc, char **argv,
                     void (*usage)(FILE *out));

/* Prints every option with its metavar, default and help. */
void fw_config_usage(const fw_option_t *opts, FILE *out);

/* "250ms", "5s", "2m", "1h" (or "0") to milliseconds; 0 or -EINVAL. */
int fw_parse_duration(const char *text, int64_t *ms);
/* "4096", "64K", "256M", "1G" to bytes; 0 or -EINVAL. */
int fw_parse_size(const char *text, uint64_t *bytes);

/* A whole string of decimal digits, at most max; 0 or -EINVAL. */
int fw_parse_u64(const char *text, uint64_t max, uint64_t *out);
/* The same with an optional leading '-', within [min, max]. */
int fw_parse_i64(const char *text, int64_t min, int64_t max, int64_t *out);

/*
 * Splits one `name = value` line in place (the syntax of config files and of
 * ZooKeeper metadata): trims blanks around both, NUL-terminates them.
 * Returns 1 with *name and *value set, 0 for a blank or # comment line,
 * -EINVAL if the line has no '='.
 */
int fw_config_split_line(char *line, char **name, char **value);

#endif
