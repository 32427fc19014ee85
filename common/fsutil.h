/* Small filesystem helpers with the durability rules freeway relies on. */
#ifndef FW_FSUTIL_H
#define FW_FSUTIL_H

#include <stddef.h>

/* fsync()s a directory so that entries created or renamed in it survive a crash. */
int fw_fsync_dir(const char *dir);

/* mkdir -p with mode 0755; 0 or -errno. */
int fw_mkdir_p(const char *path);

/* The directory part of path into out (like dirname, without modifying path). */
int fw_dirname(const char *path, char *out, size_t cap);

#endif
