/*
 * fd_reuse.c — a program that closes every descriptor it did not open (as
 * daemons do, or closefrom(3)), then opens a file of its own, which gets the
 * lowest free number, and allocates a lot while the file is open. Under
 * VMTRACE the library's trace descriptor is among those closed: trace lines
 * must not land in the program's files. It opens NFILES files, so that they
 * take the trace's old number whatever descriptors the caller left open.
 * Prints what the files hold.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { NFILES = 16 };

static void* volatile keep;

int main(int argc, char** argv)
{
    if (argc < 2)
        return 2;
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (long)rl.rlim_cur : 65536;
    for (long fd = 3; fd < max; ++fd)
        close((int)fd);
    int fds[NFILES];
    char path[4096];
    for (int k = 0; k < NFILES; ++k) {
        snprintf(path, sizeof path, "%s.%d", argv[1], k);
        fds[k] = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fds[k] < 0)
            return 3;
    }
    for (int i = 0; i < 20000; ++i) { /* enough trace lines to fill the buffer many times */
        keep = malloc(40 + (size_t)(i % 100));
        free(keep);
    }
    int intact = 0;
    for (int k = 0; k < NFILES; ++k) {
        if (write(fds[k], "payload\n", 8) != 8)
            return 4;
        close(fds[k]);
        char buf[64];
        snprintf(path, sizeof path, "%s.%d", argv[1], k);
        int fd = open(path, O_RDONLY);
        ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
        if (fd >= 0)
            close(fd);
        intact += n == 8 && memcmp(buf, "payload\n", 8) == 0;
    }
    printf("fd_reuse: %d of %d files hold just what the program wrote\n", intact, NFILES);
    return 0;
}
