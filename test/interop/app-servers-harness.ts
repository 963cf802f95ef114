// Real app servers nobody here wrote (gunicorn, uvicorn, aiohttp, Go net/http and h2c, the JDK's
// HttpServer, Apache httpd with mod_http2, nginx), started at their default settings from the
// fixtures in test/interop/fixtures/app-servers/, and a sidecar pair in front of them: the client
// sidecar has one explicit upstream per app (client → outbound → mTLS → inbound → app), so a test
// asks the same thing directly and through the pair and compares what comes back.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestPki, type ProxyProcess, startProxyProcess } from '../../src/testing/mesh-pki.ts';

/** Debian's python3, where python3-aiohttp, -uvicorn and friends install (not a pyenv one on PATH). */
export const PYTHON = '/usr/bin/python3';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}
export const FIXTURES = join(repoRoot(), 'test', 'interop', 'fixtures', 'app-servers');

export function works(command: string, args: string[], env: NodeJS.ProcessEnv = {}): boolean {
  try {
    execFileSync(command, args, { stdio: 'pipe', env: { ...process.env, ...env } });
    return true;
  } catch {
    return false;
  }
}
const pythonHas = (module: string) => works(PYTHON, ['-c', `import ${module}`]);
/** GOPATH mode over Debian's packaged Go sources: offline, no module download. */
const GOPATH_ENV = { GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOPROXY: 'off' };

export type AppServerKind =
  | 'gunicorn'
  | 'gunicorn-max-requests'
  | 'gunicorn-gthread'
  | 'uvicorn'
  | 'aiohttp'
  | 'go'
  | 'go-h2c'
  | 'java'
  | 'apache'
  | 'nginx';

/** Why a server cannot run here (naming the Debian package to install), or false. */
export function missing(kind: AppServerKind): string | false {
  const needs = (ok: boolean, what: string) => (ok ? false : `needs ${what}`);
  switch (kind) {
    case 'gunicorn':
    case 'gunicorn-max-requests':
    case 'gunicorn-gthread':
      return needs(works('gunicorn', ['--version']), 'gunicorn (apt-get install gunicorn)');
    case 'uvicorn':
      return needs(pythonHas('uvicorn, h11'), `${PYTHON} with uvicorn (apt-get install python3-uvicorn)`);
    case 'aiohttp':
      return needs(pythonHas('aiohttp'), `${PYTHON} with aiohttp (apt-get install python3-aiohttp)`);
    case 'go':
      return needs(works('go', ['version']), 'go (apt-get install golang-go)');
    case 'go-h2c':
      return needs(
        works('go', ['list', 'golang.org/x/net/http2/h2c'], GOPATH_ENV),
        'go and golang.org/x/net/http2/h2c (apt-get install golang-go golang-golang-x-net-dev)',
      );
    case 'java':
      return needs(works('java', ['-version']), 'java (apt-get install openjdk-17-jdk-headless)');
    case 'apache':
      return needs(
        works('apache2', ['-v']) && existsSync('/usr/lib/apache2/modules/mod_http2.so'),
        'apache2 with mod_http2 (apt-get install apache2)',
      );
    case 'nginx':
      return needs(works('nginx', ['-v']), 'nginx (apt-get install nginx)');
  }
}

/** A port nothing listens on now (servers that cannot bind port 0 and say which they got). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once `port` accepts a connection; throws with the server's output after 20 s. */
async function untilListening(port: number, child: ChildProcess, output: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) break;
    const isUp = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (isUp) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`the app server did not listen on ${port}:\n${output()}`);
}

export interface AppServer {
  readonly kind: AppServerKind;
  readonly port: number;
  output(): string;
  stop(): Promise<void>;
}

/** The Go fixture `name`.go built into `dir`. */
async function buildGo(dir: string, name: string): Promise<string> {
  const binary = join(dir, name);
  execFileSync('go', ['build', '-o', binary, join(FIXTURES, `${name}.go`)], {
    cwd: dir,
    stdio: 'pipe',
    env: { ...process.env, ...GOPATH_ENV, GOCACHE: join(dir, 'go-cache') },
  });
  return binary;
}

/** Static files Apache and nginx serve, the same bodies the scripted servers answer. */
async function writeSite(root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  const files = {
    hello: 'hello\n',
    etag: 'tagged\n',
    many: 'many\n',
    close: 'closing\n',
    cookies: 'cookies\n',
  };
  // Dated an hour back: Apache gives a file changed within the last second a weak ETag (W/"…")
  // and the same file a strong one a moment later, so direct and through-the-pair answers differed.
  const anHourAgo = new Date(Date.now() - 3_600_000);
  for (const [name, text] of Object.entries(files)) {
    await writeFile(join(root, name), text);
    await utimes(join(root, name), anHourAgo, anHourAgo);
  }
}

