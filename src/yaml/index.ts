// YAML as every reader of a user's file parses it (mesh.yaml, policy files): duplicate keys found
// in linear time, and aliases that would expand without bound reported as a problem at the
// document, not thrown. Pure: text and parsed documents in, problems out.

export { duplicateKeys, LINEAR_KEYS, toJsOrProblem, type YamlProblem } from './yaml-checks.ts';
