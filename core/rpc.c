/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's asynchronous control-plane calls on one curl multi handle. */
#include "rpc.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "heap.h"
#include "jsonprint.h"
#include "log.h"

struct rpc_call {
	struct rpc_call *next;
	struct rpc *rpc;
	CURL *h;
	struct curl_slist *headers;
	struct op_buf resp;
	char *body;
	char method[8];
	char url[512];
	char errbuf[CURL_ERROR_SIZE];
	rpc_done_fn done;
	void *ud;
	bool aborted;
};

struct rpc {
	CURLM *multi;
	struct tp_config tp;
	bool fresh; /* the next call of each kind opens a new connection */
	struct rpc_call *calls;
	long connects;
};

op_rc rpc_new(const struct tp_config *tp, struct rpc **out, struct op_error *err)
{
	struct rpc *rpc = calloc(1, sizeof(*rpc));

	if (rpc == NULL)
		return op_fail(err, OP_ENOMEM, "out of memory");
	rpc->multi = curl_multi_init();
	if (rpc->multi == NULL || tp_config_copy(&rpc->tp, tp) != OP_OK) {
		if (rpc->multi)
			curl_multi_cleanup(rpc->multi);
		free(rpc);
		return op_fail(err, OP_ENOMEM, "out of memory");
	}
	/* Two connections at most, both cached: the long poll's and everything else's. */
	curl_multi_setopt(rpc->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 2L);
	curl_multi_setopt(rpc->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 2L);
	curl_multi_setopt(rpc->multi, CURLMOPT_MAXCONNECTS, 2L);
	*out = rpc;
	return OP_OK;
}

static void call_free(struct rpc_call *c)
{
	if (c->h) {
		curl_multi_remove_handle(c->rpc->multi, c->h);
		curl_easy_cleanup(c->h);
	}
	curl_slist_free_all(c->headers);
	op_buf_release(&c->resp);
	free(c->body);
	free(c);
}

void rpc_free(struct rpc *rpc)
{
	if (rpc == NULL)
		return;
	for (struct rpc_call *c = rpc->calls, *next; c; c = next) {
		next = c->next;
		call_free(c);
	}
	curl_multi_cleanup(rpc->multi);
	tp_config_release(&rpc->tp);
	free(rpc);
}

op_rc rpc_set_config(struct rpc *rpc, const struct tp_config *tp, bool fresh)
{
	struct tp_config copy;

	if (tp_config_copy(&copy, tp) != OP_OK)
		return OP_ENOMEM;
	tp_config_release(&rpc->tp);
	rpc->tp = copy;
	if (fresh)
		rpc->fresh = true;
	return OP_OK;
}

struct rpc_call *rpc_start(struct rpc *rpc, const char *method, const char *path,
			   const cJSON *body, double extra_timeout, rpc_done_fn done, void *ud)
{
	struct rpc_call *c = calloc(1, sizeof(*c));
	struct op_error err = {0};
	double timeout = rpc->tp.request_timeout + extra_timeout;

	if (c == NULL)
		return NULL;
	c->rpc = rpc;
	c->done = done;
	c->ud = ud;
	op_strlcpy(c->method, method, sizeof(c->method));
	snprintf(c->url, sizeof(c->url), "%s%s", rpc->tp.base_url, path);
	c->h = curl_easy_init();
	if (c->h == NULL || (body && (c->body = op_json_print(body, false)) == NULL))
		goto fail;
	if (tp_setup(&rpc->tp, c->h, method, path, c->body, &c->headers, &c->resp, &err) != OP_OK)
		goto fail;
	curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
	if (timeout > 0)
		curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
	if (rpc->fresh) {
		/* After a certificate rotation: new connections with the new identity. */
		curl_easy_setopt(c->h, CURLOPT_FRESH_CONNECT, 1L);
		if (rpc->calls == NULL)
			rpc->fresh = false;
	}
	if (curl_multi_add_handle(rpc->multi, c->h) != CURLM_OK)
		goto fail;
	c->next = rpc->calls;
	rpc->calls = c;
	return c;
fail:
	if (c->h) {
		curl_easy_cleanup(c->h);
		c->h = NULL;
	}
	curl_slist_free_all(c->headers);
	free(c->body);
	free(c);
	return NULL;
}

void rpc_abort(struct rpc_call *call)
{
	call->aborted = true;
}

static void unlink_call(struct rpc *rpc, struct rpc_call *c)
{
	for (struct rpc_call **pp = &rpc->calls; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			return;
		}
}

static void finish(struct rpc *rpc, struct rpc_call *c, CURLcode cc)
{
	struct rpc_result r;
	struct op_error err = {0};
	cJSON *json = NULL;
	long connects = 0;

	memset(&r, 0, sizeof(r));
	curl_easy_getinfo(c->h, CURLINFO_TOTAL_TIME, &r.latency);
	curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &connects);
	rpc->connects += connects;
	if (connects > 0)
		op_log_debug("rpc", "new connection to the control plane for %s %s", c->method,
			     c->url);
	r.aborted = c->aborted;
	if (c->aborted) {
		r.message = "aborted";
	} else if (cc != CURLE_OK) {
		r.fail = tp_describe(cc, c->h, c->method, c->url, c->errbuf, &err);
		r.message = err.msg;
	} else {
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &r.status);
		if (c->resp.len > 0) {
			op_heap_prepare_json(c->resp.len); /* a lease with large params */
			json = cJSON_ParseWithLength(c->resp.data, c->resp.len);
		}
		r.json = json;
		if (json) {
			const cJSON *reason = cJSON_GetObjectItemCaseSensitive(json, "reason");
			const cJSON *msg = cJSON_GetObjectItemCaseSensitive(json, "message");

			r.reason = cJSON_IsString(reason) ? reason->valuestring : NULL;
			r.message = cJSON_IsString(msg) ? msg->valuestring : NULL;
		}
	}
	unlink_call(rpc, c);
	if (c->done)
		c->done(c->ud, &r);
	cJSON_Delete(json);
	call_free(c);
}

op_rc rpc_poll(struct rpc *rpc, struct curl_waitfd *extra, unsigned n, int timeout_ms,
	       struct op_error *err)
{
	CURLMsg *m;
	int running, left;
	CURLMcode mc;

	mc = curl_multi_poll(rpc->multi, extra, n, timeout_ms, NULL);
	if (mc != CURLM_OK)
		return op_fail(err, OP_EIO, "curl_multi_poll: %s", curl_multi_strerror(mc));
	curl_multi_perform(rpc->multi, &running);
	while ((m = curl_multi_info_read(rpc->multi, &left)) != NULL) {
		struct rpc_call *c = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		if (c)
			finish(rpc, c, m->data.result);
	}
	/* Aborted calls finish here, whatever their transfer's state. */
	for (struct rpc_call *c = rpc->calls, *next; c; c = next) {
		next = c->next;
		if (c->aborted)
			finish(rpc, c, CURLE_ABORTED_BY_CALLBACK);
	}
	return OP_OK;
}

int rpc_active(const struct rpc *rpc)
{
	int n = 0;

	for (const struct rpc_call *c = rpc->calls; c; c = c->next)
		n++;
	return n;
}

long rpc_connects(const struct rpc *rpc)
{
	return rpc->connects;
}
