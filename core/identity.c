/* SPDX-License-Identifier: Apache-2.0 */
/* Keys, CSRs, certificates and signatures with OpenSSL 3. */
#include "identity.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fsutil.h"
#include "sigverify.h"

void id_path(const char *state_dir, enum id_file f, char *out, size_t size)
{
	static const char *const names[] = {
		[ID_KEY] = "agent.key",	       [ID_CERT] = "agent.crt",
		[ID_CA] = "ca.crt",	       [ID_SERVER_CA] = "server-ca.crt",
		[ID_APPROVAL] = "approval.pem", [ID_AGENT] = "agent.json",
		[ID_KEY_NEW] = "agent.key.new", [ID_CERT_NEW] = "agent.crt.new",
	};

	snprintf(out, size, "%s/%s", state_dir, names[f]);
}

static const char *ssl_error(char *buf, size_t size)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, size, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, buf, size);
	ERR_clear_error();
	return buf;
}

op_rc id_generate_key(const char *path, struct op_error *err)
{
	char ebuf[256];
	EVP_PKEY *key = EVP_EC_gen("P-256");
	BIO *mem = NULL;
	BUF_MEM *bm;
	op_rc rc;

	if (key == NULL)
		return op_fail(err, OP_EIO, "cannot make an EC P-256 key: %s",
			       ssl_error(ebuf, sizeof(ebuf)));
	mem = BIO_new(BIO_s_mem());
	if (mem == NULL || !PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL)) {
		rc = op_fail(err, OP_EIO, "cannot encode the key: %s", ssl_error(ebuf, sizeof(ebuf)));
		goto out;
	}
	BIO_get_mem_ptr(mem, &bm);
	rc = op_write_file_atomic(path, bm->data, bm->length, 0600, err);
	OPENSSL_cleanse(bm->data, bm->length);
out:
	BIO_free(mem);
	EVP_PKEY_free(key);
	return rc;
}

static EVP_PKEY *load_key(const char *path, struct op_error *err)
{
	char ebuf[256];
	FILE *f = fopen(path, "re");
	EVP_PKEY *key;

	if (f == NULL) {
		op_fail(err, OP_ENOENT, "cannot read the agent key %s: %s", path, strerror(errno));
		return NULL;
	}
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (key == NULL)
		op_fail(err, OP_EINVAL, "%s is not a PEM private key: %s", path,
			ssl_error(ebuf, sizeof(ebuf)));
	return key;
}

op_rc id_make_csr(const char *key_path, const char *common_name, struct op_buf *pem,
		  struct op_error *err)
{
	char ebuf[256];
	EVP_PKEY *key = load_key(key_path, err);
	X509_REQ *req = NULL;
	X509_NAME *name;
	BIO *mem = NULL;
	BUF_MEM *bm;
	op_rc rc = OP_OK;

	if (key == NULL)
		return err ? err->rc : OP_EIO;
	req = X509_REQ_new();
	mem = BIO_new(BIO_s_mem());
	if (req == NULL || mem == NULL || !X509_REQ_set_version(req, 0) ||
	    !X509_REQ_set_pubkey(req, key)) {
		rc = op_fail(err, OP_EIO, "cannot build the CSR: %s", ssl_error(ebuf, sizeof(ebuf)));
		goto out;
	}
	name = X509_REQ_get_subject_name(req);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)common_name, -1, -1, 0) ||
	    !X509_REQ_sign(req, key, EVP_sha256()) || !PEM_write_bio_X509_REQ(mem, req)) {
		rc = op_fail(err, OP_EIO, "cannot sign the CSR: %s", ssl_error(ebuf, sizeof(ebuf)));
		goto out;
	}
	BIO_get_mem_ptr(mem, &bm);
	if (op_buf_append(pem, bm->data, bm->length) < 0)
		rc = op_fail(err, OP_ENOMEM, "out of memory");
out:
	BIO_free(mem);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}

static double asn1_epoch(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (double)timegm(&tm);
}

static void name_cn(const X509_NAME *n, char *out, size_t size)
{
	out[0] = '\0';
	if (X509_NAME_get_text_by_NID((X509_NAME *)n, NID_commonName, out, (int)size) < 0)
		out[0] = '\0';
}

