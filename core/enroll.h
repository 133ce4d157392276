/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's identity with the control plane: enrollment, certificate rotation, deregistration. */
#ifndef AG_ENROLL_H
#define AG_ENROLL_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "config.h"
#include "discovery.h"
#include "op.h"
#include "transport.h"

/* Host and control plane clocks further apart than this fail enrollment (decisions.md 3). */
#define AG_MAX_CLOCK_SKEW 300.0

/*
 * How a call to the control plane ended, beyond its op_rc: what a CLI needs to choose its exit
 * code and what the run loop needs to decide between retrying and stopping.
 *   net     the transport failure (TP_OK when an HTTP answer arrived)
 *   status  the HTTP status, 0 when none
 *   reason  the error body's reason ("token_used", "agent_revoked", ...), "" when none
 *   clock   the host's clock is too far from the control plane's (skew holds the figure)
 *   hint    what to do about it, one or more sentences ("" when nothing useful to say)
 */
struct ag_outcome {
	enum tp_fail net;
	long status;
	char reason[64];
	bool clock;
	double skew; /* host minus control plane, seconds; valid when measured */
	bool skew_measured;
	char hint[1024];
};

/* Prints the loud warning that TLS verification is off, when CFG says so. Every command that
 * talks to the control plane calls it first (install, check, rotate-cert, uninstall, run). */
void ag_warn_insecure(const struct ag_config *cfg);

/* The clock check: GET /health with certificate time checks off (decisions.md 3). OP_OK when
 * the clocks are within AG_MAX_CLOCK_SKEW; OP_ETLS with O->clock set and the message users
 * search for when not ("certificate validation error: certificate not yet valid" when this host
 * is behind, "clock skew too large: host is N s ahead of the control plane" when ahead), the
 * measured skew and the NTP fix in O->hint. Transport failures return their op_rc, O->net. */
op_rc ag_clock_check(const struct tp_config *tc, struct ag_outcome *o, struct op_error *err);

/* What to enroll with. The token is a secret: it is sent once and never logged or stored. */
struct ag_enroll_req {
	const struct ag_config *cfg; /* control plane, TLS, proxy, timeouts, state dir, pool... */
	const char *token;
	const char *hostname;	     /* NULL: gethostname() */
	const cJSON *plugins;	     /* [{"name", "version", "types": [...]}], may be NULL */
	const cJSON *extra;	     /* members added to agent.json (the installer's record) */
};

struct ag_enrollment {
	char agent_id[64];
	char hostname[256];
	double cert_not_after;
	int heartbeat_interval, lease_ttl, long_poll;
};

/* Enrolls this host: checks the clocks, makes the key (EC P-256, 0600) in the state dir, sends
 * the CSR with the token, and stores agent.crt, ca.crt, approval.pem and agent.json. On any
 * failure it removes every identity file it wrote, so a retry with a new token starts clean.
 * Error messages are the ones users search for (decisions.md 2); O says why. */
op_rc ag_enroll(const struct ag_enroll_req *req, struct ag_enrollment *out, struct ag_outcome *o,
		struct op_error *err);

/* The identity files ag_enroll writes, by id_file, for cleanup by the installer. */
void ag_identity_remove(const char *state_dir);

/* What a rotation did. */
struct ag_rotation {
	char agent_id[64];
	char old_serial[80], new_serial[80];
	double not_after;
	bool recovered; /* an interrupted earlier rotation was completed first */
};

/*
 * Renews the agent's certificate: a fresh key and CSR, POST /agent/rotate-cert authenticated by
 * the current certificate (also when it expired within the control plane's grace), the answer
 * written to agent.key.new / agent.crt.new, the new pair confirmed with GET /agent/self, then
 * renamed over agent.key / agent.crt. The old pair stays in place until the new one is
 * confirmed. Safe to call from the run loop while it serves: it holds STATE/rotate.lock, keeps
 * the files' owner, and a connection made after it returns uses the new pair.
 *
 * Returns OP_OK; OP_EPERM when the certificate expired longer ago than the grace (terminal:
 * re-enroll with a new token; exit code 4); OP_ESTATE when the agent was revoked or deleted
 * (terminal: exit code 3); OP_ENET / OP_ETIMEOUT / OP_ETLS when the control plane could not be
 * reached or trusted (retry later); OP_EREMOTE for other refusals; OP_EIO / OP_ENOSPC for local
 * failures. Without the _ex form, the details go to ERR only.
 */
op_rc ag_rotate_cert(const struct ag_config *cfg, struct op_error *err);
op_rc ag_rotate_cert_ex(const struct ag_config *cfg, struct ag_rotation *out, struct ag_outcome *o,
			struct op_error *err);

/*
 * Completes or discards a rotation a crash or a lost answer interrupted (agent.key.new and
 * agent.crt.new left behind). A matching new pair is confirmed with GET /agent/self and
 * promoted; one the control plane refuses, or half a pair, is removed. When the control plane
 * cannot be reached the pending pair stays and the old one is used meanwhile. *RECOVERED (may be
 * NULL) tells whether a new pair was promoted. The run loop calls it at start and when a call
 * answers cert_superseded (the new certificate was used, then the answer was lost).
 */
op_rc ag_identity_recover(const struct ag_config *cfg, bool *recovered, struct op_error *err);

/* When the run loop should renew a certificate valid from NOT_BEFORE to NOT_AFTER: at half its
 * lifetime, jittered by ±10% of the lifetime with U, a uniform random number in [0, 1). */
double ag_cert_renew_at(double not_before, double not_after, double u);

/* POST /agent/deregister {"reason": REASON}. An agent already revoked or deleted counts as
 * deregistered (O->reason says which). */
op_rc ag_deregister(const struct ag_config *cfg, const char *reason, struct ag_outcome *o,
		    struct op_error *err);

/* GET /agent/self with the agent's certificate: its own record, without touching last_seen.
 * A refusal is OP_EREMOTE (OP_ESTATE for revoked or deleted) with O->reason and O->hint. */
op_rc ag_self(const struct ag_config *cfg, cJSON **record, struct ag_outcome *o,
	      struct op_error *err);

/* Scans the plugins directory of CFG the way the run loop does (no cache). */
op_rc ag_plugins_scan(const struct ag_config *cfg, struct dc_result *out, struct op_error *err);
/* The plugins of R that loaded, as enrollment reports them: [{"name", "version", "types"}]. */
cJSON *ag_plugins_report(const struct dc_result *r);

/* The hint for an agent the control plane refused with REASON (agent_revoked, cert_expired...),
 * naming CONFIG in the commands it suggests. */
void ag_reason_hint(const char *reason, const char *config, char *out, size_t size);

#endif
