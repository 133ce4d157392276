/* SPDX-License-Identifier: Apache-2.0 */
/* The server's identity: its CA, TLS certificate, client certificates and the approval key. */
#ifndef SRV_PKI_H
#define SRV_PKI_H

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"

/* Files of the data directory (relative names). */
#define PKI_CA_CERT "ca.crt"
#define PKI_CA_KEY "ca.key"
#define PKI_SERVER_CERT "server.crt"
#define PKI_SERVER_KEY "server.key"
#define PKI_APPROVAL_KEY "approval.key"
#define PKI_APPROVAL_PUB "approval.pub"

/* The CA and server certificates are backdated by this much, so an agent host whose clock is a
 * little behind still accepts them. */
#define PKI_BACKDATE_S 300

struct pki {
	X509 *ca;
	EVP_PKEY *ca_key;
	X509_STORE *store; /* our CA only: the per-route check of client certificates */
	char *ca_pem;
	EVP_PKEY *approval_key;
	char *approval_pub_pem;
	int64_t ca_not_after_ms;
	char dir[4096];
};

/* Creates the CA, the server certificate (SANs: HOSTNAMES, localhost, 127.0.0.1, ::1) and the
 * approval key in DIR, which must exist. Private keys are written with mode 0600. */
op_rc pki_create(const char *dir, const char *const *hostnames, size_t n, int server_days,
		 struct op_error *err);
/* Loads what pki_create wrote. */
op_rc pki_load(struct pki *p, const char *dir, struct op_error *err);
void pki_release(struct pki *p);

/* An SSL_CTX for the listener: server cert and key from the data dir, TLS >= 1.2, client
 * certificates requested but neither required nor verified in the handshake (each route does
 * that with pki_verify_peer). */
SSL_CTX *pki_server_ctx(struct pki *p, struct op_error *err);

/* Checks a CSR in PEM: it parses, its signature holds, its key is EC P-256/P-384, Ed25519 or
 * RSA >= 2048. On success *OUT owns the request and KEY_HASH (65 bytes) is the SHA-256 of the
 * public key (DER). On failure MSG says what is wrong. Returns 0 or -1. */
int pki_csr_check(const char *pem, X509_REQ **out, char *key_hash, char *msg, size_t msglen);

/* Issues a client certificate for REQ's key: CN = AGENT_ID, clientAuth, VALIDITY_S seconds from
 * now (backdated by PKI_BACKDATE_S). *PEM is malloc()ed; SERIAL (65 bytes) is uppercase hex.
 * Returns 0 or -1. Safe to call from any thread. */
int pki_issue_client(struct pki *p, X509_REQ *req, const char *agent_id, int64_t validity_s,
		     char **pem, char *serial, int64_t *not_before_ms, int64_t *not_after_ms);

/* Verifies LEAF (with CHAIN's intermediates) against our CA, ignoring time: trust first.
 * Returns 0, or -1 with the reason in MSG. */
int pki_verify_peer(struct pki *p, X509 *leaf, STACK_OF(X509) *chain, char *msg, size_t msglen);

/* The CN, uppercase hex serial and validity of CERT. Returns 0 or -1. */
int pki_cert_fields(X509 *cert, char *cn, size_t cnlen, char *serial, int64_t *not_before_ms,
		    int64_t *not_after_ms);

/* Signs DATA with the approval key (ECDSA P-256, SHA-256, DER); *B64 is malloc()ed base64. */
int pki_sign_approval(struct pki *p, const void *data, size_t len, char **b64);
/* Verifies such a signature with a public key in PEM (for tests and the admin CLI). */
int pki_verify_approval(const char *pub_pem, const void *data, size_t len, const char *b64);

#endif
