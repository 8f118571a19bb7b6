/*
 * nftables set/map element writer over netlink (libnftnl + libmnl), persistent socket.
 *
 * apply(): one NFNL_MSG_BATCH_BEGIN ... END with one NEWSETELEM/DELSETELEM per op, each with
 * NLM_F_ACK; waits until every op is acked. The kernel applies a batch all-or-nothing; any
 * non-zero ack means the whole batch was aborted and is reported as an error naming the op.
 * list(): NFT_MSG_GETSETELEM dump.
 * Family NFPROTO_IPV4 (`table ip NAME`) unless nftOpen is given 6 (`table ip6 NAME`, IPv6 pinholes). No cache, no generation check, no `nft` process.
 */
#include "common.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#define NFT_MAGIC 0x4e46544du /* "NFTM" */
#define RECV_CAP (256 * 1024)
#define ACK_TIMEOUT_MS 5000

typedef struct nfth {
  uint32_t magic;
  struct mnl_socket *nl;
  int fd;
  uint32_t portid;
  uint32_t seq;
  char table[256];
  uint8_t family; /* NFPROTO_IPV4 or NFPROTO_IPV6, fixed at open */
  int closed;
  char *rbuf;
  char *sbuf;
  size_t scap;
  uint64_t batches, ops, errors;
} nfth;

static nfth *get_nft(napi_env env, napi_value v, int allow_closed) {
  nfth *h = sa_handle(env, v, NFT_MAGIC, "an nft handle");
  if (!h) return NULL;
  if (h->closed && !allow_closed) {
    sa_throw(env, K_CLOSED, 0, "nft maps for table ip %s: closed", h->table);
    return NULL;
  }
  return h;
}

static void nft_close_handle(nfth *h) {
  if (h->closed) return;
  h->closed = 1;
  if (h->nl) mnl_socket_close(h->nl);
  h->nl = NULL;
  h->fd = -1;
}

static void nft_finalize(napi_env env, void *data, void *hint) {
  nfth *h = data;
  nft_close_handle(h);
  free(h->rbuf);
  free(h->sbuf);
  h->magic = 0;
  free(h);
}

static int wait_readable(int fd, int ms) {
  struct pollfd p = { .fd = fd, .events = POLLIN };
  for (;;) {
    int r = poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno;
    return r == 0 ? ETIMEDOUT : 0;
  }
}

/* Drop anything stale (e.g. late acks of a timed-out batch) before a new request. */
static void drain(nfth *h) {
  for (int i = 0; i < 1000; i++) {
    ssize_t r = recv(h->fd, h->rbuf, RECV_CAP, MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
  }
}

/* Send a single request with NLM_F_ACK and wait for its ack. Returns 0 or errno. */
static int request_ack(nfth *h, struct nlmsghdr *nlh) {
  if (mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0) return errno;
  uint32_t seq = nlh->nlmsg_seq;
  for (int i = 0; i < 1000; i++) {
    int w = wait_readable(h->fd, ACK_TIMEOUT_MS);
    if (w) return w;
    ssize_t r = recv(h->fd, h->rbuf, RECV_CAP, MSG_DONTWAIT);
    if (r < 0) { if (errno == EAGAIN || errno == EINTR) continue; return errno; }
    const struct nlmsghdr *m = (const struct nlmsghdr *)h->rbuf;
    int rem = (int)r;
    while (mnl_nlmsg_ok(m, rem)) {
      if (m->nlmsg_type == NLMSG_ERROR && m->nlmsg_seq == seq) {
        const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);
        return -e->error;
      }
      m = mnl_nlmsg_next(m, &rem);
    }
  }
  return ETIMEDOUT;
}

/* Sends a dump request and feeds every reply to cb until the dump ends. Returns 0 or errno. */
static int run_dump(nfth *h, struct nlmsghdr *nlh, mnl_cb_t cb, void *data) {
  uint32_t seq = nlh->nlmsg_seq;
  if (mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0) return errno;
  int ret = MNL_CB_OK;
  for (int guard = 0; guard < 1000000 && ret > MNL_CB_STOP; guard++) {
    int w = wait_readable(h->fd, ACK_TIMEOUT_MS);
    if (w) return w;
    ssize_t r = recv(h->fd, h->rbuf, RECV_CAP, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return errno;
    }
    ret = mnl_cb_run(h->rbuf, (size_t)r, seq, h->portid, cb, data);
    if (ret < 0) return errno ? errno : EPROTO;
  }
  return 0;
}

