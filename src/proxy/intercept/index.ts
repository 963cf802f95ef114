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
  installedChains,
  installRestoreInput,
  interceptRules,
  OUTBOUND_CHAIN,
  type PortRange,
  parsePortList,
  parseSubnetList,
  uninstallRestoreInput,
} from './iptables-rules.ts';
export {
  ADDON_PATH,
  isSelfDestination,
  loadOrigdstAddon,
  type OriginalDestination,
  originalDestination,
  readOriginalDestination,
} from './original-destination.ts';
export {
  createIptables,
  type InterceptPlan,
  type Iptables,
  installInterceptRules,
  planInstall,
  planUninstall,
  uninstallInterceptRules,
} from './proxy-init.ts';
