/* LD_PRELOAD shim for running the gateway under valgrind 3.19 (bench/callgrind, bench/upload-cost).
   valgrind's rt_sigsuspend wrapper edits the caller's signal mask in place; libdispatch's main-queue wait
   passes one in read-only memory, and the gateway crashed there. Hand the kernel a copy instead. */
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, (size_t)8);
}
