/*
 * t.h — the tests' harness: a header, nothing to link.
 *
 *   CHECK(cond, fmt, ...)   stop the test at the first broken expectation:
 *                           prints file:line, the condition and the message,
 *                           and exits 1 (later checks usually depend on it);
 *   EXPECT(cond, fmt, ...)  the same report, but counts the failure and goes on;
 *   T_DONE()                the exit status: 1 if any EXPECT failed, else 0.
 *
 * A test is a program that exits 0 on success (tests/CMakeLists.txt). Every
 * message names what was seen, so a failure is readable without a debugger.
 */
#ifndef T_H
#define T_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* vmalloc.h's names, repeated (C11 allows it) rather than the header
 * included: a test built with -DVMFL must include it after every system
 * header, whose declarations its macros would rename. */
typedef struct _vmalloc_s Vmalloc_t;
typedef struct _vmdisc_s Vmdisc_t;

static int t_failures; /* failed EXPECTs so far */

static inline void t_report(const char* file, int line, const char* cond, const char* fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: failed: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            t_report(__FILE__, __LINE__, #cond, __VA_ARGS__);                                      \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            t_report(__FILE__, __LINE__, #cond, __VA_ARGS__);                                      \
            t_failures += 1;                                                                       \
        }                                                                                          \
    } while (0)

#define T_DONE() (t_failures ? 1 : 0)

/* Block contents: a pattern from seed that fill writes and intact checks. */
static inline void fill(void* p, size_t n, unsigned seed)
{
    unsigned char* c = p;
    for (size_t i = 0; i < n; ++i)
        c[i] = (unsigned char)(seed + i * 7);
}

static inline int intact(const void* p, size_t n, unsigned seed)
{
    const unsigned char* c = p;
    for (size_t i = 0; i < n; ++i)
        if (c[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

static inline int all_zero(const void* p, size_t n)
{
    const unsigned char* c = p;
    for (size_t i = 0; i < n; ++i)
        if (c[i])
            return 0;
    return 1;
}

/* A whole file, NUL-terminated, in malloc'd memory (its length in *len_out
 * if not NULL); NULL if it cannot be read. */
static inline char* t_read_file(const char* path, size_t* len_out)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char* buf = malloc(cap);
    ssize_t n;
    while (buf && (n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    if (buf)
        buf[len] = 0;
    if (len_out)
        *len_out = len;
    return buf;
}

/* xorshift64*: a small, seeded, reproducible random stream (seed non-zero). */
static inline uint64_t t_rand(uint64_t* s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A vmwalk visitor that counts the blocks it is shown into *(size_t*)arg. */
static inline int t_count_blocks(Vmalloc_t* vm, void* block, size_t size, Vmdisc_t* disc, void* arg)
{
    (void)vm;
    (void)block;
    (void)size;
    (void)disc;
    *(size_t*)arg += 1;
    return 0;
}

#endif /* T_H */
