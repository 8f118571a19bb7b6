/*
 * NFQUEUE binding (libnetfilter_queue's mnl API + libmnl), driven by a libuv poll handle.
 *
 * Receive: on each wake-up read every ready netlink message (recv until EAGAIN, at most
 * max_batch packets), copy the payloads into one arena and cross into JS ONCE:
 *   cb(data: Buffer, meta: Uint32Array, count: number)
 * meta holds META_STRIDE u32 per packet: id, offset, length, mark, indev, outdev, flags, origLen.
 * Verdicts: appended to a pending buffer (one NFQNL_MSG_VERDICT message each, payload optional)
 * and sent packed in one send() by flush(), when the buffer is full, and after every batch callback.
 *
 * Kernel errors for verdict messages (e.g. ENOENT for an unknown id) come back as NLMSG_ERROR on the
 * same socket (the kernel always acks on error); they are counted, never thrown.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <uv.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#define NFQ_MAGIC 0x5146514eu /* "NFQQ" */
#define META_STRIDE 8
#define PEND_CAP (512 * 1024)
#define SCRATCH_CAP (0x10000 + 4096)

/* meta flags */
#define PF_TRUNCATED 1u
#define PF_CSUM_NOT_READY 2u
#define PF_GSO 4u

typedef struct nfqh {
  uint32_t magic;
  napi_env env;
  struct mnl_socket *nl;
  int fd;
  uint32_t queue;
  uint32_t seq;
  int closed;
  uv_poll_t *poll;
  napi_ref cb_ref;
  napi_ref resource_ref;
  napi_async_context actx;
  uint32_t max_batch;
  int rcvbuf_bytes;
  int sndbuf_bytes;
  uint32_t maxlen;
  int fail_open;

  char *scratch;
  char *arena;
  size_t arena_len, arena_cap;
  uint32_t *meta;
  uint32_t npkts;

  char *pend;
  size_t pend_len;
  uint32_t pend_count;

  /* counters */
  uint64_t packets;          /* packets received from the kernel (with or without payload) */
  uint64_t bytes;            /* payload bytes received */
  uint64_t batches;          /* JS callbacks made */
  uint64_t wakeups;          /* poll wake-ups */
  uint64_t verdicts;         /* verdict messages handed to the kernel (send() succeeded) */
  uint64_t accepts, drops, replaced;
  uint64_t flushes;          /* send() calls carrying verdicts */
  uint64_t verdict_errors;   /* NLMSG_ERROR != 0 received for a verdict (e.g. ENOENT: unknown id) */
  int last_verdict_errno;
  uint64_t send_errors;      /* verdict messages that could not be sent */
  int last_send_errno;
  uint64_t enobufs;          /* recv() reported ENOBUFS: the kernel could not put >= 1 packet in our socket */
  uint64_t recv_errors;
  int last_recv_errno;
  uint64_t id_gaps;          /* packet ids never seen (id sequence jumped): netlink unicast failures */
  uint64_t no_payload;       /* packets without payload (before copy mode applied): accepted at once */
  uint64_t parse_errors;
  uint64_t truncated;
  uint32_t last_id;
  int have_last_id;
  uint32_t max_batch_seen;
} nfqh;

/* ------------------------------------------------------------------ helpers */

static nfqh *get_handle(napi_env env, napi_value v, int allow_closed) {
  nfqh *h = sa_handle(env, v, NFQ_MAGIC, "a queue handle");
  if (!h) return NULL;
  if (h->closed && !allow_closed) {
    sa_throw(env, K_CLOSED, 0, "nfqueue %u: queue is closed", h->queue);
    return NULL;
  }
  return h;
}

static int arena_reserve(nfqh *h, size_t more) {
  if (h->arena_len + more <= h->arena_cap) return 0;
  size_t cap = h->arena_cap ? h->arena_cap : 256 * 1024;
  while (cap < h->arena_len + more) cap *= 2;
  char *n = realloc(h->arena, cap);
  if (!n) return -1;
  h->arena = n;
  h->arena_cap = cap;
  return 0;
}

/* Send all pending verdict messages in one send(). On a size/buffer error fall back to one send()
 * per message so nothing is silently lost. Returns the number of messages sent. */
