/*
 * Conntrack entries named by their exact UDP tuple over ctnetlink (raw nfnetlink via libmnl), many per
 * send() on one persistent socket: delete them (a stale entry would keep a flow on its old NAT binding)
 * and read their packet/byte counters (the per-stream RTP figures of `sipalg status`). Wrapped by
 * src/netfilter/conntrack.ts. Entries already gone (ENOENT) are not errors; other errors throw
 * (kind CT / NOT_ROOT).
 */
#include "common.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

/* One ctnetlink socket for the life of the process: opening and binding a socket per delete cost
 * ~1 ms inside the daemon (bench), far more than the delete itself. */
static struct mnl_socket *ct_sock;
static uint32_t ct_portid, ct_seq;

static int ct_open(void) {
  if (ct_sock) return 0;
  struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl) return errno;
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) { int e = errno; mnl_socket_close(nl); return e; }
  ct_sock = nl;
  ct_portid = mnl_socket_get_portid(nl);
  return 0;
}

/* One ctnetlink request (IPCTNL_MSG_CT_DELETE / _GET) naming a UDP entry by one of its tuples.
 * `t` is one packed tuple: [reply 0|1, src, dst, sport, dport] (IPv4, 5 words) or
 * [reply 0|1, src 4 words, dst 4 words, sport, dport] (IPv6, 11 words); addresses in host order words. */
static void ct_put_tuple_msg(char *at, uint16_t msg, uint16_t flags, const uint32_t *t, int v6, uint32_t seq) {
  const int aw = v6 ? 4 : 1;
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(at);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | msg;
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof *nfg);
  nfg->nfgen_family = v6 ? AF_INET6 : AF_INET;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  struct nlattr *tu = mnl_attr_nest_start(nlh, t[0] != 0 ? CTA_TUPLE_REPLY : CTA_TUPLE_ORIG);
  struct nlattr *ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  if (v6) {
    uint32_t a[4], b[4];
    for (int i = 0; i < 4; i++) { a[i] = htonl(t[1 + i]); b[i] = htonl(t[5 + i]); }
    mnl_attr_put(nlh, CTA_IP_V6_SRC, sizeof a, a);
    mnl_attr_put(nlh, CTA_IP_V6_DST, sizeof b, b);
  } else {
    mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, htonl(t[1]));
    mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(t[2]));
  }
  mnl_attr_nest_end(nlh, ip);
  struct nlattr *pr = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, 17);
  mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons((uint16_t)t[1 + 2 * aw]));
  mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons((uint16_t)t[2 + 2 * aw]));
  mnl_attr_nest_end(nlh, pr);
  mnl_attr_nest_end(nlh, tu);
}

/* Words per packed tuple of a family. */
#define CT_STRIDE(v6) ((v6) ? 11 : 5)

#define CT_MSG_MAX 128  /* each delete message is < 128 bytes (IPv6: ~100): a batch fits one socket buffer */

/* Sends n deletes in one send() and collects the n ACKs. Returns how many entries were deleted
 * (ENOENT = already gone, not an error), or -errno. */
static int ct_delete_batch(const uint32_t *tuples, size_t n, int v6) {
  int e = ct_open();
  if (e) return -e;
  char out[CT_MSG_MAX * 128];
  char in[MNL_SOCKET_BUFFER_SIZE];
  int deleted = 0;
  for (size_t base = 0; base < n; base += CT_MSG_MAX) {
    size_t k = n - base < CT_MSG_MAX ? n - base : CT_MSG_MAX, len = 0;
    uint32_t first = ct_seq + 1;
    for (size_t i = 0; i < k; i++) {
      const uint32_t *t = tuples + (base + i) * CT_STRIDE(v6);
      ct_put_tuple_msg(out + len, IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, t, v6, ++ct_seq);
      len += ((struct nlmsghdr *)(out + len))->nlmsg_len;
    }
    if (mnl_socket_sendto(ct_sock, out, len) < 0) return -errno;
    size_t acked = 0;
    while (acked < k) {
      ssize_t r = mnl_socket_recvfrom(ct_sock, in, sizeof in);
      if (r < 0) return -errno;
      for (struct nlmsghdr *h = (struct nlmsghdr *)in; mnl_nlmsg_ok(h, (int)r); h = mnl_nlmsg_next(h, (int *)&r)) {
        if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < first || h->nlmsg_seq > ct_seq) continue;
        const struct nlmsgerr *err = mnl_nlmsg_get_payload(h);
        acked++;
        if (err->error == 0) deleted++;
        else if (-err->error != ENOENT) return err->error;
      }
    }
  }
  return deleted;
}

