// A real sidecar pair for raw HTTP/1 tests: the server sidecar (emoji) in front of two apps, one
// on a STRICT port and one on a PERMISSIVE port, and a client sidecar (web) with an upstream to
// the STRICT port. A test writes raw bytes three ways (`Via`) and reads what comes back.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import {
  createTestPki,
  type ProxyProcess,
  readTlsCredentials,
  startProxyProcess,
  type WorkloadFiles,
} from '../../src/testing/mesh-pki.ts';

/** mTLS to the STRICT inbound as web; plaintext to the PERMISSIVE inbound; plain to web's outbound. */
export type Via = 'mtls' | 'plaintext' | 'outbound';
export const VIAS: Via[] = ['mtls', 'plaintext', 'outbound'];

/** Sent in order: a string is written, a number waits that many ms, a function waits until it holds for what came back (3 s at most). */
export type ExchangePart = string | number | ((text: string) => boolean);

export interface Http1Pair {
  /** The pair's temp directory (removed by stop). */
  readonly dir: string;
  /** The client workload's files (its SPIFFE ID, certificate and key). */
  readonly web: WorkloadFiles;
  readonly server: ProxyProcess;
  readonly client: ProxyProcess;
  open(via: Via): Promise<Socket>;
  /** Sends `parts` and collects the answer until the sidecar closes the connection (8 s at most). */
  exchange(via: Via, parts: ExchangePart[]): Promise<string>;
  stop(): Promise<void>;
}

export interface Http1PairOptions {
  /** Temp directory name prefix. */
  readonly name: string;
  /** Makes one app (called twice: the STRICT port's and the PERMISSIVE port's). */
  readonly createApp: () => Server;
  /** Policy files (name → YAML) for the server sidecar, labelled app=emoji. */
  readonly policies?: Record<string, string>;
}

export async function startHttp1Pair(options: Http1PairOptions): Promise<Http1Pair> {
  const dir = await mkdtemp(join(tmpdir(), options.name));
  const apps: Server[] = [];
  let server: ProxyProcess | undefined;
  let client: ProxyProcess | undefined;
  const stop = async () => {
    await Promise.all([server?.stop(), client?.stop()]);
    for (const app of apps) {
      app.close();
      app.closeAllConnections();
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const policyArgs: string[] = [];
    if (options.policies) {
      const policyDir = join(dir, 'policies');
      await mkdir(policyDir);
      for (const [name, yaml] of Object.entries(options.policies))
        await writeFile(join(policyDir, name), yaml);
      policyArgs.push('--policy-dir', policyDir, '--label', 'app=emoji');
    }
    const pki = await createTestPki(join(dir, 'pki'));
    const emoji = await pki.workload('emoji');
    const web = await pki.workload('web');
    const { key, cert, ca } = await readTlsCredentials(web);
    const ports: number[] = [];
    for (let i = 0; i < 2; i++) {
      const app = options.createApp();
      apps.push(app);
      await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
      ports.push((app.address() as AddressInfo).port);
    }
    server = await startProxyProcess([
      ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
      ...['--inbound', `127.0.0.1:0=${ports[0]}`, '--inbound', `127.0.0.1:0=${ports[1]}`],
      ...['--mode', 'STRICT', '--port-mode', `${ports[1]}=PERMISSIVE`, '--admin-listen', '127.0.0.1:0'],
      ...policyArgs,
    ]);
    client = await startProxyProcess([
      ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
      ...['--upstream', `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${server.inbound[0]!.port}`],
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
    await Promise.all([server.untilReady(), client.untilReady()]);
    const inbound = server;
    const outbound = client;

    const open = (via: Via): Promise<Socket> =>
      new Promise((resolve, reject) => {
        if (via === 'mtls') {
          const socket = tlsConnect({
            ...{ host: '127.0.0.1', port: inbound.inbound[0]!.port, key, cert, ca },
            checkServerIdentity: () => undefined,
          });
          socket.once('secureConnect', () => resolve(socket)).once('error', reject);
          return;
        }
        const port = via === 'plaintext' ? inbound.inbound[1]!.port : outbound.outbound[0]!.port;
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => resolve(socket)).once('error', reject);
      });

    const exchange = async (via: Via, parts: ExchangePart[]): Promise<string> => {
      const socket = await open(via);
      let text = '';
      let onData = () => {};
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        onData();
      });
      const closed = new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.on('error', () => {});
      });
      const timer = setTimeout(() => socket.destroy(), 8000);
      try {
        for (const part of parts) {
          if (typeof part === 'string') socket.write(part);
          else if (typeof part === 'number') await new Promise((resolve) => setTimeout(resolve, part));
          else if (!part(text)) {
            await new Promise<void>((resolve, reject) => {
              const waited = setTimeout(
                () => reject(new Error(`no such answer in 3 s; got ${JSON.stringify(text)}`)),
                3000,
              );
              onData = () => {
                if (!part(text)) return;
                clearTimeout(waited);
                resolve();
              };
            });
          }
        }
      } catch (error) {
        clearTimeout(timer);
        socket.destroy();
        throw error;
      }
      await closed;
      clearTimeout(timer);
      return text;
    };

    return { dir, web, server: inbound, client: outbound, open, exchange, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** The status lines of every answer in `text`. */
export const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => match[1]);