static uint32_t flush_pending(nfqh *h) {
  if (!h->pend_len || h->fd < 0) return 0;
  uint32_t count = h->pend_count;
  ssize_t r;
  do { r = send(h->fd, h->pend, h->pend_len, 0); } while (r < 0 && errno == EINTR);
  uint32_t sent = 0;
  if (r >= 0) {
    sent = count;
  } else if (errno == EMSGSIZE || errno == ENOBUFS || errno == EAGAIN || errno == ENOMEM) {
    /* one message per send */
    struct nlmsghdr *nlh = (struct nlmsghdr *)h->pend;
    int rem = (int)h->pend_len;
    while (mnl_nlmsg_ok(nlh, rem)) {
      ssize_t r1;
      do { r1 = send(h->fd, nlh, nlh->nlmsg_len, 0); } while (r1 < 0 && errno == EINTR);
      if (r1 < 0) { h->send_errors++; h->last_send_errno = errno; } else sent++;
      nlh = mnl_nlmsg_next(nlh, &rem);
    }
  } else {
    h->send_errors += count;
    h->last_send_errno = errno;
  }
  h->verdicts += sent;
  h->flushes++;
  h->pend_len = 0;
  h->pend_count = 0;
  return sent;
}

static int put_verdict(nfqh *h, uint32_t id, int verdict, const void *pkt, size_t len) {
  size_t need = 128 + (pkt ? len + 8 : 0);
  if (h->pend_len + need > PEND_CAP) flush_pending(h);
  struct nlmsghdr *nlh = nfq_nlmsg_put(h->pend + h->pend_len, NFQNL_MSG_VERDICT, h->queue);
  nfq_nlmsg_verdict_put(nlh, (int)id, verdict);
  if (pkt) nfq_nlmsg_verdict_put_pkt(nlh, pkt, (uint32_t)len);
  h->pend_len += NLMSG_ALIGN(nlh->nlmsg_len);
  h->pend_count++;
  return 0;
}

static void handle_packet(nfqh *h, const struct nlmsghdr *nlh) {
  struct nlattr *attr[NFQA_MAX + 1];
  memset(attr, 0, sizeof attr);
  if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR]) { h->parse_errors++; return; }
  const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
  uint32_t id = ntohl(ph->packet_id);
  h->packets++;
  if (h->have_last_id && id > h->last_id + 1) h->id_gaps += id - h->last_id - 1;
  if (!h->have_last_id || id > h->last_id) h->last_id = id;
  h->have_last_id = 1;

  if (!attr[NFQA_PAYLOAD]) {
    h->no_payload++;
    put_verdict(h, id, NF_ACCEPT, NULL, 0);
    h->accepts++;
    return;
  }
  uint32_t plen = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
  const void *p = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
  uint32_t flags = 0, orig = plen;
  if (attr[NFQA_CAP_LEN]) {
    orig = ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN]));
    if (orig > plen) { flags |= PF_TRUNCATED; h->truncated++; }
  }
  if (attr[NFQA_SKB_INFO]) {
    uint32_t si = ntohl(mnl_attr_get_u32(attr[NFQA_SKB_INFO]));
    if (si & NFQA_SKB_CSUMNOTREADY) flags |= PF_CSUM_NOT_READY;
    if (si & NFQA_SKB_GSO) flags |= PF_GSO;
  }
  size_t off = (h->arena_len + 7) & ~(size_t)7;
  if (arena_reserve(h, (off - h->arena_len) + plen) < 0) {
    /* out of memory: let the packet through untouched rather than lose it */
    put_verdict(h, id, NF_ACCEPT, NULL, 0);
    h->accepts++;
    return;
  }
  memcpy(h->arena + off, p, plen);
  h->arena_len = off + plen;
  h->bytes += plen;
  uint32_t *m = h->meta + (size_t)h->npkts * META_STRIDE;
  m[0] = id;
  m[1] = (uint32_t)off;
  m[2] = plen;
  m[3] = attr[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
  m[4] = attr[NFQA_IFINDEX_INDEV] ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV])) : 0;
  m[5] = attr[NFQA_IFINDEX_OUTDEV] ? ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_OUTDEV])) : 0;
  m[6] = flags;
  m[7] = orig;
  h->npkts++;
}

