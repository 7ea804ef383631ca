/* mbedTLS 2.28 client (TLS 1.2 only): verification required against CAFILE and HOST, no resumption. */
#include "common.h"
#include <mbedtls/ssl.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/version.h>
static mbedtls_ssl_config conf;
static mbedtls_x509_crt ca;
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

__attribute__((noinline)) int client_handshake(int report) {
    mbedtls_net_context net = {.fd = tcp_connect()};
    mbedtls_ssl_context ssl;
    mbedtls_ssl_init(&ssl);
    mbedtls_ssl_setup(&ssl, &conf);
    mbedtls_ssl_set_hostname(&ssl, hostname); /* SNI and the name the certificate must carry */
    mbedtls_ssl_set_bio(&ssl, &net, mbedtls_net_send, mbedtls_net_recv, NULL);
    int r;
    while ((r = mbedtls_ssl_handshake(&ssl)) == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {}
    unsigned char buf[16];
    int ok = r == 0 && mbedtls_ssl_write(&ssl, (const unsigned char *)"ping\n", 5) == 5 && (r = mbedtls_ssl_read(&ssl, buf, sizeof buf)) == 5;
    if (!ok) { char e[100]; mbedtls_strerror(r, e, sizeof e); fprintf(stderr, "mbedtls: %s (verify %x)\n", e, mbedtls_ssl_get_verify_result(&ssl)); }
    if (ok && report) printf("mbedTLS %s: %s %s\n", MBEDTLS_VERSION_STRING, mbedtls_ssl_get_version(&ssl), mbedtls_ssl_get_ciphersuite(&ssl));
    mbedtls_ssl_free(&ssl);
    mbedtls_net_free(&net);
    return ok;
}

int main(int argc, char **argv) {
    int n = parse(argc, argv);
    if (!tls12) { fprintf(stderr, "mbedTLS 2.28 (Debian) has no TLS 1.3\n"); return 1; }
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0);
    mbedtls_x509_crt_init(&ca);
    if (mbedtls_x509_crt_parse_file(&ca, cafile) != 0) { fprintf(stderr, "CA\n"); return 1; }
    mbedtls_ssl_config_init(&conf);
    mbedtls_ssl_config_defaults(&conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    mbedtls_ssl_conf_authmode(&conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&conf, &ca, NULL);
    mbedtls_ssl_conf_rng(&conf, mbedtls_ctr_drbg_random, &drbg);
    static const int suites[] = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0};
    mbedtls_ssl_conf_ciphersuites(&conf, suites);
    static const mbedtls_ecp_group_id x25519[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};
    static const mbedtls_ecp_group_id p256[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};
    if (!strcmp(group, "x25519")) mbedtls_ssl_conf_curves(&conf, x25519);
    else if (!strcmp(group, "p256")) mbedtls_ssl_conf_curves(&conf, p256);
    return run(n, client_handshake);
}
