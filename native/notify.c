/*
 * systemd's notification protocol (sd_notify): one datagram on the AF_UNIX socket named by
 * $NOTIFY_SOCKET ("@name" = abstract namespace). Node has no unix datagram sockets, and linking
 * libsystemd for one sendto would add a dependency to every machine, systemd or not.
 *
 * sdNotify(path, text) -> true when sent; throws (kind SOCKET) when the socket is unusable.
 */
#include "common.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static napi_value js_sd_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t pl = 0;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], sa.sun_path, sizeof sa.sun_path, &pl) != napi_ok ||
      pl < 2 || pl >= sizeof sa.sun_path - 1 || (sa.sun_path[0] != '/' && sa.sun_path[0] != '@'))
    return sa_throw(env, K_ARG, 0, "sdNotify: socket path must be an absolute path or @abstract name");
  char text[512];
  size_t tl = 0;
  if (napi_get_value_string_utf8(env, argv[1], text, sizeof text, &tl) != napi_ok || tl == 0 || tl >= sizeof text - 1)
    return sa_throw(env, K_ARG, 0, "sdNotify: text must be 1..510 bytes");
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return sa_throw(env, K_SOCKET, errno, "sdNotify: socket");
  ssize_t r = sendto(fd, text, tl, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
  int err = errno;
  close(fd);
  if (r < 0) return sa_throw(env, K_SOCKET, err, "sdNotify: sendto NOTIFY_SOCKET");
  napi_value ok;
  napi_get_boolean(env, 1, &ok);
  return ok;
}

napi_value notify_init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
    { "sdNotify", NULL, js_sd_notify, NULL, NULL, NULL, napi_default_jsproperty, NULL },
  };
  if (napi_define_properties(env, exports, 1, d) != napi_ok) return NULL;
  return exports;
}
