import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalServerPki } from '../../src/testing/local-server-pki.ts';

export const TOKEN = 'destination-sa-token';

const KINDS: Record<string, { kind: string; apiVersion: string }> = {
  '/api/v1/pods': { kind: 'Pod', apiVersion: 'v1' },
  '/api/v1/services': { kind: 'Service', apiVersion: 'v1' },
  '/apis/discovery.k8s.io/v1/endpointslices': { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
  ...Object.fromEntries(
    ['security.mutual.dev/v1', 'security.istio.io/v1', 'security.istio.io/v1beta1'].flatMap((apiVersion) =>
      ['PeerAuthentication', 'AuthorizationPolicy'].map((kind) => [
        `/apis/${apiVersion}/${kind.toLowerCase()}s`,
        { kind, apiVersion },
      ]),
    ),
  ),
};

interface StoredEvent {
  readonly rv: number;
  readonly line: string;
}

export interface FakeRequest {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly authorization: string | undefined;
}

export interface FakeKubeApi {
  readonly url: string;
  readonly caPem: string;
  readonly requests: FakeRequest[];
  /** Writes a kubeconfig for this server (CA data, token) and returns its path. */
  kubeconfig(): Promise<string>;
  add(path: string, object: any): void;
  modify(path: string, object: any): void;
  remove(path: string, namespace: string, name: string): void;
  /** Sends a BOOKMARK with the current resourceVersion to the open watches of `path`. */
  bookmark(path: string): string;
  /** Forgets history: watches from older versions get 410 Gone. Changes made meanwhile are only in a relist. */
  compact(): void;
  /** Ends the open watches of `path` cleanly (as at timeoutSeconds), or cuts their connections. */
  endWatches(path: string, how: 'end' | 'cut'): void;
  openWatches(path: string): number;
  lists(path: string): number;
  /** Answer 404 for `path` (its CRD uninstalled; open watches are cut), or serve it again. */
  setAbsent(path: string, isAbsent: boolean): void;
  close(): Promise<void>;
}

export async function startFakeKubeApi(): Promise<FakeKubeApi> {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-fake-kube-'));
  const { caPem, keyPem, certPem } = await createLocalServerPki(dir, 'fake-kube-ca', 'kube-apiserver');

  let rv = 100;
  let oldestRv = 0;
  const objects = new Map<string, Map<string, any>>(Object.keys(KINDS).map((path) => [path, new Map()]));
  const history = new Map<string, StoredEvent[]>(Object.keys(KINDS).map((path) => [path, []]));
  const watchers = new Map<string, Set<ServerResponse>>(Object.keys(KINDS).map((path) => [path, new Set()]));
  const listCounts = new Map<string, number>();
  const absent = new Set<string>();
  const requests: FakeRequest[] = [];

  const send = (path: string, type: string, object: unknown) => {
    rv++;
    const line = `${JSON.stringify({ type, object })}\n`;
    history.get(path)!.push({ rv, line });
    for (const response of watchers.get(path)!) response.write(line);
  };
  const stamp = (path: string, object: any) => ({
    ...KINDS[path],
    ...object,
    metadata: { ...object.metadata, resourceVersion: String(rv + 1) },
  });
  const key = (object: any) => `${object.metadata.namespace}/${object.metadata.name}`;

  const server: Server = createServer({ key: keyPem, cert: certPem }, (request, response) => {
    const url = new URL(request.url ?? '/', 'https://kube');
    requests.push({
      path: url.pathname,
      query: url.searchParams,
      authorization: request.headers.authorization,
    });
    const reply = (status: number, body: object) =>
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const status = (code: number, reason: string, message: string) =>
      reply(code, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message,
        reason,
        code,
      });
    if (request.headers.authorization !== `Bearer ${TOKEN}`)
      return status(401, 'Unauthorized', 'Unauthorized');
    const store = absent.has(url.pathname) ? undefined : objects.get(url.pathname);
    if (!store || request.method !== 'GET') return status(404, 'NotFound', `${url.pathname} not found`);
    const kind = KINDS[url.pathname]!;
    if (url.searchParams.get('watch') === '1') {
      const from = Number(url.searchParams.get('resourceVersion'));
      if (from < oldestRv) {
        // What a real API server does: 200, then one ERROR event carrying a 410 Status.
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(
          `${JSON.stringify({
            type: 'ERROR',
            object: {
              kind: 'Status',
              apiVersion: 'v1',
              status: 'Failure',
              reason: 'Expired',
              code: 410,
              message: `too old resource version: ${from} (${oldestRv})`,
            },
          })}\n`,
        );
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      response.flushHeaders();
      for (const event of history.get(url.pathname)!) if (event.rv > from) response.write(event.line);
      watchers.get(url.pathname)!.add(response);
      response.once('close', () => watchers.get(url.pathname)!.delete(response));
      return;
    }
    listCounts.set(url.pathname, (listCounts.get(url.pathname) ?? 0) + 1);
    // Pages of at most 2, whatever the client asked: clients must follow `continue`.
    const limit = Math.min(Number(url.searchParams.get('limit') ?? 500), 2);
    const start = Number(url.searchParams.get('continue') ?? 0);
    const all = [...store.values()];
    const items = all.slice(start, start + limit);
    const more = start + limit < all.length;
    reply(200, {
      kind: `${kind.kind}List`,
      apiVersion: kind.apiVersion,
      metadata: { resourceVersion: String(rv), ...(more ? { continue: String(start + limit) } : {}) },
      items,
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    caPem,
    requests,
    async kubeconfig() {
      const file = join(dir, 'kubeconfig');
      await writeFile(
        file,
        `apiVersion: v1
kind: Config
current-context: fake
contexts:
  - name: fake
    context: { cluster: fake, user: destination }
clusters:
  - name: fake
    cluster:
      server: ${url}
      certificate-authority-data: ${Buffer.from(caPem).toString('base64')}
users:
  - name: destination
    user: { token: ${TOKEN} }
`,
      );
      return file;
    },
    add(path, object) {
      const stamped = stamp(path, object);
      objects.get(path)!.set(key(stamped), stamped);
      send(path, 'ADDED', stamped);
    },
    modify(path, object) {
      const stamped = stamp(path, object);
      objects.get(path)!.set(key(stamped), stamped);
      send(path, 'MODIFIED', stamped);
    },
    remove(path, namespace, name) {
      const old = objects.get(path)!.get(`${namespace}/${name}`);
      objects.get(path)!.delete(`${namespace}/${name}`);
      send(path, 'DELETED', stamp(path, old));
    },
    bookmark(path) {
      const version = String(rv);
      const line = `${JSON.stringify({ type: 'BOOKMARK', object: { ...KINDS[path], metadata: { resourceVersion: version } } })}\n`;
      for (const response of watchers.get(path)!) response.write(line);
      return version;
    },
    compact() {
      oldestRv = rv + 1;
      for (const events of history.values()) events.length = 0;
    },
    endWatches(path, how) {
      for (const response of watchers.get(path)!) {
        if (how === 'end') response.end();
        else response.socket?.destroy();
      }
      watchers.get(path)!.clear();
    },
    openWatches: (path) => watchers.get(path)!.size,
    lists: (path) => listCounts.get(path) ?? 0,
    setAbsent(path, isAbsent) {
      if (!isAbsent) {
        absent.delete(path);
        return;
      }
      absent.add(path);
      for (const response of watchers.get(path)!) response.socket?.destroy();
      watchers.get(path)!.clear();
    },
    async close() {
      for (const set of watchers.values()) for (const response of set) response.socket?.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