/* nftOpen(table, family?: 4 | 6) -> handle. Checks the table exists (NFT_MSG_GETTABLE). */
static napi_value js_nft_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char table[256];
  size_t tl = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], table, sizeof table, &tl) != napi_ok || tl == 0 || tl >= 255)
    return sa_throw(env, K_ARG, 0, "nftOpen: table name must be a non-empty string");
  uint32_t fam = 4;
  if (argc >= 2 && napi_get_value_uint32(env, argv[1], &fam) != napi_ok) fam = 0;
  if (fam != 4 && fam != 6) return sa_throw(env, K_ARG, 0, "nftOpen: family must be 4 or 6");
  nfth *h = calloc(1, sizeof *h);
  if (!h) return sa_throw(env, K_NFT, ENOMEM, "open table ip %s", table);
  h->magic = NFT_MAGIC;
  h->fd = -1;
  memcpy(h->table, table, tl + 1);
  h->family = fam == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
  h->rbuf = malloc(RECV_CAP);
  h->scap = 64 * 1024;
  h->sbuf = malloc(h->scap);
  h->seq = (uint32_t)time(NULL);
  h->nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!h->rbuf || !h->sbuf || !h->nl) {
    int e = h->nl ? ENOMEM : errno;
    nft_finalize(env, h, NULL);
    if (e == EPERM || e == EACCES) return sa_throw(env, K_NOT_ROOT, e, "nftables maps");
    return sa_throw(env, K_NFT, e, "opening a netlink socket for table ip %s", table);
  }
  if (mnl_socket_bind(h->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    nft_finalize(env, h, NULL);
    return sa_throw(env, K_NFT, e, "binding a netlink socket for table ip %s", table);
  }
  h->fd = mnl_socket_get_fd(h->nl);
  h->portid = mnl_socket_get_portid(h->nl);
  int one = 1;
  setsockopt(h->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  setsockopt(h->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  sa_set_bufsize(h->fd, SO_SNDBUFFORCE, SO_SNDBUF, 16 << 20);
  sa_set_bufsize(h->fd, SO_RCVBUFFORCE, SO_RCVBUF, 16 << 20);

  struct nftnl_table *t = nftnl_table_alloc();
  nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
  struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(h->sbuf, NFT_MSG_GETTABLE, h->family, NLM_F_ACK, ++h->seq);
  nftnl_table_nlmsg_build_payload(nlh, t);
  nftnl_table_free(t);
  int err = request_ack(h, nlh);
  if (err) {
    nft_finalize(env, h, NULL);
    if (err == EPERM && !sa_has_cap_net_admin()) return sa_throw(env, K_NOT_ROOT, err, "nftables maps");
    if (err == ENOENT) return sa_throw(env, K_NFT, err, "table ip %s (it does not exist)", table);
    return sa_throw(env, K_NFT, err, "table ip %s", table);
  }
  napi_value ext;
  if (napi_create_external(env, h, nft_finalize, NULL, &ext) != napi_ok) {
    nft_finalize(env, h, NULL);
    return NULL;
  }
  return ext;
}

typedef struct {
  int add;
  char map[128];
  void *key; size_t klen;
  void *data; size_t dlen;
  int has_timeout;
  uint64_t timeout_ms;
} op_t;

static int get_bytes(napi_env env, napi_value v, void **p, size_t *n) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) return -1;
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &tt, n, p, &ab, &off) != napi_ok || tt != napi_uint8_array) return -1;
  return 0;
}

static void hex(char *out, size_t cap, const void *p, size_t n) {
  const unsigned char *b = p;
  size_t o = 0;
  out[0] = 0;
  for (size_t i = 0; i < n && o + 3 < cap; i++) o += snprintf(out + o, cap - o, "%02x", b[i]);
}

