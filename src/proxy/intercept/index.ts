// Transparent interception: the iptables NAT rules that send a pod's TCP through the proxy
// (`mutual proxy init`), and reading where a redirected connection was going (SO_ORIGINAL_DST).
// Owns no listener and no policy; the proxy's inbound/outbound pipelines call in here.

export {
  CHAIN_PREFIX,
  DEFAULT_ADMIN_PORT,
  DEFAULT_INBOUND_PORT,
  DEFAULT_OUTBOUND_PORT,
  DEFAULT_PROXY_UID,
  INBOUND_CHAIN,
  type InterceptRules,
  type IpFamily,
  installedChains,
  installRestoreInput,
  interceptRules,
  LOOPBACK_CIDR,
  OUTBOUND_CHAIN,
  type PortRange,
  parsePortList,
  parseSubnetList,
  subnetFamily,
  uninstallRestoreInput,
} from './iptables-rules.ts';
export { ipv6Twin, isNoIpv6Error } from './ipv6-twin.ts';
export {
  ADDON_PATH,
  isSelfDestination,
  loadOrigdstAddon,
  type OriginalDestination,
  originalDestination,
  readOriginalDestination,
} from './original-destination.ts';
export {
  createDualStackIptables,
  createIp6tables,
  createIptables,
  type DualStackInstall,
  type DualStackIptables,
  type InterceptPlan,
  IPV6_MODES,
  type Iptables,
  type Ipv6Mode,
  type Ipv6Support,
  installDualStack,
  installInterceptRules,
  ipv6Support,
  planDualStackInstall,
  planDualStackUninstall,
  planInstall,
  planUninstall,
  uninstallDualStack,
  uninstallInterceptRules,
} from './proxy-init.ts';
