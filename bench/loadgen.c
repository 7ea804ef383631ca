/*
 * loadgen: devices registering over HTTPS, as fast as one epoll thread can drive them.
 *
 *   loadgen HOST PORT CAFILE SCOPE DEVICES_FILE CONCURRENCY MODE [ACKED_FILE]
 *
 * DEVICES_FILE holds one "registrationId token" per line (tokens pre-computed: the load generator
 * signs nothing). MODE is one of
 *   keepalive   CONCURRENCY connections stay open; each registers devices one after another:
 *               PUT .../register, then GET .../operations/{id}, as the official clients do
 *   new         every device opens its own TLS connection (full handshake: no session reuse),
 *               registers, polls with "Connection: close", and the connection ends
 *   reference   one PUT per device on kept-alive connections (for the reference app, which
 *               answers 202 and nothing else)
 *   reference-new  one PUT per device, each on its own TLS connection
 * Prints one JSON line: registrations, failures, seconds, p50/p99 latency (register sent ->
 * poll answered; for the reference modes, request sent -> answered). With ACKED_FILE, writes the
 * id of every registration the server acknowledged with 202 (for the durability check); SIGTERM
 * stops the run early and still writes what was acknowledged.
 *
 * TLS is the system OpenSSL (3.0 on Debian 12), as devices built on OpenSSL or Python's ssl offer
 * it: TLS 1.3, X25519 key share. Its client side is the dearer one: 5.7M instructions per full
 * handshake (valgrind; the server side 2.6M), 1.3-1.8 ms of CPU here. No TLS library packaged
 * for Debian 12 does the same client work (chain and host name verified, nothing resumed) for much
 * less: BoringSSL (android-libboringssl) 5.2M, GnuTLS 8.1M, wolfSSL 8.3M (13.0M with its default
 * P-256 key share), BearSSL 25.8M and mbedTLS 53M (both TLS 1.2 only); in CPU time the cheapest,
 * BoringSSL and wolfSSL with X25519, take 1.2-1.4 times less. bench/handshake_cost/measure.sh
 * measures it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <arpa/inet.h>
#include <unistd.h>

#define BUF 16384

enum phase { CONNECTING, HANDSHAKE, SENDING, RECEIVING };
enum step { REGISTER, POLL };

struct device { char *id; char *token; };

struct conn {
    int fd;
    SSL *ssl;
    enum phase phase;
    enum step step;
    long device;
    char out[BUF];
    int out_len, out_sent;
    char in[BUF];
    int in_len;
    char operation[256];
    double started;
};

static struct device *devices;
static long device_count, next_device, done_count, failures;
static double *latencies;
static const char *host, *scope;
static int port, mode_new, mode_reference, epfd;
static SSL_CTX *ctx;
static FILE *acked;
static volatile sig_atomic_t stopping;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_signal(int sig) { (void)sig; stopping = 1; }

static void load_devices(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(2); }
    long cap = 1024;
    devices = malloc(cap * sizeof *devices);
    char *line = NULL;
    size_t n = 0;
    while (getline(&line, &n, f) > 0) {
        char *space = strchr(line, ' ');
        if (!space) continue;
        *space = 0;
        line[strcspn(line, "\n")] = 0;
        char *token = space + 1;
        token[strcspn(token, "\n")] = 0;
        if (device_count == cap) devices = realloc(devices, (cap *= 2) * sizeof *devices);
        devices[device_count].id = strdup(line);
        devices[device_count].token = strdup(token);
        device_count++;
    }
    free(line);
    fclose(f);
    latencies = malloc((device_count + 1) * sizeof *latencies);
}

static void watch(struct conn *c, unsigned events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, op, c->fd, &ev);
}

static void prepare(struct conn *c) {
    struct device *d = &devices[c->device];
    c->in_len = 0;
    c->out_sent = 0;
    if (c->step == REGISTER) {
        char body[512];
        int body_len = snprintf(body, sizeof body, "{\"registrationId\":\"%s\"}", d->id);
        const char *close = mode_reference && mode_new ? "Connection: close\r\n" : "";
        c->out_len = snprintf(c->out, BUF,
            "PUT /%s/registrations/%s/register?api-version=2019-03-31 HTTP/1.1\r\nHost: %s\r\n"
            "Authorization: %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s",
            scope, d->id, host, d->token, close, body_len, body);
        c->started = now();
    } else {
        c->out_len = snprintf(c->out, BUF,
            "GET /%s/registrations/%s/operations/%s?api-version=2019-03-31 HTTP/1.1\r\nHost: %s\r\n"
            "Authorization: %s\r\n%s\r\n",
            scope, d->id, c->operation, host, d->token, mode_new ? "Connection: close\r\n" : "");
    }
    c->phase = SENDING;
}

static int open_connection(struct conn *c);

static void finish_device(struct conn *c, int ok) {
    if (ok) latencies[done_count++] = now() - c->started;
    else failures++;
}

static void close_conn(struct conn *c) {
    if (c->ssl) { SSL_free(c->ssl); c->ssl = NULL; }
    if (c->fd >= 0) { close(c->fd); c->fd = -1; }
}

/* The next device for this connection slot, or 0 when there is none. */
static int start_next(struct conn *c) {
    if (stopping || next_device >= device_count) { close_conn(c); return 0; }
    c->device = next_device++;
    c->step = REGISTER;
    if (c->fd < 0) return open_connection(c);
    prepare(c);
    watch(c, EPOLLOUT, EPOLL_CTL_MOD);
    return 1;
}

