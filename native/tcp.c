/*
 * TCP sockets Node's `net` cannot make: IP_TRANSPARENT (IPV6_TRANSPARENT for IPv6), needed by the
 * SIP/TCP splice (src/netfilter/transparent.ts, docs/tcp-splice.md). IPv4 or IPv6 by the addresses
 * given (no address: IPv4).
 *
 * tcpListen: a listening socket that accepts connections an nft `tproxy` rule diverts to it; the
 *   accepted socket's local address is the connection's original destination. Without IP_TRANSPARENT
 *   the kernel silently drops the diverted SYNs.
 * tcpConnect: an upstream socket, optionally bound to a source address that is not the gateway's own
 *   (IP_TRANSPARENT lets bind() take it), with a non-blocking connect() already started. Node takes the
 *   fd over with `new net.Socket({ fd })`: writes wait in libuv until the connect completes, a failed
 *   connect surfaces as an 'error' (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH) on the first read.
 * Both return a plain fd (non-blocking, close-on-exec) that JS owns from then on.
 */
#include "common.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/* An IPv4 or IPv6 socket address; the family is the one its address string is written in. */
typedef union {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} sock_addr;

static socklen_t addr_len(const sock_addr *a) {
  return a->sa.sa_family == AF_INET6 ? sizeof a->v6 : sizeof a->v4;
}

static unsigned addr_port(const sock_addr *a) {
  return ntohs(a->sa.sa_family == AF_INET6 ? a->v6.sin6_port : a->v4.sin_port);
}

/*
 * Reads an address and a port from two JS values. An address with a ':' is IPv6, any other IPv4;
 * "" / null is the any-address of `family` (AF_INET when 0, so the IPv4 calls are what they were).
 * A `family` other than 0 must match the address written (a source of the destination's family).
 */
static int get_addr(napi_env env, napi_value ip, napi_value port, int family, sock_addr *a, const char *fn) {
  memset(a, 0, sizeof *a);
  char buf[64] = "";
  size_t n = 0;
  napi_valuetype t;
  napi_typeof(env, ip, &t);
  if (t == napi_string) {
    if (napi_get_value_string_utf8(env, ip, buf, sizeof buf, &n) != napi_ok) return -1;
  } else if (t != napi_null && t != napi_undefined) {
    sa_throw(env, K_ARG, 0, "%s: address must be a string", fn);
    return -1;
  }
  int written = n == 0 ? 0 : strchr(buf, ':') != NULL ? AF_INET6 : AF_INET;
  if (family != 0 && written != 0 && written != family) {
    sa_throw(env, K_ARG, 0, "%s: %s is not of the destination's address family", fn, buf);
    return -1;
  }
  a->sa.sa_family = (sa_family_t)(family != 0 ? family : written != 0 ? written : AF_INET);
  void *where = a->sa.sa_family == AF_INET6 ? (void *)&a->v6.sin6_addr : (void *)&a->v4.sin_addr;
  if (n > 0 && inet_pton(a->sa.sa_family, buf, where) != 1) {
    sa_throw(env, K_ARG, 0, "%s: not an %s address: %s", fn, a->sa.sa_family == AF_INET6 ? "IPv6" : "IPv4", buf);
    return -1;
  }
  uint32_t p = 0;
  if (napi_get_value_uint32(env, port, &p) != napi_ok || p > 65535) {
    sa_throw(env, K_ARG, 0, "%s: port must be 0..65535", fn);
    return -1;
  }
  if (a->sa.sa_family == AF_INET6) a->v6.sin6_port = htons((uint16_t)p);
  else a->v4.sin_port = htons((uint16_t)p);
  return 0;
}

/*
 * A TCP socket with SO_REUSEADDR and (when asked) IP_TRANSPARENT / IPV6_TRANSPARENT, bound to a;
 * -errno on failure. An IPv6 socket is IPv6 only: its listener shares the port with the IPv4 one,
 * whose connections stay on it.
 */
