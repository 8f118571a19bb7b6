/*
 * IPv4/UDP length and checksum fix-up after a payload rewrite: an NFQUEUE payload verdict is trusted
 * as written (NAT only adjusts the checksums incrementally afterwards), so every rewritten datagram
 * needs correct lengths and checksums before it goes back (src/netfilter/queue.ts fixIpv4Udp).
 */
#include "common.h"

#include <stdbool.h>

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
