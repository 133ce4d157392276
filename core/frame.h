/* SPDX-License-Identifier: Apache-2.0 */
/* Framed messages between the agent (parent) and an outpost-worker over a socketpair. */
#ifndef AG_FRAME_H
#define AG_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/*
 * A frame is a 4-byte little-endian length N, then N bytes: one type byte and the payload.
 * Payloads are JSON text unless noted. docs/plugin-abi.md ("The worker protocol") lists them.
 */
enum fr_type {
	/* parent → worker */
	FR_INIT = 1,	   /* {"plugin": path, "config": {...}, "memory_limit": bytes} */
	FR_TASK = 2,	   /* {"id","type","params":{...},"workspace","output_limit","log_level"} */
	/* 3 was FR_CANCEL: cancel is SIGTERM now */
	FR_SECRET = 4,	   /* 1 byte found (0/1), then the value's bytes */
	FR_SCAN = 5,	   /* {"files": [path...], "config": {name: {...}}} */
	FR_CALL_DONE = 6,  /* a step's outcome (ABI 1.1 call) */
	FR_FORKSRV = 7,	   /* {"plugin": path, "unset_bind_now": bool}: become the plugin's fork
			    * server (LD_BIND_NOW is the agent's, not the plugin's, when
			    * unset_bind_now is true). Then only fork
			    * requests follow: one byte each, carrying a socket and a pipe */
	/* worker → parent */
	FR_READY = 10,	   /* empty: the plugin is loaded and initialised */
	FR_LOAD_ERROR = 11, /* {"stage": "load|entry|negotiate|descriptor|init", "message": "..."} */
	FR_LOG = 12,	   /* 1 byte level, then text */
	FR_OUTPUT = 13,	   /* 1 byte stream, then bytes */
	FR_PROGRESS = 14,  /* {"fraction": f, "message": "..."} */
	FR_RESULT = 15,	   /* the result JSON */
	FR_ERROR = 16,	   /* the error message, text */
	FR_SECRET_REQ = 17, /* {"name": "...", "host": "..."} */
	FR_DONE = 18,	   /* {"rc": n, "cut": bytes_dropped} */
	FR_SCAN_BEGIN = 19, /* the path about to be loaded */
	FR_SCAN_RESULT = 20, /* {"path", "ok", "descriptor" | "stage"+"message"} */
	FR_CALL = 21,	     /* {"type", "params": {...}, "timeout": s}: run a step */
	FR_RECORD = 22,	     /* a progress record, a JSON object (ABI 1.1 record) */
	FR_FORKED = 23,	     /* fork server: {"pid": n} or {"error": "..."}, per request, in order */
	FR_REAPED = 24	     /* fork server: {"pid", "status": wait status, "maxrss": KiB} */
};

/* The worker's own exit codes, chosen apart from what plugins commonly exit() with. */
#define WK_EXIT_LOAD_FAILED 123 /* the plugin did not load or initialise (FR_LOAD_ERROR says why) */
#define WK_EXIT_PROTOCOL 124	/* a frame could not be read or parsed: broken channel, no memory */

/* Frames larger than this are a protocol error (a result that large must be an artifact). */
#define FR_MAX (16u * 1024 * 1024)

/* Appends a frame to OUT. Returns 0 or -1 (OOM or too large). */
int fr_encode(struct op_buf *out, uint8_t type, const void *payload, size_t len);

/* Writes one frame to blocking FD. Returns 0 or -1 (errno set). */
int fr_write(int fd, uint8_t type, const void *payload, size_t len);

/* Reads one frame from blocking FD into OUT (replacing its contents; type in *type).
 * Returns 1, 0 on clean EOF, -1 on error or a malformed frame. */
int fr_read(int fd, uint8_t *type, struct op_buf *out);

/* A fork request (FR_FORKSRV): one byte carrying the two descriptors FDS over SOCK with
 * SCM_RIGHTS. Sending does not block: returns 0, or -1 (errno set; EAGAIN when full). */
int fr_send_fds(int sock, const int fds[2]);
/* Receives one: returns 1 with FDS set (close-on-exec), 0 at the end of the channel or when it
 * broke, -1 for a byte that did not carry exactly two descriptors (any it carried are closed). */
int fr_recv_fds(int sock, int fds[2]);

/* Incremental parsing for non-blocking readers: if IN holds a whole frame, sets *type,
 * *payload (pointing into IN) and *len, and returns the frame's total size; returns 0 when more
 * bytes are needed and -1 on a malformed frame. The caller consumes the returned size. */
long fr_parse(const struct op_buf *in, uint8_t *type, const char **payload, size_t *len);

#endif
