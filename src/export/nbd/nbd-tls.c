/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NBD over TLS (NBD_OPT_STARTTLS) with GnuTLS: X.509 certificates from a directory
 * (server-cert.pem, server-key.pem, optional ca-cert.pem) and/or a PSK file (psktool format). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "export/nbd/nbd-internal.h"

enum nbd_tls_mode nbd_tls_mode = NBD_TLS_OFF;

#if HAVE_GNUTLS
#include <gnutls/gnutls.h>

static gnutls_certificate_credentials_t g_x509;
static gnutls_psk_server_credentials_t g_psk;
static gnutls_priority_t g_priority;
static bool g_global_init;

/* TLS 1.2 or later only, as the protocol asks. PSK key exchanges are added when a PSK file is
 * configured. */
#define PRIORITY_X509 "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"
#define PRIORITY_PSK PRIORITY_X509 ":+ECDHE-PSK:+DHE-PSK:+PSK"

static int load_x509(const char *dir, struct orion_error *err) {
        char cert[4096], key[4096], ca[4096];
        struct stat st;
        int r;

        (void) snprintf(cert, sizeof(cert), "%s/server-cert.pem", dir);
        (void) snprintf(key, sizeof(key), "%s/server-key.pem", dir);
        (void) snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir);
        r = gnutls_certificate_allocate_credentials(&g_x509);
        if (r < 0)
                return orion_error_set(err, ENOMEM, "nbd-tls: %s", gnutls_strerror(r));
        r = gnutls_certificate_set_x509_key_file(g_x509, cert, key, GNUTLS_X509_FMT_PEM);
        if (r < 0)
                return orion_error_set(err, EINVAL, "nbd-tls: cannot load '%s' / '%s': %s", cert, key,
                                       gnutls_strerror(r));
        /* With a CA, client certificates are asked for and checked when sent. */
        if (stat(ca, &st) == 0) {
                r = gnutls_certificate_set_x509_trust_file(g_x509, ca, GNUTLS_X509_FMT_PEM);
                if (r < 0)
                        return orion_error_set(err, EINVAL, "nbd-tls: cannot load '%s': %s", ca, gnutls_strerror(r));
        }
        return 0;
}

static int load_psk(const char *file, struct orion_error *err) {
        int r = gnutls_psk_allocate_server_credentials(&g_psk);

        if (r < 0)
                return orion_error_set(err, ENOMEM, "nbd-tls: %s", gnutls_strerror(r));
        if (access(file, R_OK) < 0)
                return orion_error_set(err, errno, "nbd-tls: cannot read PSK file '%s': %m", file);
        r = gnutls_psk_set_server_credentials_file(g_psk, file);
        if (r < 0)
                return orion_error_set(err, EINVAL, "nbd-tls: bad PSK file '%s': %s", file, gnutls_strerror(r));
        return 0;
}

void nbd_tls_done(void) {
        if (g_x509)
                gnutls_certificate_free_credentials(g_x509);
        if (g_psk)
                gnutls_psk_free_server_credentials(g_psk);
        if (g_priority)
                gnutls_priority_deinit(g_priority);
        g_x509 = NULL;
        g_psk = NULL;
        g_priority = NULL;
        if (g_global_init)
                gnutls_global_deinit();
        g_global_init = false;
        nbd_tls_mode = NBD_TLS_OFF;
}

int nbd_tls_setup(const struct daemon_config *cfg, struct orion_error *err) {
        const char *mode = config_opt(cfg, "nbd-tls");
        const char *certs = config_opt(cfg, "nbd-tls-certificates"), *psk = config_opt(cfg, "nbd-tls-psk");
        int r;

        nbd_tls_mode = NBD_TLS_OFF;
        if (!mode || strcmp(mode, "off") == 0 || parse_bool(mode) == 0)
                return 0;
        if (strcmp(mode, "require") == 0)
                nbd_tls_mode = NBD_TLS_REQUIRE;
        else if (strcmp(mode, "on") == 0 || parse_bool(mode) == 1)
                nbd_tls_mode = NBD_TLS_ON;
        else
                return orion_error_set(err, EINVAL, "nbd-tls must be off, on or require, not '%s'", mode);
        if (!certs && !psk) {
                nbd_tls_mode = NBD_TLS_OFF;
                return orion_error_set(err, EINVAL, "nbd-tls = %s needs nbd-tls-certificates or nbd-tls-psk", mode);
        }
        r = gnutls_global_init();
        if (r < 0) {
                nbd_tls_mode = NBD_TLS_OFF;
                return orion_error_set(err, EIO, "nbd-tls: %s", gnutls_strerror(r));
        }
        g_global_init = true;
        r = 0;
        if (certs)
                r = load_x509(certs, err);
        if (r >= 0 && psk)
                r = load_psk(psk, err);
        if (r >= 0 && gnutls_priority_init(&g_priority, psk ? PRIORITY_PSK : PRIORITY_X509, NULL) < 0)
                r = orion_error_set(err, EINVAL, "nbd-tls: bad priority string");
        if (r < 0) {
                nbd_tls_done();
                return r;
        }
        orion_info("nbd: TLS %s (%s%s%s)", nbd_tls_mode == NBD_TLS_REQUIRE ? "required" : "offered",
                   certs ? "x509" : "", certs && psk ? ", " : "", psk ? "psk" : "");
        return 0;
}

