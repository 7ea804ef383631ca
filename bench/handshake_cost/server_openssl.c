/* OpenSSL 3.0 server configured as edgeprov.tls.server_context: TLS 1.2-1.3, ECDHE+AESGCM:ECDHE+CHACHA20,
   server cipher preference, one TLS 1.3 ticket. Accepts, handshakes, reads "ping\n", writes "pong\n", closes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>

static SSL_CTX *ctx;

__attribute__((noinline)) int serve_one(int fd) {
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    int ok = SSL_accept(ssl) == 1;
    char buf[16];
    if (ok) ok = SSL_read(ssl, buf, sizeof buf) > 0 && SSL_write(ssl, "pong\n", 5) == 5;
    if (!ok) ERR_print_errors_fp(stderr);
    SSL_free(ssl);
    return ok;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]);
    long limit = argc > 4 ? atol(argv[4]) : -1;
    ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_ALL | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    SSL_CTX_set_num_tickets(ctx, 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[2]) != 1 || SSL_CTX_use_PrivateKey_file(ctx, argv[3], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr); return 1;
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 128) < 0) { perror("listen"); return 1; }
    for (long i = 0; limit < 0 || i < limit; i++) {
        int fd = accept(ls, NULL, NULL);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve_one(fd);
        close(fd);
    }
    return 0;
}
