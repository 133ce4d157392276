/* SPDX-License-Identifier: Apache-2.0 */
/* The server's identity: its CA, TLS certificate, client certificates and the approval key. */
#include "pki.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "fsutil.h"
#include "util.h"

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

static EVP_PKEY *new_p256(void)
{
	return EVP_EC_gen("P-256");
}

static char *bio_to_str(BIO *bio)
{
	char *data = NULL, *out;
	long n = BIO_get_mem_data(bio, &data);

	if (n < 0)
		return NULL;
	out = malloc((size_t)n + 1);
	if (out == NULL)
		return NULL;
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	return out;
}

static char *cert_pem(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

	if (bio && PEM_write_bio_X509(bio, cert) == 1)
		s = bio_to_str(bio);
	BIO_free(bio);
	return s;
}

static char *key_pem(EVP_PKEY *key, int private)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *s = NULL;
	int ok;

	if (bio == NULL)
		return NULL;
	ok = private ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_bio_PUBKEY(bio, key);
	if (ok == 1)
		s = bio_to_str(bio);
	BIO_free(bio);
	return s;
}

static op_rc write_text(const char *dir, const char *name, const char *text, mode_t mode,
			struct op_error *err)
{
	char path[4200];

	if (text == NULL)
		return op_fail(err, OP_ENOMEM, "cannot encode %s", name);
	path_in(path, sizeof(path), dir, name);
	return op_write_file_atomic(path, text, strlen(text), mode, err);
}

static int rand_serial(X509 *cert)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	b[0] &= 0x7f; /* positive */
	b[0] |= 0x40; /* and always 16 bytes long */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn == NULL)
		return -1;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* A new certificate for KEY, named CN, valid from BACKDATE seconds ago to SECONDS from now,
 * not yet signed. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, int64_t seconds, long backdate)
{
	X509 *cert = X509_new();
	X509_NAME *name;

	if (cert == NULL)
		return NULL;
	if (X509_set_version(cert, 2) != 1 || rand_serial(cert) < 0 ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -backdate) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), (int)(seconds / 86400),
			     (long)(seconds % 86400), NULL) == NULL ||
	    X509_set_pubkey(cert, key) != 1)
		goto fail;
	name = X509_get_subject_name(cert);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"Outpost",
				       -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
				       -1, 0) != 1)
		goto fail;
	if (X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) != 1)
		goto fail;
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

op_rc pki_create(const char *dir, const char *const *hostnames, size_t n, int server_days,
		 struct op_error *err)
{
	EVP_PKEY *ca_key = NULL, *srv_key = NULL, *appr_key = NULL;
	X509 *ca = NULL, *srv = NULL;
	struct op_buf san = OP_BUF_INIT;
	char cn[64], *text = NULL;
	op_rc rc = OP_OK;