/* nftApply(h, ops: Array<{op, map, key, data?, timeoutMs?}>) */
static napi_value js_nft_apply(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nfth *h = get_nft(env, argv[0], 0);
  if (!h) return NULL;
  bool isarr = false;
  napi_is_array(env, argv[1], &isarr);
  if (!isarr) return sa_throw(env, K_ARG, 0, "apply: ops must be an array");
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  if (n == 0) return NULL;
  op_t *ops = calloc(n, sizeof *ops);
  if (!ops) return sa_throw(env, K_NFT, ENOMEM, "a batch of %u ops", n);
  size_t need = 256;
  for (uint32_t i = 0; i < n; i++) {
    napi_value o, v;
    napi_valuetype t;
    char opname[16] = {0};
    size_t l;
    if (napi_get_element(env, argv[1], i, &o) != napi_ok) goto bad;
    if (napi_get_named_property(env, o, "op", &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, opname, sizeof opname, &l) != napi_ok) goto bad;
    if (strcmp(opname, "add") == 0) ops[i].add = 1;
    else if (strcmp(opname, "delete") == 0) ops[i].add = 0;
    else goto bad;
    if (napi_get_named_property(env, o, "map", &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, ops[i].map, sizeof ops[i].map, &l) != napi_ok || l == 0) goto bad;
    if (napi_get_named_property(env, o, "key", &v) != napi_ok || get_bytes(env, v, &ops[i].key, &ops[i].klen) ||
        ops[i].klen == 0 || ops[i].klen > 64) goto bad;
    if (napi_get_named_property(env, o, "data", &v) == napi_ok && napi_typeof(env, v, &t) == napi_ok &&
        t != napi_undefined && t != napi_null) {
      if (get_bytes(env, v, &ops[i].data, &ops[i].dlen) || ops[i].dlen > 64) goto bad;
    }
    if (napi_get_named_property(env, o, "timeoutMs", &v) == napi_ok && napi_typeof(env, v, &t) == napi_ok &&
        t == napi_number) {
      double d;
      napi_get_value_double(env, v, &d);
      if (!(d >= 1) || d > 1e13) goto bad;
      ops[i].has_timeout = 1;
      ops[i].timeout_ms = (uint64_t)d;
    }
    need += 256 + strlen(ops[i].map) + strlen(h->table) + ops[i].klen + ops[i].dlen;
    continue;
  bad:
    free(ops);
    return sa_throw(env, K_ARG, 0,
                    "apply: op %u must be {op: 'add'|'delete', map: string, key: Uint8Array(1..64), data?: Uint8Array, timeoutMs?: number >= 1}", i);
  }
  if (need > h->scap) {
    char *nb = realloc(h->sbuf, need);
    if (!nb) { free(ops); return sa_throw(env, K_NFT, ENOMEM, "a batch of %u ops", n); }
    h->sbuf = nb;
    h->scap = need;
  }
  drain(h);
  size_t off = 0;
  struct nlmsghdr *nlh = nftnl_batch_begin(h->sbuf, ++h->seq);
  uint32_t begin_seq = h->seq;
  off += NLMSG_ALIGN(nlh->nlmsg_len);
  uint32_t first = h->seq + 1;
  for (uint32_t i = 0; i < n; i++) {
    struct nftnl_set *s = nftnl_set_alloc();
    struct nftnl_set_elem *e = nftnl_set_elem_alloc();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, h->table);
    nftnl_set_set_str(s, NFTNL_SET_NAME, ops[i].map);
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, ops[i].key, (uint32_t)ops[i].klen);
    if (ops[i].add && ops[i].data) nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, ops[i].data, (uint32_t)ops[i].dlen);
    if (ops[i].add && ops[i].has_timeout) {
      nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, ops[i].timeout_ms);
      /* An explicit expiration: a kernel that updates existing elements (>= 6.10) restarts the
       * countdown; the caller also replaces elements it refreshes, for kernels that do not. */
      nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_EXPIRATION, ops[i].timeout_ms);
    }
    nftnl_set_elem_add(s, e);
    nlh = nftnl_nlmsg_build_hdr(h->sbuf + off, ops[i].add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM, h->family,
                                NLM_F_ACK | (ops[i].add ? NLM_F_CREATE : 0), ++h->seq);
    nftnl_set_elems_nlmsg_build_payload(nlh, s);
    nftnl_set_free(s);
    off += NLMSG_ALIGN(nlh->nlmsg_len);
  }
  nlh = nftnl_batch_end(h->sbuf + off, ++h->seq);
  uint32_t end_seq = h->seq;
  off += NLMSG_ALIGN(nlh->nlmsg_len);

  h->batches++;
  h->ops += n;
  int err = 0, err_idx = -1;
  if (mnl_socket_sendto(h->nl, h->sbuf, off) < 0) {
    err = errno;
  } else {
    uint32_t got = 0;
    int guard = 0;
    while (got < n && guard++ < 100000) {
      int w = wait_readable(h->fd, ACK_TIMEOUT_MS);
      if (w) { if (!err) err = w; break; }
      ssize_t r = recv(h->fd, h->rbuf, RECV_CAP, MSG_DONTWAIT);
      if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        if (!err) err = errno; /* e.g. ENOBUFS: acks lost */
        break;
      }
      const struct nlmsghdr *m = (const struct nlmsghdr *)h->rbuf;
      int rem = (int)r;
      int stop = 0;
      while (mnl_nlmsg_ok(m, rem)) {
        if (m->nlmsg_type == NLMSG_ERROR) {
          const struct nlmsgerr *e = mnl_nlmsg_get_payload(m);
          uint32_t s = m->nlmsg_seq;
          if (s >= first && s < first + n) {
            got++;
            if (e->error && err_idx < 0) { err = -e->error; err_idx = (int)(s - first); }
          } else if ((s == begin_seq || s == end_seq) && e->error) {
            if (!err) err = -e->error;
            stop = 1; /* whole batch refused (e.g. ENOMEM on the batch header) */
          }
        }
        m = mnl_nlmsg_next(m, &rem);
      }
      if (stop) break;
    }
  }
  if (err) {
    h->errors++;
    char what[512], kh[140] = "", dh[140] = "";
    if (err_idx >= 0) {
      op_t *o = &ops[err_idx];
      hex(kh, sizeof kh, o->key, o->klen);
      if (o->data) hex(dh, sizeof dh, o->data, o->dlen);
      snprintf(what, sizeof what, "batch of %u op(s), op %d: %s element key 0x%s%s%s in map ip %s %s (batch aborted, nothing applied)",
               n, err_idx, o->add ? "add" : "delete", kh, o->data ? " data 0x" : "", dh, h->table, o->map);
    } else {
      snprintf(what, sizeof what, "batch of %u op(s) on table ip %s", n, h->table);
    }
    free(ops);
    napi_value exc;
    sa_throw(env, err == EPERM && !sa_has_cap_net_admin() ? K_NOT_ROOT : K_NFT, err, "%s", what);
    /* annotate which op failed */
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) {
      napi_value v;
      napi_create_int32(env, err_idx, &v);
      napi_set_named_property(env, exc, "opIndex", v);
      napi_throw(env, exc);
    }
    return NULL;
  }
  free(ops);
  return NULL;
}

