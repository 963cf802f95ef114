// The --state-dir flag that advice (check, edges, identity, up) prints must work when pasted into a
// shell, whatever the directory is called.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import type { MeshRuntime } from '../mesh/index.ts';
import { DEFAULT_MESH_STATE_DIR, renderWhereToLook, shellQuote, stateFlagOf } from './up-command.ts';

test('stateFlagOf: nothing for the default directory, the flag otherwise', () => {
  assert.equal(stateFlagOf(DEFAULT_MESH_STATE_DIR), '');
  assert.equal(stateFlagOf('/tmp/mesh-1/state'), ' --state-dir /tmp/mesh-1/state');
});

test('shellQuote: a POSIX shell reads every quoted directory name back unchanged', () => {
  for (const name of ['/tmp/plain', '/tmp/my mesh', "/tmp/it's", '/tmp/$HOME`x`;rm -rf', '/tmp/"q"\\n', '']) {
    const echoed = execFileSync('sh', ['-c', `printf %s ${shellQuote(name)}`], { encoding: 'utf8' });
    assert.equal(echoed, name);
  }
});

test('renderWhereToLook: a port in skipInboundPorts is shown as the app itself, never as 127.0.0.1:undefined', () => {
  // The services of a loopback runtime.json as `mutual up` wrote it for a mesh.yaml whose `files`
  // declares ports [8080, 9090] with skipInboundPorts: [9090].
  const runtime = {
    services: [
      {
        name: 'files',
        adminUrl: 'http://127.0.0.1:20246',
        ports: [
          { port: 8080, protocol: 'http', appPort: 21777, inboundPort: 25439 },
          { port: 9090, protocol: 'http', appPort: 22688 },
        ],
      },
      { name: 'web', adminUrl: 'http://127.0.0.1:20717', ports: [] },
    ],
  } as unknown as MeshRuntime;
  const text = renderWhereToLook(runtime, '');
  assert.doesNotMatch(text, /undefined/);
  assert.match(
    text,
    /^ {2}files {2}mTLS in 127\.0\.0\.1:25439; no sidecar \(skipInboundPorts\) 127\.0\.0\.1:22688; admin http:\/\/127\.0\.0\.1:20246 /m,
  );
  assert.match(text, /^ {2}web {4}no inbound port; admin /m);
});

test('renderWhereToLook: a tcp port (redis) is shown as an address, not as a URL for curl', () => {
  const ports = [{ port: 6379, protocol: 'tcp', appPort: 23001, inboundPort: 23002 }];
  const loopback = renderWhereToLook(
    { services: [{ name: 'redis', adminUrl: 'http://127.0.0.1:20001', ports }] } as unknown as MeshRuntime,
    '',
  );
  assert.match(loopback, /^ {2}redis {2}127\.0\.0\.1:23001 \(tcp\) {2}\(the app itself/m);
  assert.doesNotMatch(loopback, /http:\/\/127\.0\.0\.1:23001/);
  const pod = renderWhereToLook(
    {
      services: [
        {
          name: 'redis',
          adminUrl: 'http://198.18.0.5:4191',
          pod: { netns: 'mu1-redis', address: '198.18.0.5' },
          ports: [{ ...ports[0], appPort: 6379 }],
        },
      ],
    } as unknown as MeshRuntime,
    '',
  );
  assert.match(
    pod,
    /^ {2}redis {2}127\.0\.0\.1:6379 \(tcp\) inside: ip netns exec mu1-redis <client> {2}\(pod 198\.18\.0\.5;/m,
  );
  assert.doesNotMatch(pod, /curl/);
});
