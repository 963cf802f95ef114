// Parsing /metrics pages: samples, escapes, and label sets shared between pages (the dashboard
// keeps a minute of pages from every sidecar).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePrometheusText } from './prometheus-text.ts';

const PAGE = [
  '# HELP mutual_inbound_http_requests_total Requests',
  '# TYPE mutual_inbound_http_requests_total counter',
  'mutual_inbound_http_requests_total{client_id="spiffe://cluster.local/ns/scale/sa/s01",port="8080",status="200"} 3',
  'mutual_inbound_http_requests_total{client_id="spiffe://cluster.local/ns/scale/sa/s02",port="8080",status="200"} 4',
  'mutual_authorization_decisions_total{policy="a \\"quoted\\"\\nname",decision="deny"} 1',
  'process_open_fds 65',
  'broken{ line',
  '',
].join('\n');

test('samples with their labels; comments, escapes and malformed lines', () => {
  const samples = parsePrometheusText(PAGE);
  assert.deepEqual(
    samples.map(({ name, labels, value }) => [name, { ...labels }, value]),
    [
      [
        'mutual_inbound_http_requests_total',
        { client_id: 'spiffe://cluster.local/ns/scale/sa/s01', port: '8080', status: '200' },
        3,
      ],
      [
        'mutual_inbound_http_requests_total',
        { client_id: 'spiffe://cluster.local/ns/scale/sa/s02', port: '8080', status: '200' },
        4,
      ],
      ['mutual_authorization_decisions_total', { policy: 'a "quoted"\nname', decision: 'deny' }, 1],
      ['process_open_fds', {}, 65],
    ],
  );
});

test('the same label set in two pages is one shared, frozen object', () => {
  const first = parsePrometheusText(PAGE);
  const second = parsePrometheusText(PAGE.replace('} 3', '} 30'));
  assert.equal(second[0]!.value, 30);
  for (const [at, sample] of first.entries()) {
    assert.equal(second[at]!.labels, sample.labels, 'shared, not a copy per page');
    assert.equal(second[at]!.name, sample.name);
  }
  assert.ok(Object.isFrozen(first[0]!.labels));
  assert.notEqual(first[0]!.labels, first[1]!.labels);
});
