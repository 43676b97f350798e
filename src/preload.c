/*
 * preload.c — what only the shared library needs to stand in for libc's
 * malloc in an unmodified program: the exec family and _exit/_Exit, wrapped
 * so that trace lines buffered in this process are written before the
 * process image is replaced or ends without running exit handlers (a forked
 * child commonly leaves by _exit). Not in the static library: a statically
 * linked program cannot look libc's definitions up, and its trace is flushed
 * at exit and around fork.
 *
 * These functions are async-signal-safe in libc and programs call them from
 * signal handlers, maybe while the interrupted code holds the trace lock: so
 * the flush only tries the lock, libc's exec functions are looked up by a
 * constructor (dlsym is not async-signal-safe), and _exit ends the process
 * with the exit system call itself.
 */
#define _GNU_SOURCE
#include "vmhdr.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <unistd.h>

typedef int (*Exec_f)(const char*, char* const[], char* const[]);
typedef int (*Execp_f)(const char*, char* const[]);

static Exec_f next_execve, next_execvpe;
static Execp_f next_execv, next_execvp;

__attribute__((constructor)) static void preload_resolve(void)
{
    next_execve = (Exec_f)dlsym(RTLD_NEXT, "execve");
    next_execvpe = (Exec_f)dlsym(RTLD_NEXT, "execvpe");
    next_execv = (Execp_f)dlsym(RTLD_NEXT, "execv");
    next_execvp = (Execp_f)dlsym(RTLD_NEXT, "execvp");
}

/* Flush, and make sure the next definition is known (an exec before the
 * constructors ran looks it up now). */
static void* preload_next(void* known, const char* name)
{
    vm_trace_flush_try();
    void* f = known ? known : dlsym(RTLD_NEXT, name);
    if (!f)
        errno = ENOSYS;
    return f;
}

int execve(const char* path, char* const argv[], char* const envp[])
{
    Exec_f f = (Exec_f)preload_next((void*)next_execve, "execve");
    return f ? f(path, argv, envp) : -1;
}

int execvpe(const char* file, char* const argv[], char* const envp[])
{
    Exec_f f = (Exec_f)preload_next((void*)next_execvpe, "execvpe");
    return f ? f(file, argv, envp) : -1;
}

int execv(const char* path, char* const argv[])
{
    Execp_f f = (Execp_f)preload_next((void*)next_execv, "execv");
    return f ? f(path, argv) : -1;
}

int execvp(const char* file, char* const argv[])
{
    Execp_f f = (Execp_f)preload_next((void*)next_execvp, "execvp");
    return f ? f(file, argv) : -1;
}

/* The list forms: gather the arguments (and envp for execle) into an array
 * on the stack and go through the vector forms above. */
#define PRELOAD_MAXARGS 4096

static int preload_gather(const char* arg0, va_list ap, char** argv)
{
    int n = 0;
    argv[n++] = (char*)arg0;
    while (arg0 && n < PRELOAD_MAXARGS) {
        argv[n] = va_arg(ap, char*);
        if (!argv[n++])
            return n;
    }
    if (arg0) {
        errno = E2BIG;
        return -1;
    }
    return n;
}

int execl(const char* path, const char* arg, ...)
{
    char* argv[PRELOAD_MAXARGS + 1];
    va_list ap;
    va_start(ap, arg);
    int n = preload_gather(arg, ap, argv);
    va_end(ap);
    return n < 0 ? -1 : execv(path, argv);
}

int execlp(const char* file, const char* arg, ...)
{
    char* argv[PRELOAD_MAXARGS + 1];
    va_list ap;
    va_start(ap, arg);
    int n = preload_gather(arg, ap, argv);
    va_end(ap);
    return n < 0 ? -1 : execvp(file, argv);
}

int execle(const char* path, const char* arg, ...)
{
    char* argv[PRELOAD_MAXARGS + 1];
    va_list ap;
    va_start(ap, arg);
    int n = preload_gather(arg, ap, argv);
    char* const* envp = n < 0 ? NULL : va_arg(ap, char* const*);
    va_end(ap);
    return n < 0 ? -1 : execve(path, argv, envp);
}

/* _exit is the exit system call; libc's adds nothing we would miss. */
void _exit(int status)
{
    vm_trace_flush_try();
    vm_os_exit(status);
}

void _Exit(int status)
{
    vm_trace_flush_try();
    vm_os_exit(status);
}
