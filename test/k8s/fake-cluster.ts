import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalServerPki } from '../../src/testing/local-server-pki.ts';

const TOKEN = 'mutual-check-token';

export interface FakeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface FakeCluster {
  readonly url: string;
  /** Writes a kubeconfig for this server (CA data, token) and returns its path. */
  kubeconfig(): Promise<string>;
  /** Adds or replaces objects (by kind, namespace and name). */
  put(...objects: FakeObject[]): void;
  remove(object: FakeObject): void;
  /** Forgets every object. */
  clear(): void;
  /** The time the Date header says; the real clock when not set. */
  setDate(atMs: number | undefined): void;
  /** The gitVersion /version answers (v1.31.0 when not set). */
  setVersion(gitVersion: string | undefined): void;
  close(): Promise<void>;
}

/** `/api/v1/namespaces/shop/pods/web-1`, `/apis/apps/v1/namespaces/mutual-system/deployments/x` … */
export function objectPath(object: FakeObject): string {
  const group = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const ns = object.metadata.namespace ? `/namespaces/${object.metadata.namespace}` : '';
  return `${group}${ns}/${object.kind.toLowerCase()}s/${object.metadata.name}`;
}

/** The collections an object is listed in: its namespace's and, when namespaced, the cluster-wide one. */
function collectionsOf(path: string): string[] {
  const collection = path.slice(0, path.lastIndexOf('/'));
  const clusterWide = collection.replace(/\/namespaces\/[^/]+\//, '/');
  return clusterWide === collection ? [collection] : [collection, clusterWide];
}

export async function startFakeCluster(): Promise<FakeCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'mutual-fake-cluster-'));
  const { caPem, keyPem, certPem } = await createLocalServerPki(dir, 'fake-cluster-ca', 'kube-apiserver');
  const objects = new Map<string, FakeObject>();
  let dateMs: number | undefined;
  let gitVersion: string | undefined;

  const server = createServer({ key: keyPem, cert: certPem }, (request, response) => {
    const path = new URL(request.url ?? '/', 'https://kube').pathname;
    response.setHeader('date', new Date(dateMs ?? Date.now()).toUTCString());
    const reply = (status: number, body: object) =>
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const status = (code: number, reason: string, message: string) =>
      reply(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code });
    if (request.headers.authorization !== `Bearer ${TOKEN}`)
      return status(401, 'Unauthorized', 'Unauthorized');
    if (request.method !== 'GET') return status(405, 'MethodNotAllowed', 'read only');
    if (path === '/version') {
      const [major, minor] = (gitVersion ?? 'v1.31.0').replace(/^v/, '').split('.');
      return reply(200, { major, minor, gitVersion: gitVersion ?? 'v1.31.0', platform: 'linux/amd64' });
    }
    const object = objects.get(path);
    if (object) return reply(200, object);
    const items = [...objects.entries()]
      .filter(([objectPath]) => collectionsOf(objectPath).includes(path))
      .map(([, item]) => item);
    // A collection of a kind we hold, or one we know exists, answers a List (possibly empty).
    if (items.length > 0 || /\/(pods|namespaces)$/.test(path)) {
      return reply(200, { kind: 'List', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items });
    }
    const name = path.slice(path.lastIndexOf('/') + 1);
    return status(404, 'NotFound', `${name} not found`);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    async kubeconfig() {
      const file = join(dir, 'kubeconfig');
      await writeFile(
        file,
        `apiVersion: v1
kind: Config
current-context: fake
contexts:
  - name: fake
    context: { cluster: fake, user: admin }
clusters:
  - name: fake
    cluster:
      server: ${url}
      certificate-authority-data: ${Buffer.from(caPem).toString('base64')}
users:
  - name: admin
    user: { token: ${TOKEN} }
`,
      );
      return file;
    },
    put(...added) {
      for (const object of added) objects.set(objectPath(object), structuredClone(object));
    },
    remove(object) {
      objects.delete(objectPath(object));
    },
    clear() {
      objects.clear();
    },
    setDate(atMs) {
      dateMs = atMs;
    },
    setVersion(version) {
      gitVersion = version;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
