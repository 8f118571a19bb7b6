/*
 * TCP sockets Node's `net` cannot make: IP_TRANSPARENT, needed by the SIP/TCP splice
 * (src/netfilter/transparent.ts, docs/tcp-splice.md).
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

/* Reads an IPv4 dotted quad (or "" / null = INADDR_ANY) and a port from two JS values. */
static int get_addr(napi_env env, napi_value ip, napi_value port, struct sockaddr_in *sa, const char *fn) {
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  napi_valuetype t;
  napi_typeof(env, ip, &t);
  if (t == napi_string) {
    char buf[64];
    size_t n = 0;
    if (napi_get_value_string_utf8(env, ip, buf, sizeof buf, &n) != napi_ok) return -1;
    if (n > 0 && inet_pton(AF_INET, buf, &sa->sin_addr) != 1) {
      sa_throw(env, K_ARG, 0, "%s: not an IPv4 address: %s", fn, buf);
      return -1;
    }
  } else if (t != napi_null && t != napi_undefined) {
    sa_throw(env, K_ARG, 0, "%s: address must be a string", fn);
    return -1;
  }
  uint32_t p = 0;
  if (napi_get_value_uint32(env, port, &p) != napi_ok || p > 65535) {
    sa_throw(env, K_ARG, 0, "%s: port must be 0..65535", fn);
    return -1;
  }
  sa->sin_port = htons((uint16_t)p);
  return 0;
}

/* A TCP socket with SO_REUSEADDR and (when asked) IP_TRANSPARENT, bound to sa; -errno on failure. */
static int bound_socket(const struct sockaddr_in *sa, int transparent) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      (transparent && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) < 0) ||
      bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static napi_value throw_sock(napi_env env, int err, const char *what, const struct sockaddr_in *sa) {
  char ip[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
  if (err == EPERM && !sa_has_cap_net_admin()) return sa_throw(env, K_NOT_ROOT, err, "%s %s:%u", what, ip, ntohs(sa->sin_port));
  return sa_throw(env, K_SOCKET, err, "%s %s:%u", what, ip, ntohs(sa->sin_port));
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
  struct sockaddr_in sa;
  if (get_args(env, info, 4, argv, "tcpListen: (ip, port, backlog, transparent)") < 0 ||
      get_addr(env, argv[0], argv[1], &sa, "tcpListen") < 0)
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
  struct sockaddr_in src, dst;
  if (get_args(env, info, 5, argv, "tcpConnect: (srcIp, srcPort, dstIp, dstPort, transparent)") < 0 ||
      get_addr(env, argv[0], argv[1], &src, "tcpConnect") < 0 || get_addr(env, argv[2], argv[3], &dst, "tcpConnect") < 0)
    return NULL;
  if (dst.sin_addr.s_addr == INADDR_ANY || dst.sin_port == 0)
    return sa_throw(env, K_ARG, 0, "tcpConnect: a destination address and port are needed");
  int fd = bound_socket(&src, get_bool(env, argv[4]));
  if (fd < 0) return throw_sock(env, -fd, "binding an upstream socket to", &src);
  /* SIP messages are small and latency matters more than segment count. */
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (const struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
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
