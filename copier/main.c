/* copier: placeholder main until the daemon lands (this session). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "copier: not built yet\n");
    return 1;
}
