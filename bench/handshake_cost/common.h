/*
 * Shared by the handshake-cost clients (see measure.sh): each client is
 *
 *   client PORT CAFILE HOST 12|13 default|x25519|p256 N
 *
 * 12: TLS 1.2 only, ECDHE-ECDSA-AES128-GCM-SHA256; 13: TLS 1.3 only. default: the library's own
 * group offer; x25519: X25519 then P-256; p256: P-256 only. Runs one warm-up handshake (printing
 * what was negotiated), then N more inside measured() (valgrind --toggle-collect=measured), and
 * prints the client's CPU time per handshake.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;
static const char *cafile, *hostname;
static int tls12;      /* 1: TLS 1.2 only with ECDHE-ECDSA-AES128-GCM-SHA256; 0: TLS 1.3 */
static const char *group; /* "x25519", "p256", or "default" */

static int tcp_connect(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); exit(1); }
    return fd;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* usage: client PORT CAFILE HOST 12|13 GROUP N */
static int parse(int argc, char **argv) {
    if (argc < 7) { fprintf(stderr, "usage: %s PORT CAFILE HOST 12|13 x25519|p256|default N\n", argv[0]); exit(2); }
    port = atoi(argv[1]); cafile = argv[2]; hostname = argv[3];
    tls12 = atoi(argv[4]) == 12; group = argv[5];
    return atoi(argv[6]);
}

/* Callgrind collects inside this function only (--toggle-collect=measured): the warm-up handshake is left out. */
__attribute__((noinline)) int measured(int (*one)(int report)) { return one(0); }

static int run(int n, int (*one)(int report)) {
    if (!one(1)) { fprintf(stderr, "handshake failed\n"); return 1; }
    double t = cpu_now();
    for (int i = 0; i < n; i++) if (!measured(one)) { fprintf(stderr, "handshake %d failed\n", i); return 1; }
    t = cpu_now() - t;
    printf("%d handshakes, client CPU %.1f us per handshake\n", n, t / n * 1e6);
    return 0;
}
