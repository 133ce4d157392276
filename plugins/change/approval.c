/* SPDX-License-Identifier: Apache-2.0 */
/* Approval signatures (ECDSA P-256 or Ed25519 over canonical JSON), digests and times. */
#include "change.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sigverify.h"

int ch_verify_signature(const char *key_path, const void *data, size_t len, const char *sig_b64,
			char *err, size_t errlen)
{
	switch (op_sig_verify(key_path, data, len, sig_b64)) {
	case OP_SIG_OK:
		return 0;
	case OP_SIG_NO_KEY:
		snprintf(err, errlen, "cannot read the approval key %s: %s", key_path,
			 strerror(errno));
		return -1;
	case OP_SIG_NOT_PEM:
		snprintf(err, errlen, "the approval key %s is not a PEM public key", key_path);
		return -1;
	case OP_SIG_NOT_BASE64:
		snprintf(err, errlen, "the approval signature is not base64");
		return -1;
	case OP_SIG_BAD:
		break;
	}
	snprintf(err, errlen,
		 "the approval signature does not verify with %s: the change request was "
		 "altered after approval, or approved by another control plane",
		 key_path);
	return -1;
}

void ch_sha256_tag(const void *data, size_t len, char out[72])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	memcpy(out, "sha256:", 8);
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		out[7] = '\0';
		return;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

int ch_parse_time(const char *s, double *epoch)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
	double frac = 0;
	const char *p;
	time_t t;

	if (s == NULL ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
		return -1;
	p = s + n;
	if (*p == '.') {
		double scale = 0.1;

		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2 &&
		   strlen(p) == 6) {
		if (*p == '-') {
			oh = -oh;
			om = -om;
		}
		p += 6;
	} else {
		return -1;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*epoch = (double)t + frac - (oh * 3600 + om * 60);
	return 0;
}

void ch_format_time(double epoch, char *out, size_t size)
{
	time_t secs = (time_t)epoch;
	int ms = (int)((epoch - (double)secs) * 1000);
	struct tm tm;

	if (ms < 0)
		ms = 0;
	if (ms > 999)
		ms = 999;
	gmtime_r(&secs, &tm);
	snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

double ch_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double ch_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}
