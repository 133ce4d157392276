/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's identity on disk: key (made here, 0600), certificate, CA bundle, approval key. */
#ifndef AG_IDENTITY_H
#define AG_IDENTITY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "op.h"

/* Files in the state dir. */
enum id_file {
	ID_KEY,	       /* agent.key: EC P-256 private key, PKCS#8 PEM, 0600 */
	ID_CERT,       /* agent.crt: the client certificate the control plane issued */
	ID_CA,	       /* ca.crt: the control plane's CA (issued our certificate) */
	ID_SERVER_CA,  /* server-ca.crt: what --ca-cert gave at install, to trust the server */
	ID_APPROVAL,   /* approval.pem: public key that signs approved change requests */
	ID_AGENT,      /* agent.json: agent id, control plane, intervals from enrollment */
	ID_KEY_NEW,    /* agent.key.new / agent.crt.new: a rotation being confirmed */
	ID_CERT_NEW
};

void id_path(const char *state_dir, enum id_file f, char *out, size_t size);

/* Makes a new EC P-256 key and writes it to PATH with mode 0600 (atomically). */
op_rc id_generate_key(const char *path, struct op_error *err);
/* A PEM certificate request for the key in KEY_PATH, subject CN=COMMON_NAME. */
op_rc id_make_csr(const char *key_path, const char *common_name, struct op_buf *pem,
		  struct op_error *err);

struct id_cert_info {
	double not_before, not_after; /* seconds since the epoch */
	char serial[80];	      /* hex */
	char subject_cn[256];
	char issuer_cn[256];
};

/* Reads the first certificate of PEM file PATH (or PEM text when TEXT is set). */
op_rc id_cert_info(const char *path, struct id_cert_info *info, struct op_error *err);
op_rc id_cert_info_text(const char *pem, struct id_cert_info *info, struct op_error *err);

/* Verifies that CERT_PATH's public key matches KEY_PATH's private key. */
op_rc id_key_matches(const char *cert_path, const char *key_path, struct op_error *err);

/* Verifies a base64 DER ECDSA/Ed25519 signature of DATA with the PEM public key in PATH. */
op_rc id_verify(const char *pubkey_path, const void *data, size_t len, const char *sig_b64,
		struct op_error *err);

/* agent.json: {"agent_id", "control_plane", "heartbeat_interval", "lease_ttl", "long_poll",
 * "enrolled_at", "hostname"}. */
op_rc id_load_agent(const char *state_dir, cJSON **out, struct op_error *err);
const char *id_agent_id(const cJSON *agent);

#endif
