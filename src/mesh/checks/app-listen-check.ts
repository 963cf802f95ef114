// Whether each app of a loopback mesh listens on loopback only, as `mutual up` warns once at start:
// an app on 0.0.0.0 (python3 -m http.server's default), :: or a machine address is reachable from
// other machines in plain text, past its sidecar. Reads the app's sockets through mesh's public face.
import { isLoopbackIp } from '../../ip/index.ts';
import {
  formatSocket,
  isRunning,
  type ListeningSocket,
  listeningSocketsByGroup,
  type RuntimeService,
} from '../index.ts';
import { type Check, type CheckResult, fail, ok, skip } from './types.ts';

export const appListenCheck: Check = {
  description: 'apps listen only where their sidecar guards them',
  hint: "an app listening on 0.0.0.0, :: or another address than loopback is reachable from other machines in plain text, past its sidecar's mTLS and policy",
  fix: 'make the app listen on 127.0.0.1:$PORT only (its bind or host setting), e.g. `python3 -m http.server $PORT --bind 127.0.0.1`, then restart the mesh: `mutual down && mutual up -f mesh.yaml`',
  severity: 'error',
  async run(context) {
    const runtime = context.runtime;
    if (!runtime) return skip('no mesh is running');
    // In a pod, 0.0.0.0 is the pod's own interface and its iptables send inbound through the sidecar.
    if (runtime.isolation === 'netns')
      return skip("netns isolation: each pod's iptables send inbound traffic through its sidecar");
    // An app that is gone listens nowhere: "app is running" says so.
    const running = runtime.services.filter((service) => service.app.pid > 0 && isRunning(service.app));
    const socketsByGroup = await listeningSocketsByGroup(running.map((service) => service.app.pid));
    return runtime.services.map((service) =>
      running.includes(service)
        ? appListens(service, socketsByGroup.get(service.app.pid) ?? [])
        : skip('the app is not running (see "app is running")', service.name),
    );
  },
};

function appListens(service: RuntimeService, sockets: readonly ListeningSocket[]): CheckResult {
  const exposed = sockets.filter((socket) => !isLoopbackIp(socket.address));
  if (exposed.length === 0) return ok('', service.name);
  return fail(
    `listens on ${exposed.map((socket) => `${formatSocket(socket)}${portNote(service, socket)}`).join(', ')}: other machines reach it there in plain text, past its sidecar`,
    service.name,
  );
}

/** Which port of mesh.yaml a socket serves, as the user declared it. */
function portNote(service: RuntimeService, socket: ListeningSocket): string {
  const declared = service.ports.find((port) => port.appPort === socket.port);
  return declared
    ? ` (its $PORT for port ${declared.port})`
    : ' (no port of mesh.yaml: no sidecar in front of it)';
}
