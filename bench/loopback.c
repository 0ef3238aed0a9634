/* One loopback TCP stream, for the benchmark's raw-hardware reference.
 *
 *   loopback [SECONDS]     (default 3) prints "loopback_tcp_MBps <MB/s>" (MB = 10^6 bytes)
 *
 * A forked child reads with a 1 MiB buffer until EOF; the parent writes 1 MiB buffers for
 * SECONDS, closes, and waits for the child, so the figure counts bytes that were received. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF (1 << 20)

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
        double secs = argc > 1 ? atof(argv[1]) : 3.0;
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1) ||
            getsockname(ls, (struct sockaddr *)&a, &alen)) {
                perror("listen");
                return 1;
        }
        int pfd[2];
        if (pipe(pfd)) { perror("pipe"); return 1; }
        pid_t pid = fork();
        if (pid == 0) {
                int c = accept(ls, NULL, NULL);
                char *b = malloc(BUF);
                long long total = 0;
                ssize_t n;
                while ((n = read(c, b, BUF)) > 0) total += n;
                if (write(pfd[1], &total, sizeof(total)) != sizeof(total)) return 1;
                return 0;
        }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof(a))) { perror("connect"); return 1; }
        char *b = malloc(BUF);
        memset(b, 'x', BUF);
        double t0 = now();
        while (now() - t0 < secs) {
                ssize_t off = 0;
                while (off < BUF) {
                        ssize_t n = write(s, b + off, BUF - off);
                        if (n <= 0) { perror("write"); return 1; }
                        off += n;
                }
        }
        close(s);
        long long total = 0;
        if (read(pfd[0], &total, sizeof(total)) != sizeof(total)) return 1;
        waitpid(pid, NULL, 0);
        double t = now() - t0;
        printf("loopback_tcp_MBps %.0f\n", total / t / 1e6);
        return 0;
}
