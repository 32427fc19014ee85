/* The shared part of the peer producers (peer_input.h). */
#include "peer_input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

long long parse_count(const char *prog, const char *flag, const char *text)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0) {
        fprintf(stderr, "%s: %s wants a positive integer, not %s\n", prog, flag, text);
        exit(2);
    }
    return v;
}

/* The file is mapped rather than read so that the client's work during the
 * timed part is the protocol, not copies of the input. */
int input_open(struct input *in, const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    in->size = (size_t)st.st_size;
    in->off = 0;
    in->data = NULL;
    if (in->size > 0) {
        void *p = mmap(NULL, in->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = -errno;
            close(fd);
            return err;
        }
        madvise(p, in->size, MADV_SEQUENTIAL);
        in->data = p;
    }
    close(fd);
    return 0;
}

/* The next line without its newline; 0 at the end of the file. */
int input_next(struct input *in, const char **line, size_t *len)
{
    if (in->off >= in->size)
        return 0;
    const char *start = in->data + in->off;
    const char *nl = memchr(start, '\n', in->size - in->off);
    size_t n = nl ? (size_t)(nl - start) : in->size - in->off;
    *line = start;
    *len = n;
    in->off += n + (nl ? 1 : 0);
    return 1;
}