static int bound_socket(const sock_addr *a, int transparent) {
  int v6 = a->sa.sa_family == AF_INET6;
  int fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (v6 && setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
      (transparent && (v6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one)
                          : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one)) < 0) ||
      bind(fd, &a->sa, addr_len(a)) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static napi_value throw_sock(napi_env env, int err, const char *what, const sock_addr *a) {
  char ip[INET6_ADDRSTRLEN] = "?";
  int v6 = a->sa.sa_family == AF_INET6;
  inet_ntop(a->sa.sa_family, v6 ? (const void *)&a->v6.sin6_addr : (const void *)&a->v4.sin_addr, ip, sizeof ip);
  const char *open = v6 ? "[" : "", *close_ = v6 ? "]" : "";
  const char *kind = err == EPERM && !sa_has_cap_net_admin() ? K_NOT_ROOT : K_SOCKET;
  return sa_throw(env, kind, err, "%s %s%s%s:%u", what, open, ip, close_, addr_port(a));
}

static int get_bool(napi_env env, napi_value v) {
  bool b = false;
  napi_get_value_bool(env, v, &b);
  return b;
}

/* Exactly n arguments into argv, or -1 with a JS exception naming the call's usage. */
static int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc < n) { sa_throw(env, K_ARG, 0, "%s", usage); return -1; }
  return 0;
}

/* tcpListen(ip|null, port, backlog, transparent) -> fd */
static napi_value js_tcp_listen(napi_env env, napi_callback_info info) {
  napi_value argv[4], res;
  sock_addr sa;
  if (get_args(env, info, 4, argv, "tcpListen: (ip, port, backlog, transparent)") < 0 ||
      get_addr(env, argv[0], argv[1], 0, &sa, "tcpListen") < 0)
    return NULL;
  uint32_t backlog = 0;
  if (napi_get_value_uint32(env, argv[2], &backlog) != napi_ok || backlog == 0 || backlog > 65535)
    return sa_throw(env, K_ARG, 0, "tcpListen: backlog must be 1..65535");
  int fd = bound_socket(&sa, get_bool(env, argv[3]));
  if (fd < 0) return throw_sock(env, -fd, "listening on", &sa);
  if (listen(fd, (int)backlog) < 0) {
    int e = errno;
    close(fd);
    return throw_sock(env, e, "listening on", &sa);
  }
  NAPI_OK(napi_create_int32(env, fd, &res));
  return res;
}

/* tcpConnect(srcIp|null, srcPort, dstIp, dstPort, transparent) -> fd, connect in progress */
static napi_value js_tcp_connect(napi_env env, napi_callback_info info) {
  napi_value argv[5], res;
  sock_addr src, dst;
  /* The destination decides the family; the source (or its any-address) follows it. */
  if (get_args(env, info, 5, argv, "tcpConnect: (srcIp, srcPort, dstIp, dstPort, transparent)") < 0 ||
      get_addr(env, argv[2], argv[3], 0, &dst, "tcpConnect") < 0 || get_addr(env, argv[0], argv[1], dst.sa.sa_family, &src, "tcpConnect") < 0)
    return NULL;
  int unset = dst.sa.sa_family == AF_INET6 ? IN6_IS_ADDR_UNSPECIFIED(&dst.v6.sin6_addr) : dst.v4.sin_addr.s_addr == INADDR_ANY;
  if (unset || addr_port(&dst) == 0)
    return sa_throw(env, K_ARG, 0, "tcpConnect: a destination address and port are needed");
  int fd = bound_socket(&src, get_bool(env, argv[4]));
  if (fd < 0) return throw_sock(env, -fd, "binding an upstream socket to", &src);
  /* SIP messages are small and latency matters more than segment count. */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, &dst.sa, addr_len(&dst)) < 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return throw_sock(env, e, "connecting to", &dst);
  }
  NAPI_OK(napi_create_int32(env, fd, &res));
  return res;
}

napi_value tcp_init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
    { "tcpListen", NULL, js_tcp_listen, NULL, NULL, NULL, napi_default_jsproperty, NULL },
    { "tcpConnect", NULL, js_tcp_connect, NULL, NULL, NULL, napi_default_jsproperty, NULL },
  };
  if (napi_define_properties(env, exports, sizeof d / sizeof d[0], d) != napi_ok) return NULL;
  return exports;
}
