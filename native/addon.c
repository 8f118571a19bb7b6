/* sipalg native addon: entry point and shared helpers. */
#include "common.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

napi_value sa_throw(napi_env env, const char *kind, int err, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_value m, e, v;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) != napi_ok) return NULL;
  if (napi_create_error(env, NULL, m, &e) != napi_ok) return NULL;
  napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "kind", v);
  napi_create_int32(env, err, &v);
  napi_set_named_property(env, e, "errno", v);
  napi_create_string_utf8(env, err ? strerror(err) : msg, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "why", v);
  napi_throw(env, e);
  return NULL;
}

/* CAP_NET_ADMIN (bit 12) in the effective set, read from /proc/self/status. */
void *sa_handle(napi_env env, napi_value v, uint32_t magic, const char *what) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, &p) != napi_ok || !p || *(uint32_t *)p != magic) {
    sa_throw(env, K_ARG, 0, "not %s", what);
    return NULL;
  }
  return p;
}

int sa_has_cap_net_admin(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 1; /* unknown: assume yes, let the kernel decide */
  char line[256];
  int ok = 1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "CapEff:", 7) == 0) {
      unsigned long long caps = strtoull(line + 7, NULL, 16);
      ok = (caps >> 12) & 1;
      break;
    }
  }
  fclose(f);
  return ok;
}

/* Try the *FORCE variant (root, ignores rmem_max/wmem_max), fall back to the plain one.
 * Returns the size the kernel reports afterwards (doubled by the kernel, as usual). */
int sa_set_bufsize(int fd, int optforce, int opt, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, optforce, &bytes, sizeof bytes) < 0)
    setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
  int got = 0;
  socklen_t l = sizeof got;
  getsockopt(fd, SOL_SOCKET, opt, &got, &l);
  return got;
}

static napi_value Init(napi_env env, napi_value exports) {
  if (!nfq_init(env, exports)) return NULL;
  if (!nft_init(env, exports)) return NULL;
  if (!ct_init(env, exports)) return NULL;
  if (!csum_init(env, exports)) return NULL;
  if (!tcp_init(env, exports)) return NULL;
  if (!notify_init(env, exports)) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