/* The Uint32Array of packed tuples (ct_put_tuple_msg) every call takes; NULL (with a JS exception
 * pending) when it is not one, has a bad port, or holds more than `max` tuples. */
static const uint32_t *ct_tuples_arg(napi_env env, napi_value v, size_t max, size_t *count, const char *fn, int v6) {
  const size_t w = CT_STRIDE(v6);
  bool is = false;
  napi_typedarray_type tt;
  size_t n = 0, off;
  void *data = NULL;
  napi_value ab;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &tt, &n, &data, &ab, &off) != napi_ok || tt != napi_uint32_array || n % w || n / w > max) {
    sa_throw(env, K_ARG, 0, "%s: Uint32Array of at most %zu %zu-word tuples expected", fn, max, w);
    return NULL;
  }
  const uint32_t *t = data;
  for (size_t i = 0; i < n; i += w) {
    if (t[i + w - 2] > 65535 || t[i + w - 1] > 65535) { sa_throw(env, K_ARG, 0, "%s: bad port", fn); return NULL; }
  }
  *count = n / w;
  return t;
}

/* ctDeleteMany(tuples: Uint32Array of IPv4 tuples) / ctDeleteMany6(IPv6 tuples) -> number deleted */
static napi_value ct_delete_many(napi_env env, napi_callback_info info, int v6) {
  size_t argc = 1, k = 0;
  napi_value argv[1] = {NULL}, res;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const uint32_t *t = ct_tuples_arg(env, argv[0], SIZE_MAX / 11, &k, v6 ? "ctDeleteMany6" : "ctDeleteMany", v6);
  if (!t) return NULL;
  int r = ct_delete_batch(t, k, v6);
  if (r < 0) {
    if (-r == EPERM && !sa_has_cap_net_admin()) return sa_throw(env, K_NOT_ROOT, -r, "deleting conntrack entries");
    return sa_throw(env, K_CT, -r, "conntrack delete");
  }
  napi_create_uint32(env, (uint32_t)r, &res);
  return res;
}

static napi_value js_ct_delete_many(napi_env env, napi_callback_info info) { return ct_delete_many(env, info, 0); }
static napi_value js_ct_delete_many6(napi_env env, napi_callback_info info) { return ct_delete_many(env, info, 1); }

/* Counters of one conntrack entry: CTA_COUNTERS_{ORIG,REPLY} → {packets, bytes}. */
struct ct_counts { double v[4]; int found; };

static int ct_counter_attr(const struct nlattr *a, void *data) {
  const struct nlattr **tb = data;
  int type = mnl_attr_get_type(a);
  if (type == CTA_COUNTERS_PACKETS || type == CTA_COUNTERS_BYTES) tb[type] = a;
  return MNL_CB_OK;
}

static int ct_top_attr(const struct nlattr *a, void *data) {
  const struct nlattr **tb = data;
  int type = mnl_attr_get_type(a);
  if (type == CTA_COUNTERS_ORIG || type == CTA_COUNTERS_REPLY) tb[type] = a;
  return MNL_CB_OK;
}