/* Walk one datagram of netlink messages. If want_seq != 0, report the ack for it. */
static void process_buf(nfqh *h, const char *buf, ssize_t len, uint32_t want_seq, int *ack_err, int *got_ack) {
  const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
  int rem = (int)len;
  while (mnl_nlmsg_ok(nlh, rem)) {
    if (nlh->nlmsg_type == NLMSG_ERROR) {
      const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
      if (want_seq && nlh->nlmsg_seq == want_seq) {
        *ack_err = -e->error;
        *got_ack = 1;
      } else if (e->error != 0) {
        h->verdict_errors++;
        h->last_verdict_errno = -e->error;
      }
    } else if (nlh->nlmsg_type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) {
      if (h->npkts >= h->max_batch * 4) {
        /* only possible while waiting for config acks: accept instead of growing without bound */
        struct nlattr *attr[NFQA_MAX + 1];
        memset(attr, 0, sizeof attr);
        if (nfq_nlmsg_parse(nlh, attr) >= 0 && attr[NFQA_PACKET_HDR]) {
          const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
          put_verdict(h, ntohl(ph->packet_id), NF_ACCEPT, NULL, 0);
          h->packets++;
          h->accepts++;
        }
      } else {
        handle_packet(h, nlh);
      }
    }
    nlh = mnl_nlmsg_next(nlh, &rem);
  }
}

/* Send one config message with NLM_F_ACK and wait (bounded) for its ack. Returns 0 or errno. */
static int config_msg(nfqh *h, struct nlmsghdr *nlh) {
  nlh->nlmsg_flags |= NLM_F_ACK;
  nlh->nlmsg_seq = ++h->seq;
  if (mnl_socket_sendto(h->nl, nlh, nlh->nlmsg_len) < 0) return errno;
  int ack_err = 0, got = 0;
  for (int i = 0; i < 10000 && !got; i++) {
    struct pollfd pfd = { .fd = h->fd, .events = POLLIN };
    int pr = poll(&pfd, 1, 2000);
    if (pr == 0) return ETIMEDOUT;
    if (pr < 0) { if (errno == EINTR) continue; return errno; }
    ssize_t r = recv(h->fd, h->scratch, SCRATCH_CAP, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      if (errno == ENOBUFS) { h->enobufs++; continue; }
      return errno;
    }
    process_buf(h, h->scratch, r, nlh->nlmsg_seq, &ack_err, &got);
  }
  return got ? ack_err : ETIMEDOUT;
}

static void on_poll_closed(uv_handle_t *hd) { free(hd); }

static void close_handle(nfqh *h) {
  if (h->closed) return;
  h->closed = 1;
  if (h->fd >= 0) flush_pending(h);
  if (h->poll) {
    uv_poll_stop(h->poll);
    uv_close((uv_handle_t *)h->poll, on_poll_closed);
    h->poll = NULL;
  }
  if (h->nl) { mnl_socket_close(h->nl); h->nl = NULL; }  /* closing the socket unbinds the queue */
  h->fd = -1;
  napi_env env = h->env;
  if (h->cb_ref) { napi_delete_reference(env, h->cb_ref); h->cb_ref = NULL; }
  if (h->actx) { napi_async_destroy(env, h->actx); h->actx = NULL; }
  if (h->resource_ref) { napi_delete_reference(env, h->resource_ref); h->resource_ref = NULL; }
}

static void free_handle(nfqh *h) {
  free(h->scratch);
  free(h->arena);
  free(h->meta);
  free(h->pend);
  h->magic = 0;
  free(h);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  nfqh *h = data;
  if (!h->closed) {
    /* GC'd while open: close. References are still valid in a finalizer (napi >= 8). */
    close_handle(h);
  }
  free_handle(h);
}

