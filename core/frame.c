/* SPDX-License-Identifier: Apache-2.0 */
/* Frame encoding and blocking/non-blocking decoding. */
#include "frame.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

union fds_ctl {
	struct cmsghdr align;
	char buf[CMSG_SPACE(2 * sizeof(int))];
};

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int fr_encode(struct op_buf *out, uint8_t type, const void *payload, size_t len)
{
	unsigned char head[5];

	if (len + 1 > FR_MAX)
		return -1;
	put_le32(head, (uint32_t)(len + 1));
	head[4] = type;
	if (op_buf_append(out, head, sizeof(head)) < 0)
		return -1;
	return op_buf_append(out, payload, len);
}

int fr_write(int fd, uint8_t type, const void *payload, size_t len)
{
	unsigned char head[5];
	struct iovec iov[2];
	size_t total, done = 0;

	if (len + 1 > FR_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	put_le32(head, (uint32_t)(len + 1));
	head[4] = type;
	total = sizeof(head) + len;
	while (done < total) {
		ssize_t w;
		int n = 0;

		if (done < sizeof(head)) {
			iov[n].iov_base = head + done;
			iov[n++].iov_len = sizeof(head) - done;
			if (len) {
				iov[n].iov_base = (void *)payload;
				iov[n++].iov_len = len;
			}
		} else {
			iov[n].iov_base = (char *)payload + (done - sizeof(head));
			iov[n++].iov_len = total - done;
		}
		w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t r = read(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		p += r;
		len -= (size_t)r;
	}
	return 1;
}

int fr_read(int fd, uint8_t *type, struct op_buf *out)
{
	unsigned char head[5];
	uint32_t n;
	int rc;

	rc = read_full(fd, head, sizeof(head));
	if (rc <= 0)
		return rc;
	n = get_le32(head);
	if (n == 0 || n > FR_MAX) {
		errno = EPROTO;
		return -1;
	}
	*type = head[4];
	op_buf_reset(out);
	if (op_buf_reserve(out, n - 1) < 0)
		return -1;
	rc = read_full(fd, out->data, n - 1);
	if (rc <= 0) {
		if (rc == 0)
			errno = EPROTO;
		return -1;
	}
	out->len = n - 1;
	out->data[out->len] = '\0';
	return 1;
}

long fr_parse(const struct op_buf *in, uint8_t *type, const char **payload, size_t *len)
{
	uint32_t n;

	if (in->len < 5)
		return 0;
	n = get_le32((const unsigned char *)in->data);
	if (n == 0 || n > FR_MAX)
		return -1;
	if (in->len < 4 + (size_t)n)
		return 0;
	*type = (uint8_t)in->data[4];
	*payload = in->data + 5;
	*len = n - 1;
	return 4 + (long)n;
}

/* A message of one byte (*BYTE) with room for two descriptors in CTL. */
static void fds_msg(struct msghdr *msg, struct iovec *iov, char *byte, union fds_ctl *ctl)
{
	memset(msg, 0, sizeof(*msg));
	memset(ctl, 0, sizeof(*ctl));
	iov->iov_base = byte;
	iov->iov_len = 1;
	msg->msg_iov = iov;
	msg->msg_iovlen = 1;
	msg->msg_control = ctl->buf;
	msg->msg_controllen = sizeof(ctl->buf);
}

int fr_send_fds(int sock, const int fds[2])
{
	union fds_ctl ctl;
	struct msghdr msg;
	struct cmsghdr *c;
	struct iovec iov;
	char byte = 'F';
	ssize_t n;

	fds_msg(&msg, &iov, &byte, &ctl);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, 2 * sizeof(int));
	do {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

int fr_recv_fds(int sock, int fds[2])
{
	union fds_ctl ctl;
	struct msghdr msg;
	struct cmsghdr *c;
	struct iovec iov;
	char byte;
	ssize_t n;

	fds_msg(&msg, &iov, &byte, &ctl);
	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 0;
	c = CMSG_FIRSTHDR(&msg);
	if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
		return -1;
	if (c->cmsg_len != CMSG_LEN(2 * sizeof(int)) || (msg.msg_flags & MSG_CTRUNC)) {
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < k && i < 2; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
		return -1;
	}
	memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
	return 1;
}
