// `mutual install`'s policy CRDs against the policy parser. The API server prunes every field a
// structural schema does not declare, before anyone reads the object: a field the parser reads but
// the CRD lacks would vanish from every policy using it (a `serviceAccounts` beside `ipBlocks`
// would leave an ALLOW of any service account). A field the CRD declares but the parser does not
// know would pass kubectl's strict field validation and only be refused later, by the destination
// service. So the two must list the same fields.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { authorizationPolicySchema, peerAuthenticationSchema } from '../../src/policy/schema.ts';
import { parseObjects, runInstall } from './install-harness.ts';

type JsonSchema = {
  type?: string;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  additionalProperties?: JsonSchema | boolean;
  anyOf?: JsonSchema[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
};

async function crdSchemas(): Promise<Map<string, JsonSchema>> {
  const objects = parseObjects((await runInstall([])).stdout);
  const schemas = new Map<string, JsonSchema>();
  for (const object of objects) {
    if (object.kind !== 'CustomResourceDefinition' || !(object as any).spec.group.startsWith('security.'))
      continue;
    schemas.set((object as any).spec.names.kind, (object as any).spec.versions[0].schema.openAPIV3Schema);
  }
  return schemas;
}

/** Every field path a schema declares: `spec.rules[].from[].source.principals`, maps as `{}`. */
function declaredFields(schema: JsonSchema, path: string, into = new Set<string>()): Set<string> {
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    const at = path ? `${path}.${key}` : key;
    into.add(at);
    declaredFields(child, at, into);
  }
  if (schema.items) declaredFields(schema.items, `${path}[]`, into);
  if (typeof schema.additionalProperties === 'object')
    declaredFields(schema.additionalProperties, `${path}{}`, into);
  for (const branch of schema.anyOf ?? []) declaredFields(branch, path, into);
  return into;
}

test('the policy CRDs declare every spec field the policy parser reads, and no other', async () => {
  const crds = await crdSchemas();
  const parsers = {
    PeerAuthentication: peerAuthenticationSchema,
    AuthorizationPolicy: authorizationPolicySchema,
  };
  for (const [kind, parser] of Object.entries(parsers)) {
    const crd = crds.get(kind);
    assert.ok(crd, `no CRD for ${kind}`);
    const parserSchema = z.toJSONSchema(parser, { unrepresentable: 'any', io: 'input' }) as JsonSchema;
    const spec = (fields: Set<string>) => [...fields].filter((field) => field.startsWith('spec.')).sort();
    assert.deepEqual(
      spec(declaredFields(crd.properties!.spec!, 'spec')),
      spec(declaredFields(parserSchema.properties!.spec!, 'spec')),
      kind,
    );
  }
});