static op_rc info_from(X509 *x, struct id_cert_info *info, struct op_error *err)
{
	const ASN1_INTEGER *serial = X509_get0_serialNumber(x);
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	memset(info, 0, sizeof(*info));
	info->not_before = asn1_epoch(X509_get0_notBefore(x));
	info->not_after = asn1_epoch(X509_get0_notAfter(x));
	if (hex)
		snprintf(info->serial, sizeof(info->serial), "%s", hex);
	name_cn(X509_get_subject_name(x), info->subject_cn, sizeof(info->subject_cn));
	name_cn(X509_get_issuer_name(x), info->issuer_cn, sizeof(info->issuer_cn));
	OPENSSL_free(hex);
	BN_free(bn);
	return hex ? OP_OK : op_fail(err, OP_ENOMEM, "out of memory");
}

op_rc id_cert_info(const char *path, struct id_cert_info *info, struct op_error *err)
{
	FILE *f = fopen(path, "re");
	X509 *x;
	op_rc rc;

	if (f == NULL)
		return op_fail(err, OP_ENOENT, "cannot read certificate %s: %s", path,
			       strerror(errno));
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		ERR_clear_error();
		return op_fail(err, OP_EINVAL, "%s is not a PEM certificate", path);
	}
	rc = info_from(x, info, err);
	X509_free(x);
	return rc;
}

op_rc id_cert_info_text(const char *pem, struct id_cert_info *info, struct op_error *err)
{
	BIO *mem = BIO_new_mem_buf(pem, -1);
	X509 *x = mem ? PEM_read_bio_X509(mem, NULL, NULL, NULL) : NULL;
	op_rc rc;

	BIO_free(mem);
	if (x == NULL) {
		ERR_clear_error();
		return op_fail(err, OP_EINVAL, "not a PEM certificate");
	}
	rc = info_from(x, info, err);
	X509_free(x);
	return rc;
}

op_rc id_key_matches(const char *cert_path, const char *key_path, struct op_error *err)
{
	FILE *f = fopen(cert_path, "re");
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	op_rc rc = OP_OK;

	if (f == NULL)
		return op_fail(err, OP_ENOENT, "cannot read certificate %s: %s", cert_path,
			       strerror(errno));
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		ERR_clear_error();
		return op_fail(err, OP_EINVAL, "%s is not a PEM certificate", cert_path);
	}
	key = load_key(key_path, err);
	if (key == NULL)
		rc = err ? err->rc : OP_EIO;
	else if (X509_check_private_key(x, key) != 1)
		rc = op_fail(err, OP_EINVAL, "the key %s does not belong to certificate %s",
			     key_path, cert_path);
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

op_rc id_verify(const char *pubkey_path, const void *data, size_t len, const char *sig_b64,
		struct op_error *err)
{
	switch (op_sig_verify(pubkey_path, data, len, sig_b64)) {
	case OP_SIG_OK:
		return OP_OK;
	case OP_SIG_NO_KEY:
		return op_fail(err, OP_ENOENT, "cannot read the approval key %s: %s", pubkey_path,
			       strerror(errno));
	case OP_SIG_NOT_PEM:
		return op_fail(err, OP_EINVAL, "%s is not a PEM public key", pubkey_path);
	case OP_SIG_NOT_BASE64:
		return op_fail(err, OP_EINVAL, "the signature is not base64");
	case OP_SIG_BAD:
		break;
	}
	return op_fail(err, OP_EPERM, "the approval signature does not verify");
}

op_rc id_load_agent(const char *state_dir, cJSON **out, struct op_error *err)
{
	char path[4096];
	struct op_buf text = OP_BUF_INIT;
	op_rc rc;

	id_path(state_dir, ID_AGENT, path, sizeof(path));
	rc = op_read_file(path, 1024 * 1024, &text, err);
	if (rc == OP_ENOENT)
		rc = op_fail(err, OP_ENOENT,
			     "this agent is not enrolled (%s is missing): run `outpost-agent install`",
			     path);
	if (rc == OP_OK) {
		*out = cJSON_ParseWithLength(text.data, text.len);
		if (*out == NULL || id_agent_id(*out) == NULL) {
			cJSON_Delete(*out);
			*out = NULL;
			rc = op_fail(err, OP_EINVAL, "%s is damaged: reinstall the agent", path);
		}
	}
	op_buf_release(&text);
	return rc;
}

const char *id_agent_id(const cJSON *agent)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(agent, "agent_id");

	return cJSON_IsString(v) ? v->valuestring : NULL;
}