/** Starts `kind` in `dir` (its own subdirectory) on a free port at its default settings. */
export async function startAppServer(kind: AppServerKind, dir: string): Promise<AppServer> {
  const home = join(dir, kind);
  await mkdir(home, { recursive: true });
  const port = await freePort();
  const fill = async (template: string, target: string) => {
    const text = (await readFile(join(FIXTURES, template), 'utf8'))
      .replaceAll('@DIR@', home)
      .replaceAll('@PORT@', String(port));
    await writeFile(target, text);
    return target;
  };
  let command: string;
  let args: string[];
  switch (kind) {
    case 'gunicorn':
      [command, args] = ['gunicorn', ['-b', `127.0.0.1:${port}`, 'apps:wsgi']];
      break;
    case 'gunicorn-max-requests':
      [command, args] = ['gunicorn', ['--max-requests', '100', '-b', `127.0.0.1:${port}`, 'apps:wsgi']];
      break;
    case 'gunicorn-gthread':
      [command, args] = ['gunicorn', ['--threads', '4', '-b', `127.0.0.1:${port}`, 'apps:wsgi']];
      break;
    case 'uvicorn':
      [command, args] = [PYTHON, ['-m', 'uvicorn', '--host', '127.0.0.1', '--port', `${port}`, 'apps:asgi']];
      break;
    case 'aiohttp':
      [command, args] = [PYTHON, ['apps.py', `${port}`]];
      break;
    case 'go':
      [command, args] = [await buildGo(home, 'app'), [`${port}`]];
      break;
    case 'go-h2c':
      [command, args] = [await buildGo(home, 'h2c_app'), [`${port}`]];
      break;
    case 'java':
      [command, args] = ['java', [join(FIXTURES, 'AppServer.java'), `${port}`]];
      break;
    case 'apache':
      await writeSite(join(home, 'htdocs'));
      await cp(join(FIXTURES, 'echo.cgi'), join(home, 'echo.cgi'));
      [command, args] = [
        'apache2',
        ['-f', await fill('apache2.conf', join(home, 'httpd.conf')), '-DFOREGROUND'],
      ];
      break;
    case 'nginx':
      await writeSite(join(home, 'htdocs'));
      [command, args] = ['nginx', ['-c', await fill('nginx.conf', join(home, 'nginx.conf'))]];
      break;
  }
  // No __pycache__ in the fixtures folder.
  const env = { ...process.env, PYTHONDONTWRITEBYTECODE: '1' };
  const child = spawn(command, args, { cwd: FIXTURES, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await untilListening(port, child, () => output);
  return {
    kind,
    port,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface AppPair {
  readonly server: ProxyProcess;
  readonly client: ProxyProcess;
  /** The client sidecar's plain-text upstream port in front of `appPort`. */
  via(appPort: number): number;
  stop(): Promise<void>;
}

/** A STRICT server sidecar with one inbound per app port, and a client sidecar with one upstream per inbound. */
export async function startAppPair(dir: string, appPorts: readonly number[]): Promise<AppPair> {
  const pki = await createTestPki(join(dir, 'pki'));
  const emoji = await pki.workload('emoji');
  const web = await pki.workload('web');
  const server = await startProxyProcess([
    ...['--cert', emoji.certFile, '--key', emoji.keyFile, '--bundle', emoji.bundleFile],
    ...appPorts.flatMap((port) => ['--inbound', `127.0.0.1:0=${port}`]),
    ...['--mode', 'STRICT', '--admin-listen', '127.0.0.1:0'],
  ]);
  let client: ProxyProcess;
  try {
    client = await startProxyProcess([
      ...['--cert', web.certFile, '--key', web.keyFile, '--bundle', web.bundleFile],
      ...server.inbound.flatMap(({ port }) => [
        '--upstream',
        `127.0.0.1:0=${emoji.spiffeId}@127.0.0.1:${port}`,
      ]),
      ...['--admin-listen', '127.0.0.1:0'],
    ]);
  } catch (error) {
    await server.stop();
    throw error;
  }
  await Promise.all([server.untilReady(), client.untilReady()]);
  return {
    server,
    client,
    via: (appPort) => client.outbound[appPorts.indexOf(appPort)]!.port,
    stop: async () => void (await Promise.all([server.stop(), client.stop()])),
  };
}

export interface AppServerSet {
  /** The temp directory everything runs in (removed by stop). */
  readonly dir: string;
  /** A 1 MB file of random bytes under `dir`, for uploads. */
  readonly upload: string;
  /** The servers of `kinds` installed here, started. */
  readonly servers: ReadonlyMap<AppServerKind, AppServer>;
  /** In front of every started server; none when no kind is installed. */
  readonly pair: AppPair | undefined;
  stop(): Promise<void>;
}

/** Starts each installed server of `kinds` in a temp directory named `prefix…`, and a pair in front of them. */
export async function startAppServerSet(
  kinds: readonly AppServerKind[],
  prefix: string,
): Promise<AppServerSet> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const upload = join(dir, 'upload.bin');
  await writeFile(upload, randomBytes(1_000_000));
  const started = await Promise.all(
    kinds.filter((kind) => !missing(kind)).map((kind) => startAppServer(kind, dir)),
  );
  const servers = new Map(started.map((server) => [server.kind, server]));
  const pair = started.length
    ? await startAppPair(
        dir,
        started.map((server) => server.port),
      )
    : undefined;
  return {
    dir,
    upload,
    servers,
    pair,
    stop: async () => {
      await pair?.stop();
      await Promise.all(started.map((server) => server.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