int nbd_tls_start(struct nbd_conn *c) {
        gnutls_session_t s;
        int r;

        r = gnutls_init(&s, GNUTLS_SERVER);
        if (r < 0)
                return -ENOMEM;
        if (gnutls_priority_set(s, g_priority) < 0 ||
            (g_x509 && gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, g_x509) < 0) ||
            (g_psk && gnutls_credentials_set(s, GNUTLS_CRD_PSK, g_psk) < 0)) {
                gnutls_deinit(s);
                return -EINVAL;
        }
        if (g_x509)
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
        gnutls_transport_set_int(s, c->fd);
        gnutls_handshake_set_timeout(s, nbd_handshake_timeout ? nbd_handshake_timeout * 1000 : 0);
        do
                r = gnutls_handshake(s);
        while (r < 0 && !gnutls_error_is_fatal(r));
        if (r < 0) {
                orion_info("nbd: %s: TLS handshake failed: %s", c->peer, gnutls_strerror(r));
                gnutls_deinit(s);
                return -EPROTO;
        }
        if (g_x509 && gnutls_certificate_type_get(s) == GNUTLS_CRT_X509 &&
            gnutls_certificate_get_peers(s, &(unsigned) { 0 }) != NULL) {
                unsigned status = 0;
                if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0) {
                        orion_info("nbd: %s: client certificate not trusted, disconnecting", c->peer);
                        gnutls_deinit(s);
                        return -EACCES;
                }
        }
        c->tls = s;
        orion_debug("nbd: %s: TLS established (%s)", c->peer, gnutls_protocol_get_name(gnutls_protocol_get_version(s)));
        return 0;
}

void nbd_tls_close(struct nbd_conn *c) {
        if (!c->tls)
                return;
        /* Tell the client we are done; it may already be gone. */
        (void) gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        gnutls_deinit(c->tls);
        c->tls = NULL;
}

ssize_t nbd_tls_recv(struct nbd_conn *c, void *buf, size_t len) {
        for (;;) {
                ssize_t n = gnutls_record_recv(c->tls, buf, len);
                if (n >= 0)
                        return n;
                if (n == GNUTLS_E_INTERRUPTED)
                        continue;
                if (n == GNUTLS_E_AGAIN)
                        return -ETIMEDOUT; /* SO_RCVTIMEO of the handshake */
                if (n == GNUTLS_E_PREMATURE_TERMINATION)
                        return 0;
                return -ECONNRESET;
        }
}

int nbd_tls_sendv(struct nbd_conn *c, struct iovec *iov, int n) {
        /* Corked, so a header and its payload go out in as few records as possible. */
        gnutls_record_cork(c->tls);
        for (int i = 0; i < n; i++) {
                const char *p = iov[i].iov_base;
                size_t left = iov[i].iov_len;
                while (left > 0) {
                        ssize_t w = gnutls_record_send(c->tls, p, left);
                        if (w == GNUTLS_E_INTERRUPTED)
                                continue; /* E_AGAIN: the send timeout expired, the client is stuck */
                        if (w < 0) {
                                (void) gnutls_record_uncork(c->tls, 0);
                                return -EPIPE;
                        }
                        p += w;
                        left -= (size_t) w;
                }
        }
        for (;;) {
                int r = gnutls_record_uncork(c->tls, GNUTLS_RECORD_WAIT);
                if (r >= 0)
                        return 0;
                if (r != GNUTLS_E_INTERRUPTED)
                        return -EPIPE;
        }
}

#else /* !HAVE_GNUTLS */

int nbd_tls_setup(const struct daemon_config *cfg, struct orion_error *err) {
        const char *mode = config_opt(cfg, "nbd-tls");

        if (mode && strcmp(mode, "off") != 0 && parse_bool(mode) != 0)
                return orion_error_set(err, EOPNOTSUPP, "nbd-tls: this oriond was built without GnuTLS");
        return 0;
}

void nbd_tls_done(void) {
}

int nbd_tls_start(struct nbd_conn *c) {
        return -EOPNOTSUPP;
}

void nbd_tls_close(struct nbd_conn *c) {
}

ssize_t nbd_tls_recv(struct nbd_conn *c, void *buf, size_t len) {
        return -EOPNOTSUPP;
}

int nbd_tls_sendv(struct nbd_conn *c, struct iovec *iov, int n) {
        return -EOPNOTSUPP;
}
#endif