static void ct_read_counters(const struct nlmsghdr *h, struct ct_counts *c) {
  const struct nlattr *tb[CTA_MAX + 1] = {0};
  mnl_attr_parse(h, sizeof(struct nfgenmsg), ct_top_attr, tb);
  c->found = 1;
  const int which[2] = { CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY };
  for (int d = 0; d < 2; d++) {
    c->v[d * 2] = c->v[d * 2 + 1] = -1; /* accounting off: no counters */
    if (!tb[which[d]]) continue;
    const struct nlattr *cb[CTA_COUNTERS_MAX + 1] = {0};
    mnl_attr_parse_nested(tb[which[d]], ct_counter_attr, cb);
    if (cb[CTA_COUNTERS_PACKETS]) c->v[d * 2] = (double)be64toh(mnl_attr_get_u64(cb[CTA_COUNTERS_PACKETS]));
    if (cb[CTA_COUNTERS_BYTES]) c->v[d * 2 + 1] = (double)be64toh(mnl_attr_get_u64(cb[CTA_COUNTERS_BYTES]));
  }
}

/* ctCounters(tuples: Uint32Array of [reply 0|1, src, dst, sport, dport] * n) -> Float64Array of
 * [origPackets, origBytes, replyPackets, replyBytes] * n; -2 for a tuple with no entry, -1 for a
 * counter the kernel does not keep (net.netfilter.nf_conntrack_acct = 0). One send for all GETs. */
static napi_value ct_counters(napi_env env, napi_callback_info info, int v6) {
  size_t argc = 1, k = 0;
  napi_value argv[1] = {NULL}, res, ab_out;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const uint32_t *t = ct_tuples_arg(env, argv[0], CT_MSG_MAX, &k, v6 ? "ctCounters6" : "ctCounters", v6);
  if (!t) return NULL;
  double *outv = NULL;
  NAPI_OK(napi_create_arraybuffer(env, k * 4 * sizeof(double), (void **)&outv, &ab_out));
  for (size_t i = 0; i < k * 4; i++) outv[i] = -2;
  int e = ct_open();
  if (e) return sa_throw(env, K_CT, e, "conntrack counters: netlink socket");
  char out[CT_MSG_MAX * 128];
  char in[MNL_SOCKET_BUFFER_SIZE];
  size_t len = 0;
  uint32_t first = ct_seq + 1;
  for (size_t i = 0; i < k; i++) {
    ct_put_tuple_msg(out + len, IPCTNL_MSG_CT_GET, NLM_F_REQUEST, t + i * CT_STRIDE(v6), v6, ++ct_seq);
    len += ((struct nlmsghdr *)(out + len))->nlmsg_len;
  }
  if (k > 0 && mnl_socket_sendto(ct_sock, out, len) < 0) return sa_throw(env, K_CT, errno, "conntrack counters: send");
  size_t answered = 0;
  while (answered < k) {
    ssize_t r = mnl_socket_recvfrom(ct_sock, in, sizeof in);
    if (r < 0) return sa_throw(env, K_CT, errno, "conntrack counters: receive");
    for (struct nlmsghdr *h = (struct nlmsghdr *)in; mnl_nlmsg_ok(h, (int)r); h = mnl_nlmsg_next(h, (int *)&r)) {
      if (h->nlmsg_seq < first || h->nlmsg_seq > ct_seq) continue;
      size_t i = h->nlmsg_seq - first;
      answered++;
      if (h->nlmsg_type == NLMSG_ERROR) continue; /* ENOENT: no such flow (stays -2) */
      struct ct_counts c = {{0}, 0};
      ct_read_counters(h, &c);
      for (int j = 0; j < 4; j++) outv[i * 4 + j] = c.v[j];
    }
  }
  NAPI_OK(napi_create_typedarray(env, napi_float64_array, k * 4, ab_out, 0, &res));
  return res;
}

static napi_value js_ct_counters(napi_env env, napi_callback_info info) { return ct_counters(env, info, 0); }
static napi_value js_ct_counters6(napi_env env, napi_callback_info info) { return ct_counters(env, info, 1); }

napi_value ct_init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
    { "ctDeleteMany", NULL, js_ct_delete_many, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "ctCounters", NULL, js_ct_counters, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "ctDeleteMany6", NULL, js_ct_delete_many6, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "ctCounters6", NULL, js_ct_counters6, NULL, NULL, NULL, napi_default_jsproperty, NULL },
  };
  if (napi_define_properties(env, exports, sizeof d / sizeof d[0], d) != napi_ok) return NULL;
  return exports;
}
