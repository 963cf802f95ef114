// originalDst(fd, family 4|6) -> { address, port, family }
//
// Reads SO_ORIGINAL_DST from a socket accepted after an iptables REDIRECT: the address and port
// the peer dialled before NAT rewrote it. Linux only. Errors are thrown with code "E<errno>"
// (e.g. E88 = ENOTSOCK for a bad fd, E2 = ENOENT when conntrack has no entry for the socket).
// A connection that was not redirected reports its own local address: callers must check for
// that loop. Plain Node-API (no node-addon-api), NAPI_VERSION 8.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <node_api.h>

#define CHECK(call)                                   \
  do {                                                \
    if ((call) != napi_ok) {                          \
      napi_throw_error(env, "EADDON", #call " failed"); \
      return NULL;                                    \
    }                                                 \
  } while (0)

static napi_value throw_errno(napi_env env, int error) {
  char code[16];
  snprintf(code, sizeof code, "E%d", error);
  napi_throw_error(env, code, strerror(error));
  return NULL;
}

static napi_value make_result(napi_env env, const char *address, int port, const char *family) {
  napi_value result, value;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &value));
  CHECK(napi_set_named_property(env, result, "address", value));
  CHECK(napi_create_int32(env, port, &value));
  CHECK(napi_set_named_property(env, result, "port", value));
  CHECK(napi_create_string_utf8(env, family, NAPI_AUTO_LENGTH, &value));
  CHECK(napi_set_named_property(env, result, "family", value));
  return result;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1, family = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &family) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "originalDst(fd, family) takes two integers");
    return NULL;
  }
  char address[INET6_ADDRSTRLEN];
  if (family == 4) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;  // the kernel insists on exactly sizeof(struct sockaddr_in)
    memset(&sa, 0, sizeof sa);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) != 0) return throw_errno(env, errno);
    if (inet_ntop(AF_INET, &sa.sin_addr, address, sizeof address) == NULL) return throw_errno(env, errno);
    return make_result(env, address, ntohs(sa.sin_port), "IPv4");
  }
  if (family == 6) {
    struct sockaddr_in6 sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sa, &len) != 0) return throw_errno(env, errno);
    if (inet_ntop(AF_INET6, &sa.sin6_addr, address, sizeof address) == NULL) return throw_errno(env, errno);
    return make_result(env, address, ntohs(sa.sin6_port), "IPv6");
  }
  napi_throw_range_error(env, "EINVAL", "originalDst: family must be 4 or 6");
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "originalDst", fn));
  return exports;
}