typedef struct {
  napi_env env;
  napi_value arr;
  uint32_t n;
  int failed;
} list_ctx;

static napi_value bytes_or_null(napi_env env, struct nftnl_set_elem *e, uint16_t attr) {
  napi_value v;
  if (!nftnl_set_elem_is_set(e, attr)) { napi_get_null(env, &v); return v; }
  uint32_t len = 0;
  const void *p = nftnl_set_elem_get(e, attr, &len);
  napi_create_buffer_copy(env, len, p, NULL, &v);
  return v;
}

static napi_value u64_or_null(napi_env env, struct nftnl_set_elem *e, uint16_t attr) {
  napi_value v;
  if (!nftnl_set_elem_is_set(e, attr)) { napi_get_null(env, &v); return v; }
  napi_create_double(env, (double)nftnl_set_elem_get_u64(e, attr), &v);
  return v;
}

static int list_cb(const struct nlmsghdr *nlh, void *data) {
  list_ctx *c = data;
  struct nftnl_set *s = nftnl_set_alloc();
  if (!s) { c->failed = 1; return MNL_CB_ERROR; }
  if (nftnl_set_elems_nlmsg_parse(nlh, s) < 0) { nftnl_set_free(s); return MNL_CB_OK; }
  struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(s);
  if (it) {
    struct nftnl_set_elem *e;
    /* nftnl_set_elems_iter_next() returns the current element and advances */
    while ((e = nftnl_set_elems_iter_next(it)) != NULL) {
      napi_value o;
      napi_create_object(c->env, &o);
      napi_set_named_property(c->env, o, "key", bytes_or_null(c->env, e, NFTNL_SET_ELEM_KEY));
      napi_set_named_property(c->env, o, "data", bytes_or_null(c->env, e, NFTNL_SET_ELEM_DATA));
      napi_set_named_property(c->env, o, "expiresMs", u64_or_null(c->env, e, NFTNL_SET_ELEM_EXPIRATION));
      napi_set_named_property(c->env, o, "timeoutMs", u64_or_null(c->env, e, NFTNL_SET_ELEM_TIMEOUT));
      napi_set_element(c->env, c->arr, c->n++, o);
    }
    nftnl_set_elems_iter_destroy(it);
  }
  nftnl_set_free(s);
  return MNL_CB_OK;
}

/* (handle, name) arguments of list() and rules(): the open handle, or NULL with a JS exception. */
static nfth *handle_and_name(napi_env env, napi_callback_info info, char *name, size_t cap, const char *what) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  nfth *h = get_nft(env, argv[0], 0);
  if (!h) return NULL;
  size_t l = 0;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[1], name, cap, &l) != napi_ok || l == 0 || l >= cap - 1) {
    sa_throw(env, K_ARG, 0, "%s: name must be a non-empty string", what);
    return NULL;
  }
  return h;
}