/* Hand the collected batch to JS (one call). */
static void deliver(nfqh *h) {
  if (!h->npkts || h->closed) return;
  napi_env env = h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value argv[3], cb, resource, result, ab;
  void *dst = NULL;
  uint32_t n = h->npkts;
  int ok = napi_create_buffer_copy(env, h->arena_len, h->arena, NULL, &argv[0]) == napi_ok &&
           napi_create_arraybuffer(env, (size_t)n * META_STRIDE * 4, &dst, &ab) == napi_ok;
  if (ok) {
    memcpy(dst, h->meta, (size_t)n * META_STRIDE * 4);
    ok = napi_create_typedarray(env, napi_uint32_array, (size_t)n * META_STRIDE, ab, 0, &argv[1]) == napi_ok &&
         napi_create_uint32(env, n, &argv[2]) == napi_ok &&
         napi_get_reference_value(env, h->cb_ref, &cb) == napi_ok &&
         napi_get_reference_value(env, h->resource_ref, &resource) == napi_ok;
  }
  h->batches++;
  if (n > h->max_batch_seen) h->max_batch_seen = n;
  h->arena_len = 0;
  h->npkts = 0;
  if (ok) {
    napi_status st = napi_make_callback(env, h->actx, resource, cb, 3, argv, &result);
    if (st == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_readable(uv_poll_t *p, int status, int events) {
  nfqh *h = p->data;
  if (!h || h->closed) return;
  h->wakeups++;
  if (status < 0) { h->recv_errors++; h->last_recv_errno = -status; }
  for (uint32_t i = 0; i < h->max_batch * 2 && h->npkts < h->max_batch; i++) {
    ssize_t r = recv(h->fd, h->scratch, SCRATCH_CAP, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) { h->enobufs++; continue; }
      h->recv_errors++;
      h->last_recv_errno = errno;
      break;
    }
    process_buf(h, h->scratch, r, 0, NULL, NULL);
  }
  deliver(h);
  if (!h->closed) flush_pending(h);
}

static void on_timer_closed(uv_handle_t *t) { free(t); }
static void on_initial_timer(uv_timer_t *t) {
  nfqh *h = t->data;
  uv_close((uv_handle_t *)t, on_timer_closed);
  if (h && h->magic == NFQ_MAGIC && !h->closed) { deliver(h); if (!h->closed) flush_pending(h); }
}

/* ------------------------------------------------------------------ JS API */

static int get_u32_arg(napi_env env, napi_value v, uint32_t dflt, uint32_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null) { *out = dflt; return 0; }
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > 4294967295.0 || d != (double)(uint64_t)d) return -1;
  *out = (uint32_t)d;
  return 0;
}

