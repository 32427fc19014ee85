/* What both peer producers share (bench/peers/README.md): the input file,
 * mapped so that the timed part is the protocol and not copies of the
 * input; the clocks; a count flag. */
#ifndef PEER_INPUT_H
#define PEER_INPUT_H

#include <stddef.h>

#define MB 1e6

struct input {
    const char *data;
    size_t size;
    size_t off;
};

/* Maps path read-only. 0 or a negative errno. */
int input_open(struct input *in, const char *path);
/* The next line without its newline; 0 at the end of the file. */
int input_next(struct input *in, const char **line, size_t *len);

/* Monotonic seconds. */
double now_s(void);
/* CPU seconds (user + system) of this process. */
double cpu_s(void);
/* A positive integer for flag, or exits 2 with a message naming prog. */
long long parse_count(const char *prog, const char *flag, const char *text);

#endif
