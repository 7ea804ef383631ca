/* GnuTLS client: verifies the chain to CAFILE and HOST (gnutls_session_set_verify_cert), no tickets. */
#include "common.h"
#include <gnutls/gnutls.h>
static gnutls_certificate_credentials_t cred;
static gnutls_priority_t prio;

__attribute__((noinline)) int client_handshake(int report) {
    int fd = tcp_connect();
    gnutls_session_t s;
    gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NO_TICKETS);
    gnutls_priority_set(s, prio);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, hostname, strlen(hostname));
    gnutls_session_set_verify_cert(s, hostname, 0);
    gnutls_transport_set_int(s, fd);
    int r;
    do r = gnutls_handshake(s); while (r < 0 && !gnutls_error_is_fatal(r));
    char buf[16];
    int ok = r == 0 && gnutls_record_send(s, "ping\n", 5) == 5;
    if (ok) { do r = gnutls_record_recv(s, buf, sizeof buf); while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED); ok = r == 5; }
    if (!ok) fprintf(stderr, "gnutls: %s\n", gnutls_strerror(r));
    if (ok && report) {
        char *d = gnutls_session_get_desc(s);
        printf("GnuTLS %s: %s\n", gnutls_check_version(NULL), d);
        gnutls_free(d);
    }
    gnutls_deinit(s);
    close(fd);
    return ok;
}

int main(int argc, char **argv) {
    int n = parse(argc, argv);
    gnutls_global_init();
    gnutls_certificate_allocate_credentials(&cred);
    if (gnutls_certificate_set_x509_trust_file(cred, cafile, GNUTLS_X509_FMT_PEM) != 1) { fprintf(stderr, "CA\n"); return 1; }
    char p[256];
    snprintf(p, sizeof p, "NORMAL%s%s",
             tls12 ? ":-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:-KX-ALL:+ECDHE-ECDSA" : ":-VERS-ALL:+VERS-TLS1.3",
             !strcmp(group, "x25519") ? ":-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1" :
             !strcmp(group, "p256") ? ":-GROUP-ALL:+GROUP-SECP256R1" : "");
    const char *err;
    if (gnutls_priority_init(&prio, p, &err) < 0) { fprintf(stderr, "priority at %s\n", err); return 1; }
    return run(n, client_handshake);
}
