/* SPDX-License-Identifier: Apache-2.0 */
/* Approval signatures: the one check the agent and the change plugin both make (OpenSSL; not
 * part of outpost_common, which the lean worker links, but compiled into each of them). */
#ifndef OP_SIGVERIFY_H
#define OP_SIGVERIFY_H

#include <stddef.h>

enum op_sig {
	OP_SIG_OK,
	OP_SIG_NO_KEY,	   /* the key file cannot be read (errno says why) */
	OP_SIG_NOT_PEM,	   /* the key file holds no PEM public key */
	OP_SIG_NOT_BASE64, /* the signature is not base64, or too long */
	OP_SIG_BAD,	   /* the signature does not verify (or no memory to check it) */
};

/* Verifies SIG_B64, a base64 DER ECDSA (SHA-256) or Ed25519 signature, over DATA with the PEM
 * public key at KEY_PATH. Callers say what each outcome means in their own words. */
enum op_sig op_sig_verify(const char *key_path, const void *data, size_t len,
			  const char *sig_b64);

#endif
