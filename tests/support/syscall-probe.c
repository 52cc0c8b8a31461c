/* A small program run inside the sandbox by tests/hardening.rs: it tries each syscall the
 * seccomp policy denies and prints "<name> <errno>" (0 = succeeded), or for int80 how the
 * child that tried it ended. Built static for the host (native) and for armhf (in the rootfs,
 * with its gcc) so the filter is checked directly and through qemu's translation. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void report(const char *name, long ret) {
    printf("%s %d\n", name, ret < 0 ? errno : 0);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *t = argv[i];
        errno = 0;
        if (!strcmp(t, "getpid")) report(t, syscall(SYS_getpid));
        else if (!strcmp(t, "keyctl")) report(t, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
        else if (!strcmp(t, "add_key")) report(t, syscall(SYS_add_key, "user", "k", "v", 1, -3));
        else if (!strcmp(t, "bpf")) report(t, syscall(SYS_bpf, 0, NULL, 0));
        else if (!strcmp(t, "perf_event_open")) report(t, syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
        else if (!strcmp(t, "userfaultfd")) report(t, syscall(SYS_userfaultfd, 0));
        else if (!strcmp(t, "ptrace")) report(t, syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0));
        else if (!strcmp(t, "kexec_load")) report(t, syscall(SYS_kexec_load, 0, 0, NULL, 0));
        else if (!strcmp(t, "init_module")) report(t, syscall(SYS_init_module, NULL, 0, ""));
        else if (!strcmp(t, "open_by_handle_at")) report(t, syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
        else if (!strcmp(t, "mount")) report(t, mount("none", "/tmp", "tmpfs", 0, NULL));
        else if (!strcmp(t, "unshare_user")) report(t, unshare(CLONE_NEWUSER));
        else if (!strcmp(t, "unshare_ns")) report(t, unshare(CLONE_NEWNS));
        else if (!strcmp(t, "clone3")) report(t, syscall(SYS_clone3, NULL, 0));
        else if (!strcmp(t, "fork")) {
            pid_t p = fork();
            if (p == 0) _exit(7);
            int st = 0;
            waitpid(p, &st, 0);
            printf("fork %d\n", p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 0 : 1);
        } else if (!strncmp(t, "tiocsti", 7)) {
            /* Our own pty as controlling terminal, so only a filter can refuse TIOCSTI. */
            int m = posix_openpt(O_RDWR | O_NOCTTY);
            grantpt(m);
            unlockpt(m);
            int s = open(ptsname(m), O_RDWR);
            setsid();
            ioctl(s, TIOCSCTTY, 0);
            char c = 'x';
            unsigned long req = TIOCSTI;
            if (!strcmp(t, "tiocsti_high")) req |= 0x100000000UL;
            report(t, syscall(SYS_ioctl, s, req, &c));
        }
#if defined(__x86_64__)
        else if (!strcmp(t, "x32")) report(t, syscall(0x40000000 | SYS_getpid));
        else if (!strcmp(t, "int80")) {
            pid_t p = fork();
            if (p == 0) {
                long ret;
                __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory"); /* i386 getpid */
                _exit(0);
            }
            int st = 0;
            waitpid(p, &st, 0);
            printf("int80 %s%d\n", WIFSIGNALED(st) ? "signal " : "exit ", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
#endif
        else printf("%s unknown\n", t);
        fflush(stdout);
    }
    return 0;
}
