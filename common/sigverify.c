/* SPDX-License-Identifier: Apache-2.0 */
#include "sigverify.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

enum op_sig op_sig_verify(const char *key_path, const void *data, size_t len,
			  const char *sig_b64)
{
	unsigned char sig[1024];
	FILE *f = fopen(key_path, "re");
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = NULL;
	size_t b64len = strlen(sig_b64);
	int siglen, pad = 0;
	enum op_sig rc = OP_SIG_BAD;

	if (f == NULL)
		return OP_SIG_NO_KEY;
	key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (key == NULL) {
		rc = OP_SIG_NOT_PEM;
		goto out;
	}
	if (b64len == 0 || b64len % 4 != 0 || b64len / 4 * 3 > sizeof(sig)) {
		rc = OP_SIG_NOT_BASE64;
		goto out;
	}
	siglen = EVP_DecodeBlock(sig, (const unsigned char *)sig_b64, (int)b64len);
	if (siglen < 0) {
		rc = OP_SIG_NOT_BASE64;
		goto out;
	}
	if (sig_b64[b64len - 1] == '=')
		pad++;
	if (b64len > 1 && sig_b64[b64len - 2] == '=')
		pad++;
	siglen -= pad;
	md = EVP_MD_CTX_new();
	if (md != NULL &&
	    EVP_DigestVerifyInit(md, NULL, EVP_PKEY_id(key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256(),
				 NULL, key) == 1 &&
	    EVP_DigestVerify(md, sig, (size_t)siglen, data, len) == 1)
		rc = OP_SIG_OK;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	return rc;
}