	ca_key = new_p256();
	srv_key = new_p256();
	appr_key = new_p256();
	if (ca_key == NULL || srv_key == NULL || appr_key == NULL) {
		rc = op_fail(err, OP_ETLS, "cannot generate EC P-256 keys");
		goto out;
	}
	/* The CA: a unique name per installation, ten years. */
	if (srv_random_id("Outpost CA ", 8, cn, sizeof(cn)) < 0)
		goto fail;
	ca = new_cert(ca_key, cn, NULL, 3650LL * 86400, PKI_BACKDATE_S);
	if (ca == NULL || add_ext(ca, ca, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    add_ext(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(ca, ca, NID_subject_key_identifier, "hash") < 0 ||
	    X509_sign(ca, ca_key, EVP_sha256()) == 0)
		goto fail;

	/* The server certificate: every --hostname, localhost and the loopback addresses. */
	op_buf_puts(&san, "DNS:localhost,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1");
	for (size_t i = 0; i < n; i++) {
		unsigned char addr[16];
		int ip = inet_pton(AF_INET, hostnames[i], addr) == 1 ||
			 inet_pton(AF_INET6, hostnames[i], addr) == 1;

		if (strcmp(hostnames[i], "localhost") == 0 || strcmp(hostnames[i], "127.0.0.1") == 0)
			continue;
		op_buf_printf(&san, ",%s:%s", ip ? "IP" : "DNS", hostnames[i]);
	}
	if (san.data == NULL)
		goto fail;
	srv = new_cert(srv_key, n > 0 ? hostnames[0] : "localhost", ca, (int64_t)server_days * 86400,
		       PKI_BACKDATE_S);
	if (srv == NULL || add_ext(srv, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(srv, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(srv, ca, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(srv, ca, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(srv, ca, NID_authority_key_identifier, "keyid:always") < 0)
		goto fail;
	if (add_ext(srv, ca, NID_subject_alt_name, san.data) < 0) {
		rc = op_fail(err, OP_EINVAL,
			     "cannot put the host names into the server certificate: %s "
			     "(each --hostname must be a DNS name or an IP address)",
			     san.data);
		goto out;
	}
	if (X509_sign(srv, ca_key, EVP_sha256()) == 0)
		goto fail;

	if ((rc = write_text(dir, PKI_CA_KEY, text = key_pem(ca_key, 1), 0600, err)) != OP_OK)
		goto out;
	free(text);
	if ((rc = write_text(dir, PKI_CA_CERT, text = cert_pem(ca), 0644, err)) != OP_OK)
		goto out;
	free(text);
	if ((rc = write_text(dir, PKI_SERVER_KEY, text = key_pem(srv_key, 1), 0600, err)) != OP_OK)
		goto out;
	free(text);
	if ((rc = write_text(dir, PKI_SERVER_CERT, text = cert_pem(srv), 0644, err)) != OP_OK)
		goto out;
	free(text);
	if ((rc = write_text(dir, PKI_APPROVAL_KEY, text = key_pem(appr_key, 1), 0600, err)) !=
	    OP_OK)
		goto out;
	free(text);
	rc = write_text(dir, PKI_APPROVAL_PUB, text = key_pem(appr_key, 0), 0644, err);
	goto out;
fail:
	rc = op_fail(err, OP_ETLS, "cannot create the certificates: %s",
		     ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(ERR_peek_last_error())
								    : "OpenSSL error");
	ERR_clear_error();
out:
	free(text);
	op_buf_release(&san);
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	EVP_PKEY_free(appr_key);
	return rc;
}

static op_rc read_pem(const char *dir, const char *name, struct op_buf *out, struct op_error *err)
{
	char path[4200];

	path_in(path, sizeof(path), dir, name);
	return op_read_file(path, 1 << 20, out, err);
}

static int64_t asn1_ms(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm) * 1000;
}

op_rc pki_load(struct pki *p, const char *dir, struct op_error *err)
{
	struct op_buf ca = OP_BUF_INIT, cakey = OP_BUF_INIT, ak = OP_BUF_INIT;
	BIO *bio = NULL;
	op_rc rc;

	memset(p, 0, sizeof(*p));
	op_strlcpy(p->dir, dir, sizeof(p->dir));
	if ((rc = read_pem(dir, PKI_CA_CERT, &ca, err)) != OP_OK ||
	    (rc = read_pem(dir, PKI_CA_KEY, &cakey, err)) != OP_OK ||
	    (rc = read_pem(dir, PKI_APPROVAL_KEY, &ak, err)) != OP_OK)
		goto out;
	bio = BIO_new_mem_buf(ca.data, (int)ca.len);
	p->ca = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	bio = BIO_new_mem_buf(cakey.data, (int)cakey.len);
	p->ca_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	bio = BIO_new_mem_buf(ak.data, (int)ak.len);
	p->approval_key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (p->ca == NULL || p->ca_key == NULL || p->approval_key == NULL) {
		rc = op_fail(err, OP_ETLS, "cannot read the CA or approval key in %s", dir);
		goto out;
	}
	if (X509_check_private_key(p->ca, p->ca_key) != 1) {
		rc = op_fail(err, OP_ETLS, "%s/%s does not match %s/%s", dir, PKI_CA_KEY, dir,
			     PKI_CA_CERT);
		goto out;
	}
	p->ca_pem = cert_pem(p->ca);
	p->approval_pub_pem = key_pem(p->approval_key, 0);
	p->store = X509_STORE_new();
	if (p->ca_pem == NULL || p->approval_pub_pem == NULL || p->store == NULL ||
	    X509_STORE_add_cert(p->store, p->ca) != 1) {
		rc = op_fail(err, OP_ENOMEM, "out of memory");
		goto out;
	}
	p->ca_not_after_ms = asn1_ms(X509_get0_notAfter(p->ca));
out:
	op_buf_release(&ca);
	op_buf_release(&cakey);
	op_buf_release(&ak);
	if (rc != OP_OK)
		pki_release(p);
	return rc;
}

void pki_release(struct pki *p)
{
	X509_free(p->ca);
	EVP_PKEY_free(p->ca_key);
	EVP_PKEY_free(p->approval_key);
	X509_STORE_free(p->store);
	free(p->ca_pem);
	free(p->approval_pub_pem);
	p->ca = NULL;
	p->ca_key = p->approval_key = NULL;
	p->store = NULL;
	p->ca_pem = p->approval_pub_pem = NULL;
}

/* The handshake accepts any client certificate: each route verifies it (decisions.md 5). */
static int accept_any_cert(X509_STORE_CTX *ctx, void *arg)
{
	return 1;
}

SSL_CTX *pki_server_ctx(struct pki *p, struct op_error *err)
{
	char cert[4200], key[4200], ca[4200];
	static const unsigned char sid[] = "outpost-server";
	STACK_OF(X509_NAME) *names;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		op_fail(err, OP_ETLS, "cannot create the TLS context");
		return NULL;
	}
	path_in(cert, sizeof(cert), p->dir, PKI_SERVER_CERT);
	path_in(key, sizeof(key), p->dir, PKI_SERVER_KEY);
	path_in(ca, sizeof(ca), p->dir, PKI_CA_CERT);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		op_fail(err, OP_ETLS, "cannot load %s and %s: %s", cert, key,
			ERR_reason_error_string(ERR_peek_last_error()));
		SSL_CTX_free(ctx);
		return NULL;
	}
	names = SSL_load_client_CA_file(ca);
	if (names)
		SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_any_cert, NULL);
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

int pki_csr_check(const char *pem, X509_REQ **out, char *key_hash, char *msg, size_t msglen)
{
	X509_REQ *req = NULL;
	EVP_PKEY *key;
	BIO *bio;
	unsigned char *der = NULL;
	int derlen, type, bits;

	if (pem == NULL || strstr(pem, "-----BEGIN CERTIFICATE REQUEST-----") == NULL) {
		snprintf(msg, msglen, "csr is not PEM: expected a \"-----BEGIN CERTIFICATE REQUEST-----\" block");
		return -1;
	}
	bio = BIO_new_mem_buf(pem, -1);
	req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	ERR_clear_error();
	if (req == NULL) {
		snprintf(msg, msglen, "csr is not a valid PEM certificate request (cannot decode it)");
		return -1;
	}
	key = X509_REQ_get0_pubkey(req);
	if (key == NULL) {
		snprintf(msg, msglen, "csr has no usable public key");
		goto fail;
	}
	type = EVP_PKEY_get_base_id(key);
	bits = EVP_PKEY_get_bits(key);
	if (type == EVP_PKEY_EC) {
		char group[64] = "";
		size_t glen = 0;

		EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &glen);
		if (strcmp(group, "prime256v1") != 0 && strcmp(group, "secp384r1") != 0) {
			snprintf(msg, msglen, "csr key is EC on curve %s: use P-256 (or P-384)",
				 group[0] ? group : "unknown");
			goto fail;
		}
	} else if (type == EVP_PKEY_RSA) {
		if (bits < 2048) {
			snprintf(msg, msglen, "csr key is RSA with %d bits: at least 2048 are needed (EC P-256 is preferred)",
				 bits);
			goto fail;
		}
	} else if (type != EVP_PKEY_ED25519) {
		snprintf(msg, msglen, "csr key type %s is not accepted: use EC P-256",
			 OBJ_nid2sn(type));
		goto fail;
	}
	if (X509_REQ_verify(req, key) != 1) {
		ERR_clear_error();
		snprintf(msg, msglen, "csr signature does not verify: the request was altered or not signed by its key");
		goto fail;
	}
	derlen = i2d_PUBKEY(key, &der);
	if (derlen <= 0) {
		snprintf(msg, msglen, "csr public key cannot be encoded");
		goto fail;
	}
	srv_sha256_hex(der, (size_t)derlen, key_hash);
	OPENSSL_free(der);
	*out = req;
	return 0;
fail:
	X509_REQ_free(req);
	return -1;
}

static void serial_hex(X509 *cert, char *out)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	snprintf(out, 65, "%s", hex ? hex : "");
	OPENSSL_free(hex);
	BN_free(bn);
}

int pki_issue_client(struct pki *p, X509_REQ *req, const char *agent_id, int64_t validity_s,
		     char **pem, char *serial, int64_t *not_before_ms, int64_t *not_after_ms)
{
	/* Not backdated: only this server's clock ever judges a client certificate. */
	X509 *cert = new_cert(X509_REQ_get0_pubkey(req), agent_id, p->ca, validity_s, 0);
	int rc = -1;

	if (cert == NULL || add_ext(cert, p->ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(cert, p->ca, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(cert, p->ca, NID_ext_key_usage, "clientAuth") < 0 ||
	    add_ext(cert, p->ca, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(cert, p->ca, NID_authority_key_identifier, "keyid:always") < 0 ||
	    X509_sign(cert, p->ca_key, EVP_sha256()) == 0)
		goto out;
	*pem = cert_pem(cert);
	if (*pem == NULL)
		goto out;
	serial_hex(cert, serial);
	*not_before_ms = asn1_ms(X509_get0_notBefore(cert));
	*not_after_ms = asn1_ms(X509_get0_notAfter(cert));
	rc = 0;
out:
	ERR_clear_error();
	X509_free(cert);
	return rc;
}

int pki_verify_peer(struct pki *p, X509 *leaf, STACK_OF(X509) *chain, char *msg, size_t msglen)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	if (ctx == NULL || X509_STORE_CTX_init(ctx, p->store, leaf, chain) != 1) {
		snprintf(msg, msglen, "cannot check the client certificate (out of memory)");
		X509_STORE_CTX_free(ctx);
		return -1;
	}
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	ok = X509_verify_cert(ctx) == 1;
	if (!ok)
		snprintf(msg, msglen, "client certificate is not from this server's CA: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ok ? 0 : -1;
}

int pki_cert_fields(X509 *cert, char *cn, size_t cnlen, char *serial, int64_t *not_before_ms,
		    int64_t *not_after_ms)
{
	X509_NAME *name = X509_get_subject_name(cert);

	cn[0] = '\0';
	if (name == NULL || X509_NAME_get_text_by_NID(name, NID_commonName, cn, (int)cnlen) < 0)
		return -1;
	serial_hex(cert, serial);
	*not_before_ms = asn1_ms(X509_get0_notBefore(cert));
	*not_after_ms = asn1_ms(X509_get0_notAfter(cert));
	return 0;
}

int pki_sign_approval(struct pki *p, const void *data, size_t len, char **b64)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *sig = NULL;
	size_t siglen = 0;
	int rc = -1;

	*b64 = NULL;
	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, p->approval_key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, data, len) != 1)
		goto out;
	sig = malloc(siglen);
	if (sig == NULL || EVP_DigestSign(md, sig, &siglen, data, len) != 1)
		goto out;
	*b64 = malloc(4 * ((siglen + 2) / 3) + 1);
	if (*b64 == NULL)
		goto out;
	EVP_EncodeBlock((unsigned char *)*b64, sig, (int)siglen);
	rc = 0;
out:
	free(sig);
	EVP_MD_CTX_free(md);
	return rc;
}

int pki_verify_approval(const char *pub_pem, const void *data, size_t len, const char *b64)
{
	BIO *bio = BIO_new_mem_buf(pub_pem, -1);
	EVP_PKEY *key = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t blen = strlen(b64);
	unsigned char *sig = malloc(blen + 1);
	int siglen, rc = -1;

	if (key == NULL || md == NULL || sig == NULL)
		goto out;
	siglen = EVP_DecodeBlock(sig, (const unsigned char *)b64, (int)blen);
	if (siglen < 0)
		goto out;
	while (blen > 0 && b64[blen - 1] == '=') { /* DecodeBlock counts padding as zeros */
		siglen--;
		blen--;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestVerify(md, sig, (size_t)siglen, data, len) == 1)
		rc = 0;
out:
	ERR_clear_error();
	free(sig);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	BIO_free(bio);
	return rc;
}
