/* wolfSSL client: verifies the chain to CAFILE and HOST (wolfSSL_check_domain_name), no resumption. */
#include "common.h"
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
static WOLFSSL_CTX *ctx;

__attribute__((noinline)) int client_handshake(int report) {
    int fd = tcp_connect();
    WOLFSSL *ssl = wolfSSL_new(ctx);
    wolfSSL_set_fd(ssl, fd);
    wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, hostname, (unsigned short)strlen(hostname));
    wolfSSL_check_domain_name(ssl, hostname);
    if (!strcmp(group, "x25519")) {
        int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
        if (!tls12) wolfSSL_set_groups(ssl, groups, 2);
        wolfSSL_UseSupportedCurve(ssl, WOLFSSL_ECC_X25519);
        wolfSSL_UseSupportedCurve(ssl, WOLFSSL_ECC_SECP256R1);
    } else if (!strcmp(group, "p256")) {
        int groups[] = {WOLFSSL_ECC_SECP256R1};
        if (!tls12) wolfSSL_set_groups(ssl, groups, 1);
        wolfSSL_UseSupportedCurve(ssl, WOLFSSL_ECC_SECP256R1);
    }
    char buf[16];
    int ok = wolfSSL_connect(ssl) == WOLFSSL_SUCCESS && wolfSSL_write(ssl, "ping\n", 5) == 5 && wolfSSL_read(ssl, buf, sizeof buf) == 5;
    if (!ok) {
        char err[80];
        fprintf(stderr, "wolfssl: %s\n", wolfSSL_ERR_error_string(wolfSSL_get_error(ssl, 0), err));
    }
    if (ok && report) {
        const char *curve = wolfSSL_get_curve_name(ssl);
        printf("wolfSSL %s: %s %s group %s\n", wolfSSL_lib_version(), wolfSSL_get_version(ssl),
               wolfSSL_get_cipher(ssl), curve ? curve : "?");
    }
    wolfSSL_free(ssl);
    close(fd);
    return ok;
}

int main(int argc, char **argv) {
    int n = parse(argc, argv);
    wolfSSL_Init();
    ctx = wolfSSL_CTX_new(tls12 ? wolfTLSv1_2_client_method() : wolfTLSv1_3_client_method());
    if (wolfSSL_CTX_load_verify_locations(ctx, cafile, NULL) != WOLFSSL_SUCCESS) { fprintf(stderr, "CA\n"); return 1; }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    if (tls12) wolfSSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256");
    return run(n, client_handshake);
}
