// originalDst(fd, family 4|6|0) -> { address, port, family }
//
// Reads the original destination from a socket accepted after an iptables or ip6tables REDIRECT:
// the address and port the peer dialled before NAT rewrote it. Family 4 asks SO_ORIGINAL_DST at
// SOL_IP (a sockaddr_in; also right for an IPv4-mapped connection on an AF_INET6 socket), family 6
// asks IP6T_SO_ORIGINAL_DST at SOL_IPV6 (a sockaddr_in6; a link-local address gets "%ifname"),
// family 0 (or omitted) picks by the socket's own local address (getsockname). Linux only. Errors
// are thrown with code "E<errno>" (e.g. E88 = ENOTSOCK for a bad fd, E2 = ENOENT when conntrack
// has no entry for the socket). A connection that was not redirected reports its own local
// address: callers must check for that loop. Plain Node-API (no node-addon-api), NAPI_VERSION 8:
// ABI-stable, so one build serves every Node version from 20 on.
// net/if.h before the linux/ headers: glibc's and the kernel's if.h then agree on IFF_*.
#include <net/if.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

// The family whose NAT rewrote the connection: 6 for a native IPv6 socket, 4 for IPv4 and for an
// IPv4-mapped address (::ffff:a.b.c.d) on a dual-stack AF_INET6 socket; -1 with errno set.
static int socket_family(int fd) {
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) return -1;
  if (local.ss_family == AF_INET) return 4;
  if (local.ss_family == AF_INET6) {
    return IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr) ? 4 : 6;
  }
  errno = EAFNOSUPPORT;
  return -1;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd = -1, family = 0;
  napi_valuetype family_type = napi_undefined;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc >= 2) CHECK(napi_typeof(env, argv[1], &family_type));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      (family_type != napi_undefined && napi_get_value_int32(env, argv[1], &family) != napi_ok)) {
    napi_throw_type_error(env, "EINVAL", "originalDst(fd, family) takes integers: a descriptor and 4, 6 or 0");
    return NULL;
  }
  if (family == 0 && (family = socket_family(fd)) < 0) return throw_errno(env, errno);
  // Room for an IPv6 address, "%" and an interface name.
  char address[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
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
    char name[IF_NAMESIZE];
    if (sa.sin6_scope_id != 0 && if_indextoname(sa.sin6_scope_id, name) != NULL) {
      size_t used = strlen(address);
      snprintf(address + used, sizeof address - used, "%%%s", name);
    }
    return make_result(env, address, ntohs(sa.sin6_port), "IPv6");
  }
  napi_throw_range_error(env, "EINVAL", "originalDst: family must be 4, 6 or 0 (from the socket)");
  return NULL;
}

// TCP_INFO's retransmission count: RTO timeouts in a row for the oldest unacknowledged segment.
// It grows only while sent data goes unacknowledged (a vanished peer), never while a live peer
// holds its window at 0 (those are window probes, which it answers). Node cannot read it.
static napi_value tcp_retransmits(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t fd = -1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "tcpRetransmits(fd) takes an integer descriptor");
    return NULL;
  }
  struct tcp_info tcp;
  socklen_t len = sizeof tcp;
  memset(&tcp, 0, sizeof tcp);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcp, &len) != 0) return throw_errno(env, errno);
  CHECK(napi_create_uint32(env, tcp.tcpi_retransmits, &result));
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "originalDst", fn));
  CHECK(napi_create_function(env, "tcpRetransmits", NAPI_AUTO_LENGTH, tcp_retransmits, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "tcpRetransmits", fn));
  return exports;
}