static int open_connection(struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        failures++;
        close_conn(c);
        return start_next(c);
    }
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, "localhost");
    SSL_set1_host(c->ssl, "localhost");
    c->phase = CONNECTING;
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
    return 1;
}

/* Parses a complete response in c->in; returns 1 when complete, 0 when more is needed. */
static int complete_response(struct conn *c, int *status, char **body, int *body_len) {
    c->in[c->in_len] = 0;
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end) return 0;
    *status = atoi(c->in + 9);
    char *length = strcasestr(c->in, "\r\ncontent-length:");
    int want = length && length < end ? atoi(length + 17) : 0;
    *body = end + 4;
    *body_len = c->in_len - (int)(*body - c->in);
    return *body_len >= want;
}

static void on_response(struct conn *c) {
    int status, body_len;
    char *body;
    if (!complete_response(c, &status, &body, &body_len)) return;
    struct device *d = &devices[c->device];
    if (c->step == REGISTER && status == 202 && !mode_reference) {
        if (acked) fprintf(acked, "%s\n", d->id);
        char *op = strstr(body, "\"operationId\":\"");
        if (op) {
            op += 15;
            int n = (int)(strchr(op, '"') - op);
            memcpy(c->operation, op, n);
            c->operation[n] = 0;
            c->step = POLL;
            prepare(c);
            watch(c, EPOLLOUT, EPOLL_CTL_MOD);
            return;
        }
    }
    int ok = mode_reference ? status == 202 : (c->step == POLL && status == 200 && strstr(body, "\"assigned\""));
    finish_device(c, ok);
    if (mode_new) close_conn(c);
    start_next(c);
}

static void progress(struct conn *c) {
    int r;
    for (;;) {
        if (c->fd < 0) return;
        if (c->phase == CONNECTING) c->phase = HANDSHAKE;
        if (c->phase == HANDSHAKE) {
            r = SSL_connect(c->ssl);
            if (r != 1) break;
            prepare(c);
        }
        if (c->phase == SENDING) {
            r = SSL_write(c->ssl, c->out + c->out_sent, c->out_len - c->out_sent);
            if (r <= 0) break;
            c->out_sent += r;
            if (c->out_sent < c->out_len) continue;
            c->phase = RECEIVING;
            watch(c, EPOLLIN, EPOLL_CTL_MOD);
        }
        if (c->phase == RECEIVING) {
            r = SSL_read(c->ssl, c->in + c->in_len, BUF - 1 - c->in_len);
            if (r <= 0) break;
            c->in_len += r;
            on_response(c);
            return;
        }
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) { watch(c, EPOLLIN, EPOLL_CTL_MOD); return; }
    if (err == SSL_ERROR_WANT_WRITE) { watch(c, EPOLLOUT, EPOLL_CTL_MOD); return; }
    failures++;
    close_conn(c);
    start_next(c);
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: loadgen HOST PORT CAFILE SCOPE DEVICES_FILE CONCURRENCY MODE [ACKED_FILE]\n");
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    scope = argv[4];
    load_devices(argv[5]);
    int concurrency = atoi(argv[6]);
    mode_new = strstr(argv[7], "new") != NULL;
    mode_reference = strncmp(argv[7], "reference", 9) == 0;
    if (argc > 8) acked = fopen(argv[8], "w");
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, argv[3], NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* Every device is a stranger to the server: no session resumption. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

    epfd = epoll_create1(0);
    struct conn *conns = calloc(concurrency, sizeof *conns);
    double started = now();
    for (int i = 0; i < concurrency; i++) {
        conns[i].fd = -1;
        start_next(&conns[i]);
    }
    struct epoll_event events[256];
    for (;;) {
        int active = 0;
        for (int i = 0; i < concurrency; i++) active += conns[i].fd >= 0;
        if (!active) break;
        int n = epoll_wait(epfd, events, 256, 1000);
        if (n < 0 && errno == EINTR) continue;
        for (int i = 0; i < n; i++) progress(events[i].data.ptr);
        if (stopping) {
            for (int i = 0; i < concurrency; i++) close_conn(&conns[i]);
            break;
        }
    }
    double seconds = now() - started;
    if (acked) fclose(acked);
    qsort(latencies, done_count, sizeof *latencies, compare);
    double p50 = done_count ? latencies[done_count / 2] : 0;
    double p99 = done_count ? latencies[(long)(done_count * 0.99)] : 0;
    printf("{\"registrations\": %ld, \"failures\": %ld, \"seconds\": %.6f, \"p50\": %.6f, \"p99\": %.6f}\n",
           done_count, failures, seconds, p50, p99);
    return 0;
}
