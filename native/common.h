/* sipalg native addon: shared helpers. */
#ifndef SIPALG_COMMON_H
#define SIPALG_COMMON_H

#include <node_api.h>
#include <stdint.h>
#include <stddef.h>

/* Error kinds understood by src/netfilter/native.ts (mapped to SipalgError codes). */
#define K_NOT_ROOT   "NOT_ROOT"    /* E200 */
#define K_QUEUE_BUSY "QUEUE_BUSY"  /* E202 */
#define K_QUEUE_BIND "QUEUE_BIND"  /* E203 */
#define K_NFT        "NFT"         /* E204 */
#define K_CLOSED     "CLOSED"      /* use after close */
#define K_ARG        "ARG"         /* bad argument (TypeError-like) */
#define K_CT         "CT"          /* ctnetlink failure */
#define K_SOCKET     "SOCKET"      /* E207: a transparent TCP socket could not be made */

napi_value sa_throw(napi_env env, const char *kind, int err, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

int sa_has_cap_net_admin(void);

/* The C struct behind a handle created by this addon, checked by the magic number its first field
 * holds; NULL (with a JS exception pending) for anything else. */
void *sa_handle(napi_env env, napi_value v, uint32_t magic, const char *what);
int sa_set_bufsize(int fd, int optforce, int opt, int bytes);

#define NAPI_OK(call) do { if ((call) != napi_ok) return NULL; } while (0)

napi_value nfq_init(napi_env env, napi_value exports);
napi_value nft_init(napi_env env, napi_value exports);
napi_value ct_init(napi_env env, napi_value exports);
napi_value csum_init(napi_env env, napi_value exports);
napi_value tcp_init(napi_env env, napi_value exports);
napi_value notify_init(napi_env env, napi_value exports);

#endif