/* nfqOpen(queue, maxLen, rcvbufBytes, failOpen, maxBatch, callback) -> handle */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return sa_throw(env, K_ARG, 0, "nfqOpen: 6 arguments expected");
  double qd;
  napi_valuetype qt;
  napi_typeof(env, argv[0], &qt);
  if (qt != napi_number || napi_get_value_double(env, argv[0], &qd) != napi_ok || qd != qd || qd < 0 ||
      qd > 65535 || qd != (double)(int)qd)
    return sa_throw(env, K_QUEUE_BIND, EINVAL, "queue number must be an integer 0..65535");
  uint32_t queue = (uint32_t)qd, maxlen, rcvbuf, maxbatch;
  if (get_u32_arg(env, argv[1], 16384, &maxlen) || maxlen == 0)
    return sa_throw(env, K_QUEUE_BIND, EINVAL, "maxLen must be a positive integer");
  if (get_u32_arg(env, argv[2], 32u << 20, &rcvbuf) || rcvbuf > (1u << 30))
    return sa_throw(env, K_QUEUE_BIND, EINVAL, "rcvbufBytes must be an integer <= 1 GiB");
  bool fail_open = false;
  napi_get_value_bool(env, argv[3], &fail_open);
  if (get_u32_arg(env, argv[4], 256, &maxbatch) || maxbatch == 0 || maxbatch > 65536)
    return sa_throw(env, K_QUEUE_BIND, EINVAL, "maxBatch must be 1..65536");
  napi_valuetype ct;
  napi_typeof(env, argv[5], &ct);
  if (ct != napi_function) return sa_throw(env, K_ARG, 0, "nfqOpen: callback must be a function");

  nfqh *h = calloc(1, sizeof *h);
  if (!h) return sa_throw(env, K_QUEUE_BIND, ENOMEM, "out of memory");
  h->magic = NFQ_MAGIC;
  h->env = env;
  h->fd = -1;
  h->queue = queue;
  h->max_batch = maxbatch;
  h->maxlen = maxlen;
  h->fail_open = fail_open;
  h->scratch = malloc(SCRATCH_CAP);
  h->pend = malloc(PEND_CAP);
  h->meta = malloc((size_t)maxbatch * 4 * META_STRIDE * 4 + 64);
  if (!h->scratch || !h->pend || !h->meta) { free_handle(h); return sa_throw(env, K_QUEUE_BIND, ENOMEM, "out of memory"); }

  h->nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!h->nl) {
    int e = errno;
    free_handle(h);
    if (e == EPERM || e == EACCES) return sa_throw(env, K_NOT_ROOT, e, "binding nfqueue %u", queue);
    return sa_throw(env, K_QUEUE_BIND, e, "netlink socket: %s", strerror(e));
  }
  if (mnl_socket_bind(h->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(h->nl);
    free_handle(h);
    return sa_throw(env, K_QUEUE_BIND, e, "netlink bind: %s", strerror(e));
  }
  h->fd = mnl_socket_get_fd(h->nl);
  int one = 1, zero = 0;
  setsockopt(h->fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &zero, sizeof zero); /* see and count overruns */
  setsockopt(h->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);     /* errors without the payload */
  h->rcvbuf_bytes = sa_set_bufsize(h->fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)rcvbuf);
  h->sndbuf_bytes = sa_set_bufsize(h->fd, SO_SNDBUFFORCE, SO_SNDBUF, 4 * PEND_CAP);
  fcntl(h->fd, F_SETFL, fcntl(h->fd, F_GETFL) | O_NONBLOCK);

  char buf[512];
  struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
  int err = config_msg(h, nlh);
  if (err) {
    mnl_socket_close(h->nl);
    free_handle(h);
    if (err == EPERM || err == EBUSY) {
      if (!sa_has_cap_net_admin()) return sa_throw(env, K_NOT_ROOT, err, "binding nfqueue %u", queue);
      return sa_throw(env, K_QUEUE_BUSY, err, "nfqueue %u is already bound by another process", queue);
    }
    return sa_throw(env, K_QUEUE_BIND, err, "bind: %s", strerror(err));
  }
  const char *step = "copy mode";
  nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
  err = config_msg(h, nlh);
  if (!err) {
    step = "queue maxlen";
    nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
    nfq_nlmsg_cfg_put_qmaxlen(nlh, maxlen);
    err = config_msg(h, nlh);
  }
  if (!err) {
    step = "fail-open flag";
    nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
    mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(fail_open ? NFQA_CFG_F_FAIL_OPEN : 0));
    mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
    err = config_msg(h, nlh);
  }
  if (err) {
    mnl_socket_close(h->nl);
    free_handle(h);
    return sa_throw(env, K_QUEUE_BIND, err, "setting %s: %s", step, strerror(err));
  }
  /* verdicts for payload-less packets that arrived during setup */
  flush_pending(h);

  napi_value ext, resource, name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "sipalg:nfqueue", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[5], 1, &h->cb_ref) != napi_ok ||
      napi_create_reference(env, resource, 1, &h->resource_ref) != napi_ok ||
      napi_async_init(env, resource, name, &h->actx) != napi_ok ||
      napi_create_external(env, h, finalize_handle, NULL, &ext) != napi_ok) {
    close_handle(h);
    free_handle(h);
    return sa_throw(env, K_QUEUE_BIND, ENOMEM, "napi setup failed");
  }
  uv_loop_t *loop = NULL;
  napi_get_uv_event_loop(env, &loop);
  h->poll = malloc(sizeof *h->poll);
  if (!h->poll || uv_poll_init(loop, h->poll, h->fd) != 0) {
    free(h->poll);
    h->poll = NULL;
    close_handle(h);
    return sa_throw(env, K_QUEUE_BIND, EIO, "uv_poll_init failed");
  }
  h->poll->data = h;
  uv_poll_start(h->poll, UV_READABLE, on_readable);
  if (h->npkts) {
    /* packets with payload arrived while we waited for the config acks: deliver them soon */
    uv_timer_t *t = malloc(sizeof *t);
    if (t) { uv_timer_init(loop, t); t->data = h; uv_timer_start(t, on_initial_timer, 0, 0); }
  }
  return ext;
}

