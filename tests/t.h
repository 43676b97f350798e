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

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif /* T_H */