/* nftList(h, map) -> Array<{key, data, expiresMs, timeoutMs}> */
static napi_value js_nft_list(napi_env env, napi_callback_info info) {
  char map[128];
  nfth *h = handle_and_name(env, info, map, sizeof map, "list: map");
  if (!h) return NULL;
  drain(h);
  struct nftnl_set *s = nftnl_set_alloc();
  nftnl_set_set_str(s, NFTNL_SET_TABLE, h->table);
  nftnl_set_set_str(s, NFTNL_SET_NAME, map);
  struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(h->sbuf, NFT_MSG_GETSETELEM, h->family, NLM_F_DUMP | NLM_F_ACK, ++h->seq);
  nftnl_set_elems_nlmsg_build_payload(nlh, s);
  nftnl_set_free(s);
  list_ctx c = { env, NULL, 0, 0 };
  napi_create_array(env, &c.arr);
  int err = run_dump(h, nlh, list_cb, &c);
  if (err) return sa_throw(env, K_NFT, err, "listing map ip %s %s", h->table, map);
  return c.arr;
}

static napi_value js_nft_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nfth *h = get_nft(env, argv[0], 1);
  if (!h) return NULL;
  nft_close_handle(h);
  return NULL;
}

static napi_value js_nft_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], o, v;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nfth *h = get_nft(env, argv[0], 1);
  if (!h) return NULL;
  napi_create_object(env, &o);
  napi_create_double(env, (double)h->batches, &v); napi_set_named_property(env, o, "batches", v);
  napi_create_double(env, (double)h->ops, &v); napi_set_named_property(env, o, "ops", v);
  napi_create_double(env, (double)h->errors, &v); napi_set_named_property(env, o, "errors", v);
  return o;
}

/* ---- ruleset check (self-healing, src/netfilter/watch.ts) ----------------------------------
 * nftRules(h, table) -> Array<{chain, raw}>: every rule of `table ip <table>` (one
 * NFT_MSG_GETRULE dump filtered by table, over the handle's socket); an absent table lists none. `raw` is the rule's netlink payload, searched by the caller for what it must contain (an
 * iptables-nft comment match carries its text there). Costs one dump round trip, a few µs per rule. */
typedef struct { napi_env env; napi_value arr; uint32_t n; } rules_ctx;

static int rules_attr_cb(const struct nlattr *a, void *data) {
  const struct nlattr **tb = data;
  int t = mnl_attr_get_type(a);
  if (t == NFTA_RULE_CHAIN) tb[t] = a;
  return MNL_CB_OK;
}

static int rules_cb(const struct nlmsghdr *nlh, void *data) {
  rules_ctx *c = data;
  const struct nlattr *tb[NFTA_RULE_MAX + 1] = { 0 };
  if (mnl_attr_parse(nlh, sizeof(struct nfgenmsg), rules_attr_cb, tb) < 0 || !tb[NFTA_RULE_CHAIN]) return MNL_CB_OK;
  napi_value o, v;
  napi_create_object(c->env, &o);
  napi_create_string_utf8(c->env, mnl_attr_get_str(tb[NFTA_RULE_CHAIN]), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(c->env, o, "chain", v);
  napi_create_buffer_copy(c->env, mnl_nlmsg_get_payload_len(nlh), mnl_nlmsg_get_payload(nlh), NULL, &v);
  napi_set_named_property(c->env, o, "raw", v);
  napi_set_element(c->env, c->arr, c->n++, o);
  return MNL_CB_OK;
}

static napi_value js_nft_rules(napi_env env, napi_callback_info info) {
  char table[256];
  nfth *h = handle_and_name(env, info, table, sizeof table, "rules: table");
  if (!h) return NULL;
  drain(h);
  struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(h->sbuf, NFT_MSG_GETRULE, h->family, NLM_F_DUMP | NLM_F_ACK, ++h->seq);
  mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, table);
  rules_ctx c = { env, NULL, 0 };
  napi_create_array(env, &c.arr);
  int err = run_dump(h, nlh, rules_cb, &c);
  if (err == ENOENT) return c.arr; /* older kernels refuse a dump of an absent table */
  if (err) return sa_throw(env, K_NFT, err, "listing the rules of table ip %s", table);
  return c.arr;
}

napi_value nft_init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
    { "nftOpen", NULL, js_nft_open, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nftApply", NULL, js_nft_apply, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nftList", NULL, js_nft_list, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nftClose", NULL, js_nft_close, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nftStats", NULL, js_nft_stats, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nftRules", NULL, js_nft_rules, NULL, NULL, NULL, napi_default_jsproperty, NULL },
  };
  if (napi_define_properties(env, exports, sizeof d / sizeof d[0], d) != napi_ok) return NULL;
  return exports;
}
