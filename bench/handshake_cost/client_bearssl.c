/* BearSSL client (TLS 1.2 only): x509_minimal verifies the chain to the trust anchors read from
   CAFILE and the server name HOST; br_ssl_client_reset(..., 0) never resumes. */
#include "common.h"
#include <bearssl.h>
#include <errno.h>

static br_x509_trust_anchor anchors[16];
static size_t anchor_count;
static br_ssl_client_context cc;
static br_x509_minimal_context xc;
static unsigned char iobuf[BR_SSL_BUFSIZE_BIDI];

/* --- trust anchors from a PEM file --- */
struct blob { unsigned char *data; size_t len; };
static void blob_append(void *ctx, const void *p, size_t n) {
    struct blob *b = ctx;
    b->data = realloc(b->data, b->len + n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void add_anchor(const unsigned char *der, size_t len) {
    br_x509_decoder_context dc;
    struct blob dn = {0};
    br_x509_decoder_init(&dc, blob_append, &dn);
    br_x509_decoder_push(&dc, der, len);
    br_x509_pkey *pk = br_x509_decoder_get_pkey(&dc);
    if (!pk || pk->key_type != BR_KEYTYPE_EC) { fprintf(stderr, "CA: not an EC certificate\n"); exit(1); }
    br_x509_trust_anchor *ta = &anchors[anchor_count++];
    ta->dn.data = dn.data; ta->dn.len = dn.len;
    ta->flags = br_x509_decoder_isCA(&dc) ? BR_X509_TA_CA : 0;
    ta->pkey.key_type = BR_KEYTYPE_EC;
    ta->pkey.key.ec.curve = pk->key.ec.curve;
    ta->pkey.key.ec.q = malloc(pk->key.ec.qlen);
    memcpy(ta->pkey.key.ec.q, pk->key.ec.q, pk->key.ec.qlen);
    ta->pkey.key.ec.qlen = pk->key.ec.qlen;
}
static void load_anchors(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(1); }
    br_pem_decoder_context pc;
    br_pem_decoder_init(&pc);
    struct blob der = {0};
    int in_cert = 0;
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        unsigned char *p = buf;
        while (n > 0) {
            size_t used = br_pem_decoder_push(&pc, p, n);
            p += used; n -= used;
            switch (br_pem_decoder_event(&pc)) {
            case BR_PEM_BEGIN_OBJ:
                in_cert = !strcmp(br_pem_decoder_name(&pc), "CERTIFICATE");
                der.len = 0;
                br_pem_decoder_setdest(&pc, in_cert ? blob_append : NULL, &der);
                break;
            case BR_PEM_END_OBJ:
                if (in_cert) add_anchor(der.data, der.len);
                break;
            case BR_PEM_ERROR: fprintf(stderr, "CA: bad PEM\n"); exit(1);
            }
        }
    }
    fclose(f);
}

/* --- one handshake --- */
static int sock_read(void *ctx, unsigned char *buf, size_t len) {
    for (;;) { ssize_t r = read(*(int *)ctx, buf, len); if (r > 0) return r; if (r == 0) return -1; if (errno != EINTR) return -1; }
}
static int sock_write(void *ctx, const unsigned char *buf, size_t len) {
    for (;;) { ssize_t r = write(*(int *)ctx, buf, len); if (r > 0) return r; if (errno != EINTR) return -1; }
}

__attribute__((noinline)) int client_handshake(int report) {
    int fd = tcp_connect();
    br_ssl_client_reset(&cc, hostname, 0);
    br_sslio_context io;
    br_sslio_init(&io, &cc.eng, sock_read, &fd, sock_write, &fd);
    unsigned char buf[16];
    int ok = br_sslio_write_all(&io, "ping\n", 5) == 0 && br_sslio_flush(&io) == 0 && br_sslio_read(&io, buf, sizeof buf) == 5;
    if (!ok) fprintf(stderr, "bearssl error %d\n", br_ssl_engine_last_error(&cc.eng));
    if (ok && report) {
        int curve = br_ssl_engine_get_ecdhe_curve(&cc.eng);
        printf("BearSSL 0.6: version %04x suite %04x curve %s\n", cc.eng.session.version, cc.eng.session.cipher_suite,
               curve == BR_EC_curve25519 ? "X25519" : curve == BR_EC_secp256r1 ? "P-256" : "other");
    }
    close(fd);
    return ok;
}

int main(int argc, char **argv) {
    int n = parse(argc, argv);
    if (!tls12) { fprintf(stderr, "BearSSL has no TLS 1.3\n"); return 1; }
    load_anchors(cafile);
    br_ssl_client_init_full(&cc, &xc, anchors, anchor_count);
    static const uint16_t suites[] = {BR_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256};
    br_ssl_engine_set_suites(&cc.eng, suites, 1);
    br_ssl_engine_set_versions(&cc.eng, BR_TLS12, BR_TLS12);
    if (!strcmp(group, "p256")) br_ssl_engine_set_ec(&cc.eng, &br_ec_p256_m31);
    else if (!strcmp(group, "x25519")) br_ssl_engine_set_ec(&cc.eng, &br_ec_all_m31);
    br_ssl_engine_set_buffer(&cc.eng, iobuf, sizeof iobuf, 1);
    return run(n, client_handshake);
}
