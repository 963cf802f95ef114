// Test helpers for `mutual install`: run the CLI in-process, split its YAML, validate each object
// against the official Kubernetes OpenAPI schemas (kubernetes-models), mask generated key material
// for golden files.

import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { parseAllDocuments } from 'yaml';
import type { Clock } from '../../src/clock.ts';
import type { K8sObject } from '../../src/k8s/index.ts';
import { VERSION } from '../../src/version.ts';
import { runMutualInProcess } from '../e2e/run-mutual.ts';

export interface InstallRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `mutual install ARGS` in-process, as the binary would run it. */
export function runInstall(
  args: readonly string[],
  options: { cwd?: string; clock?: Clock } = {},
): Promise<InstallRun> {
  return runMutualInProcess(['install', ...args], options);
}

export function parseObjects(yamlText: string): K8sObject[] {
  return parseAllDocuments(yamlText).map((document) => {
    if (document.errors.length > 0) throw new Error(String(document.errors[0]));
    return document.toJS() as K8sObject;
  });
}

type ModelClass = new (data: never) => { validate(): void };
const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
  'admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration': ValidatingWebhookConfiguration,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
};

/** Throws naming the object and the schema violation; also for a kind no schema is known for. */
export function validateObject(object: K8sObject): void {
  const key = `${object.apiVersion}/${object.kind}`;
  const Model = MODELS[key];
  if (!Model) throw new Error(`no OpenAPI schema mapped for ${key} (${object.metadata?.name})`);
  try {
    new Model(object as never).validate();
  } catch (error) {
    throw new Error(`${key} ${object.metadata?.name}: ${(error as Error).message}`);
  }
}

/**
 * Generated certificates and keys (and the version) replaced by placeholders, so golden files
 * compare everything else byte for byte.
 */
export function maskGenerated(yamlText: string): string {
  return yamlText
    .replace(/^(\s*(?:tls\.crt|tls\.key|ca\.crt|caBundle): )[A-Za-z0-9+/=]+$/gm, '$1<generated, base64 PEM>')
    .replace(/^(\s+)[A-Za-z0-9+/=]{8,}\n(?:\s+[A-Za-z0-9+/=]+\n)*/gm, '$1<generated>\n')
    .replaceAll(VERSION, '<version>');
}

export function decodeBase64(text: unknown): string {
  return Buffer.from(String(text), 'base64').toString('utf8');
}

export function findObject(objects: readonly K8sObject[], kind: string, name: string): K8sObject {
  const object = objects.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
  if (!object) throw new Error(`no ${kind} ${name} rendered`);
  return object;
}