/* nfqVerdict(h, id, accept: boolean|number(1 accept,0 drop), payload?) */
static napi_value js_verdict(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return sa_throw(env, K_ARG, 0, "verdict: (handle, id, verdict[, payload])");
  nfqh *h = get_handle(env, argv[0], 0);
  if (!h) return NULL;
  uint32_t id, v;
  if (napi_get_value_uint32(env, argv[1], &id) != napi_ok) return sa_throw(env, K_ARG, 0, "verdict: id must be a number");
  if (napi_get_value_uint32(env, argv[2], &v) != napi_ok) return sa_throw(env, K_ARG, 0, "verdict: verdict must be 0 (drop) or 1 (accept)");
  int verdict = v ? NF_ACCEPT : NF_DROP;
  void *data = NULL;
  size_t len = 0;
  if (argc >= 4) {
    napi_valuetype t;
    napi_typeof(env, argv[3], &t);
    if (t != napi_undefined && t != napi_null) {
      bool isb = false;
      napi_is_typedarray(env, argv[3], &isb);
      if (!isb) return sa_throw(env, K_ARG, 0, "verdict: payload must be a Buffer/Uint8Array");
      napi_typedarray_type tt;
      size_t n;
      napi_value ab;
      size_t boff;
      NAPI_OK(napi_get_typedarray_info(env, argv[3], &tt, &n, &data, &ab, &boff));
      len = n;
      if (tt != napi_uint8_array && tt != napi_uint8_clamped_array && tt != napi_int8_array)
        return sa_throw(env, K_ARG, 0, "verdict: payload must be a Buffer/Uint8Array");
      if (len > 0xffff) return sa_throw(env, K_ARG, 0, "verdict: payload larger than 65535 bytes");
      if (len < 20) return sa_throw(env, K_ARG, 0, "verdict: payload shorter than an IPv4 header");
      if (!data) data = "";
    }
  }
  put_verdict(h, id, verdict, data, len);
  if (verdict == NF_ACCEPT) h->accepts++; else h->drops++;
  if (data) h->replaced++;
  return NULL;
}

static napi_value js_flush(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], r;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nfqh *h = get_handle(env, argv[0], 0);
  if (!h) return NULL;
  napi_create_uint32(env, flush_pending(h), &r);
  return r;
}

static void set_num(napi_env env, napi_value o, const char *k, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, o, k, x);
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], o;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nfqh *h = get_handle(env, argv[0], 1);
  if (!h) return NULL;
  napi_create_object(env, &o);
  set_num(env, o, "queue", h->queue);
  set_num(env, o, "packets", (double)h->packets);
  set_num(env, o, "bytes", (double)h->bytes);
  set_num(env, o, "batches", (double)h->batches);
  set_num(env, o, "wakeups", (double)h->wakeups);
  set_num(env, o, "maxBatchSeen", h->max_batch_seen);
  set_num(env, o, "verdictsSent", (double)h->verdicts);
  set_num(env, o, "accepted", (double)h->accepts);
  set_num(env, o, "dropped", (double)h->drops);
  set_num(env, o, "replaced", (double)h->replaced);
  set_num(env, o, "flushes", (double)h->flushes);
  set_num(env, o, "pendingVerdicts", h->pend_count);
  set_num(env, o, "verdictErrors", (double)h->verdict_errors);
  set_num(env, o, "lastVerdictErrno", h->last_verdict_errno);
  set_num(env, o, "sendErrors", (double)h->send_errors);
  set_num(env, o, "lastSendErrno", h->last_send_errno);
  set_num(env, o, "enobufs", (double)h->enobufs);
  set_num(env, o, "recvErrors", (double)h->recv_errors);
  set_num(env, o, "lastRecvErrno", h->last_recv_errno);
  set_num(env, o, "idGaps", (double)h->id_gaps);
  set_num(env, o, "lastId", h->last_id);
  set_num(env, o, "noPayload", (double)h->no_payload);
  set_num(env, o, "parseErrors", (double)h->parse_errors);
  set_num(env, o, "truncated", (double)h->truncated);
  set_num(env, o, "rcvbufBytes", h->rcvbuf_bytes);
  set_num(env, o, "sndbufBytes", h->sndbuf_bytes);
  set_num(env, o, "maxLen", h->maxlen);
  napi_value b;
  napi_get_boolean(env, h->fail_open, &b);
  napi_set_named_property(env, o, "failOpen", b);
  napi_get_boolean(env, h->closed, &b);
  napi_set_named_property(env, o, "closed", b);
  return o;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nfqh *h = get_handle(env, argv[0], 1);
  if (!h) return NULL;
  close_handle(h);
  return NULL;
}

napi_value nfq_init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
    { "nfqOpen", NULL, js_open, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nfqVerdict", NULL, js_verdict, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nfqFlush", NULL, js_flush, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nfqStats", NULL, js_stats, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "nfqClose", NULL, js_close, NULL, NULL, NULL, napi_default_jsproperty, NULL },
  };
  if (napi_define_properties(env, exports, sizeof d / sizeof d[0], d) != napi_ok) return NULL;
  return exports;
}
