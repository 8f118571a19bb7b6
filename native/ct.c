/*
 * Delete one conntrack entry by its exact UDP tuple over ctnetlink (raw nfnetlink via libmnl).
 * ctDelete(direction: 'original'|'reply', src: u32 host order, dst: u32, sport, dport) -> boolean
 * true = deleted, false = no such entry (ENOENT). Other errors throw (kind CT / NOT_ROOT).
 */
#include "common.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

static napi_value js_ct_delete(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return sa_throw(env, K_ARG, 0, "ctDelete(direction, src, dst, sport, dport)");
  char dir[16] = {0};
  size_t l;
  uint32_t src, dst, sport, dport;
  if (napi_get_value_string_utf8(env, argv[0], dir, sizeof dir, &l) != napi_ok ||
      (strcmp(dir, "original") && strcmp(dir, "reply")) ||
      napi_get_value_uint32(env, argv[1], &src) != napi_ok || napi_get_value_uint32(env, argv[2], &dst) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &sport) != napi_ok || napi_get_value_uint32(env, argv[4], &dport) != napi_ok ||
      sport > 65535 || dport > 65535)
    return sa_throw(env, K_ARG, 0, "ctDelete: bad tuple");
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = (uint32_t)time(NULL);
  struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof *nfg);
  nfg->nfgen_family = AF_INET;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  struct nlattr *t = mnl_attr_nest_start(nlh, strcmp(dir, "reply") == 0 ? CTA_TUPLE_REPLY : CTA_TUPLE_ORIG);
  struct nlattr *ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  mnl_attr_put_u32(nlh, CTA_IP_V4_SRC, htonl(src));
  mnl_attr_put_u32(nlh, CTA_IP_V4_DST, htonl(dst));
  mnl_attr_nest_end(nlh, ip);
  struct nlattr *pr = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, 17);
  mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons((uint16_t)sport));
  mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons((uint16_t)dport));
  mnl_attr_nest_end(nlh, pr);
  mnl_attr_nest_end(nlh, t);

  struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
  if (!nl) return sa_throw(env, K_CT, errno, "conntrack delete: netlink socket");
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int e = errno;
    mnl_socket_close(nl);
    return sa_throw(env, K_CT, e, "conntrack delete: netlink bind");
  }
  uint32_t portid = mnl_socket_get_portid(nl);
  int err = 0;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) err = errno;
  else {
    ssize_t r = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (r < 0) err = errno;
    else if (mnl_cb_run(buf, (size_t)r, nlh->nlmsg_seq, portid, NULL, NULL) < 0) err = errno;
  }
  mnl_socket_close(nl);
  napi_value res;
  if (err == ENOENT) { napi_get_boolean(env, false, &res); return res; }
  if (err) {
    if (err == EPERM && !sa_has_cap_net_admin()) return sa_throw(env, K_NOT_ROOT, err, "deleting a conntrack entry");
    return sa_throw(env, K_CT, err, "conntrack delete");
  }
  napi_get_boolean(env, true, &res);
  return res;
}

napi_value ct_init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
    { "ctDelete", NULL, js_ct_delete, NULL, NULL, NULL, napi_default_jsproperty, NULL },
  };
  if (napi_define_properties(env, exports, 1, d) != napi_ok) return NULL;
  return exports;
}

/* fixIpv4Udp(buf): in place, set IPv4 total length = buf.length, UDP length, IP header checksum and
 * UDP checksum (never 0: 0xffff). Returns false (untouched) if it is not a sane IPv4/UDP packet. */
static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
  size_t i = 0;
  for (; i + 1 < n; i += 2) acc += (uint32_t)((p[i] << 8) | p[i + 1]);
  if (n & 1) acc += (uint32_t)(p[n - 1] << 8);
  return acc;
}
static uint16_t fold(uint32_t a) { while (a >> 16) a = (a & 0xffff) + (a >> 16); return (uint16_t)a; }

static napi_value js_fix_ipv4_udp(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], res;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is = false;
  napi_is_typedarray(env, argv[0], &is);
  napi_typedarray_type tt;
  size_t n = 0, off;
  void *data = NULL;
  napi_value ab;
  if (!is || napi_get_typedarray_info(env, argv[0], &tt, &n, &data, &ab, &off) != napi_ok || tt != napi_uint8_array)
    return sa_throw(env, K_ARG, 0, "fixIpv4Udp: Buffer expected");
  uint8_t *p = data;
  size_t ihl = n ? (size_t)(p[0] & 15) * 4 : 0;
  if (n < 28 || (p[0] >> 4) != 4 || ihl < 20 || n < ihl + 8 || n > 65535 || p[9] != 17) {
    napi_get_boolean(env, false, &res);
    return res;
  }
  p[2] = (uint8_t)(n >> 8); p[3] = (uint8_t)n;
  p[10] = p[11] = 0;
  uint16_t c = (uint16_t)~fold(sum16(p, ihl, 0));
  p[10] = (uint8_t)(c >> 8); p[11] = (uint8_t)c;
  size_t ul = n - ihl;
  uint8_t *u = p + ihl;
  u[4] = (uint8_t)(ul >> 8); u[5] = (uint8_t)ul;
  u[6] = u[7] = 0;
  uint32_t acc = sum16(p + 12, 8, 0) + 17 + (uint32_t)ul;
  c = (uint16_t)~fold(sum16(u, ul, acc));
  if (c == 0) c = 0xffff;
  u[6] = (uint8_t)(c >> 8); u[7] = (uint8_t)c;
  napi_get_boolean(env, true, &res);
  return res;
}

napi_value csum_init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
    { "fixIpv4Udp", NULL, js_fix_ipv4_udp, NULL, NULL, NULL, napi_default_jsproperty, NULL },
  };
  if (napi_define_properties(env, exports, 1, d) != napi_ok) return NULL;
  return exports;
}
