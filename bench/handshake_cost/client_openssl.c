/* OpenSSL 3.0 client (compiled against android-libboringssl-dev, the BoringSSL client): verifies the
   chain to CAFILE and HOST, no session cache, no tickets. */
#include "common.h"
#include <openssl/ssl.h>
#include <openssl/err.h>
static SSL_CTX *ctx;

__attribute__((noinline)) int client_handshake(int report) {
    int fd = tcp_connect();
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, hostname);
    SSL_set1_host(ssl, hostname);
    char buf[16];
    int ok = SSL_connect(ssl) == 1 && SSL_write(ssl, "ping\n", 5) == 5 && SSL_read(ssl, buf, sizeof buf) == 5;
    if (!ok) ERR_print_errors_fp(stderr);
    if (ok && report) {
#ifdef OPENSSL_IS_BORINGSSL
        printf("BoringSSL (Android 13): %s %s group %s\n", SSL_get_version(ssl), SSL_get_cipher(ssl),
               SSL_get_curve_name(SSL_get_curve_id(ssl)));
#else
        int nid = SSL_get_negotiated_group(ssl);
        printf("%s: %s %s group %s\n", OpenSSL_version(OPENSSL_VERSION), SSL_get_version(ssl),
               SSL_get_cipher(ssl), OBJ_nid2sn(nid & ~TLSEXT_nid_unknown));
#endif
    }
    SSL_free(ssl);
    close(fd);
    return ok;
}

int main(int argc, char **argv) {
    int n = parse(argc, argv);
    ctx = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) { ERR_print_errors_fp(stderr); return 1; }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (tls12) {
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
        SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256");
    }
    if (!strcmp(group, "x25519")) SSL_CTX_set1_curves_list(ctx, "X25519:P-256");
    else if (!strcmp(group, "p256")) SSL_CTX_set1_curves_list(ctx, "P-256");
    return run(n, client_handshake);
}
