import { MutualError } from '../errors.ts';
import { formatSpiffeId, parseSpiffeId, type SpiffeId } from './spiffe-id.ts';

/** A workload identity in the mesh: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>. */
export interface MeshIdentity {
  readonly id: SpiffeId;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** The mesh form of an ID, or undefined when the (valid) ID has another shape. */
export function meshIdentityOf(id: SpiffeId): MeshIdentity | undefined {
  const segments = id.path.split('/').slice(1);
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') return undefined;
  return Object.freeze({ id, namespace: segments[1]!, serviceAccount: segments[3]! });
}

/** Builds the mesh identity of a namespace and service account, validating every part. */
export function meshIdentity(trustDomain: string, namespace: string, serviceAccount: string): MeshIdentity {
  const id = formatSpiffeId(trustDomain, 'ns', namespace, 'sa', serviceAccount);
  return meshIdentityOf(id)!;
}

/** Parses an ID that must have the mesh form; throws MUTUAL_SPIFFE_NOT_MESH_ID when it is valid but not. */
export function parseMeshIdentity(input: string): MeshIdentity {
  const id = parseSpiffeId(input);
  const mesh = meshIdentityOf(id);
  if (!mesh) {
    throw new MutualError(
      'MUTUAL_SPIFFE_NOT_MESH_ID',
      `SPIFFE ID ${JSON.stringify(input)} is valid but not a mesh identity: expected spiffe://${id.trustDomain}/ns/<namespace>/sa/<service-account>`,
    );
  }
  return mesh;
}
