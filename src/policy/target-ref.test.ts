import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePolicyText } from './parse.ts';
import { ap, ROOT } from './test-fixtures.ts';

/** Every diagnostic of a policy in namespace demo as `line:column code message | hint`. */
function refused(spec: string): string[] {
  const { resources, diagnostics } = parsePolicyText(ap('a', 'demo', spec), 'p.yaml', {
    rootNamespace: ROOT,
  });
  assert.equal(resources.length, 0, 'a policy with targetRef(s) is left out');
  return diagnostics
    .filter((diagnostic) => diagnostic.severity === 'error')
    .map((d) => `${d.line}:${d.column} ${d.code} ${d.message} | ${d.hint}`);
}

const rules = 'rules:\n- from:\n  - source:\n      serviceAccounts: ["demo/web"]';

test('targetRefs to a Service: refused (Istio sidecars ignore it), naming the selector to write instead', () => {
  const errors = refused(`targetRefs:\n- kind: Service\n  group: ""\n  name: voting\n${rules}`);
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(
    errors[0]!,
    /^9:5 MUTUAL_POLICY_UNSUPPORTED spec\.targetRefs\[0\]: a policy attached to Service "voting"/,
  );
  assert.match(errors[0]!, /sidecars ignore it.*would protect nothing/);
  assert.match(
    errors[0]!,
    /\| Select the pods behind the Service.*replace targetRefs with selector\.matchLabels.*\{app: voting\}.*namespace demo/,
  );
});

test('the legacy singular targetRef is refused the same way', () => {
  const errors = refused(`targetRef: {kind: Service, name: voting}\n${rules}`);
  assert.equal(errors.length, 1, errors.join('\n'));
  assert.match(
    errors[0]!,
    /^8:14 MUTUAL_POLICY_UNSUPPORTED spec\.targetRef: .*Service "voting".*\| .*replace targetRef with selector/,
  );
});

test('targetRefs to a Gateway, GatewayClass or ServiceEntry: refused with the reason for each', () => {
  const errors = refused(
    `targetRefs:\n- {kind: Gateway, group: gateway.networking.k8s.io, name: gw}\n- {kind: GatewayClass, group: gateway.networking.k8s.io, name: istio}\n- {kind: ServiceEntry, group: networking.istio.io, name: ext}\n${rules}`,
  );
  assert.equal(errors.length, 3, errors.join('\n'));
  assert.match(errors[0]!, /^9:.*UNSUPPORTED .*Gateway "gw".*Mutual has no gateways/);
  assert.match(errors[1]!, /^10:.*UNSUPPORTED .*GatewayClass "istio"/);
  assert.match(errors[2]!, /^11:.*UNSUPPORTED .*ServiceEntry "ext".*no Mutual sidecar/);
});

test('odd targetRefs: a kind Istio refuses, a Service in the wrong group, an empty list, both selector and targetRefs', () => {
  assert.match(
    refused('targetRefs:\n- {kind: Deployment, group: apps, name: web}').join('\n'),
    /MUTUAL_POLICY_INVALID .*Deployment "web" in group "apps": Istio accepts only Service/,
  );
  assert.match(
    refused('targetRefs:\n- {kind: Service, group: gateway.networking.k8s.io, name: web}').join('\n'),
    /MUTUAL_POLICY_INVALID .*Service "web" in group "gateway\.networking\.k8s\.io"/,
  );
  assert.match(
    refused(`targetRefs: []\n${rules}`).join('\n'),
    /^8:3 MUTUAL_POLICY_INVALID spec\.targetRefs: targetRefs is empty/,
  );
  const both = refused(
    'selector: {matchLabels: {app: web}}\ntargetRefs:\n- {kind: Service, name: web}\nrules: [{}]',
  );
  assert.equal(both.length, 2, both.join('\n'));
  assert.match(both[0]!, /^9:3 MUTUAL_POLICY_INVALID spec\.targetRefs: selector and targetRefs are both set/);
  assert.match(both[1]!, /UNSUPPORTED/);
});

test('malformed targetRefs: missing name or kind, unknown fields, a string', () => {
  assert.match(refused('targetRefs:\n- {kind: Service}').join('\n'), /targetRefs\[0\]\.name: missing/);
  assert.match(refused('targetRefs:\n- {name: web}').join('\n'), /targetRefs\[0\]\.kind: missing/);
  assert.match(
    refused('targetRefs:\n- {kind: Service, name: web, sectionName: http}').join('\n'),
    /unknown field "sectionName" \(allowed here: group, kind, name, namespace\)/,
  );
  assert.match(refused('targetRefs: web').join('\n'), /spec\.targetRefs: .*expected array/);
});
