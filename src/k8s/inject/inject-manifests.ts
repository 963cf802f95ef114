// `mutual inject` on YAML or JSON text: every pod template in every document goes through
// injectPod, and only what it changed is written back into the document (the same diff the webhook
// sends), so comments and order survive; documents without a change are copied byte for byte. A
// document written as JSON (kubectl get -o json) is printed back as JSON, indented as kubectl does.
import {
  Composer,
  type Document,
  isAlias,
  isCollection,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  Parser,
  type Tags,
  visit,
} from 'yaml';
import { MutualError } from '../../errors.ts';
import { duplicateKeys, LINEAR_KEYS } from '../../yaml/index.ts';
import { ANNOTATIONS, INJECT_VALUES, LABELS } from '../constants.ts';
import { type InjectOptions, injectPod, type PodLike, type SkipReason } from './inject-pod.ts';
import { diffValues, type PathOperation } from './json-patch.ts';
import { otherMeshSettings } from './other-mesh-annotations.ts';
import {
  apiVersionProblems,
  findPodTemplates,
  INJECTABLE_KINDS,
  isNestedDeeper,
  MAX_POD_DEPTH,
} from './pod-templates.ts';
import { aliasProblems, aliasTargetCopy, unshareYamlNode } from './yaml-aliases.ts';

export interface InjectReportLine {
  /** `deployment/web`, as the report prints it. */
  readonly name: string;
  readonly line: number;
  /** `note`: not a pod, but something the user likely meant to do otherwise (the message says what). */
  readonly result: 'injected' | 'skipped' | 'note';
  readonly reason?: SkipReason;
  readonly message: string;
}

export interface InjectManifestsResult {
  /**
   * The manifests, each document in the format it was given in (YAML, or JSON with 4 spaces), in
   * chunks to write one after the other: injected, 64 MiB of small workloads print over 512 Mi
   * characters, more than one JavaScript string holds.
   */
  readonly outputChunks: readonly string[];
  readonly report: readonly InjectReportLine[];
}

export function injectManifests(text: string, file: string, options: InjectOptions): InjectManifestsResult {
  const lineCounter = new LineCounter();
  lineCounter.addNewLine(0);
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lineCounter.addNewLine(i + 1);
  // JSON objects one after the other (kubectl reads such a stream too) are parsed one by one, as
  // YAML has no way to read them as separate documents; anything else is one YAML stream.
  const sources = jsonObjectSpans(text) ?? [{ start: 0, end: text.length }];
  const position = (offset: number) => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, text: `${file}:${line}:${col}` };
  };
  const syntax: string[] = [];
  const plainValues: string[] = [];
  const report: InjectReportLine[] = [];
  const invalid: string[] = [];
  const mistyped: string[] = [];
  const tooDeep: string[] = [];
  const wrongApi: string[] = [];
  const pieces: string[] = [];
  /** A document's text in the output, given where it starts and ends in the input. */
  type Piece = (start: number, end: number) => string;
  const unchanged: Piece = (start, end) => text.slice(start, end);
  const injectDocument = (doc: Document.Parsed, base: number): Piece => {
    const at = (offset: number) => position(base + offset);
    const json = jsonContentsRange(doc, text, base);
    const flowCollectionPadding = isFlowPadded(doc, text, base);
    const indentSeq = isSeqIndented(doc, text, base);
    // The aliases are checked above: no limit on how often each is used (kubectl sets none either).
    const value: unknown = doc.toJS({ maxAliasCount: -1 });
    let isChanged = false;
    // A workload kubectl would refuse for its apiVersion or kind is not injected: the run stops below.
    const apiProblems = apiVersionProblems(value);
    for (const problem of apiProblems) {
      const offset =
        writtenAt(doc, [...problem.path, problem.field]) ?? writtenAt(doc, problem.path) ?? doc.range[0];
      wrongApi.push(`${at(offset).text}: ${problem.name}: ${problem.message}`);
    }
    if (apiProblems.length > 0) return unchanged;
    // Where each template is written, taken before any change: a copy made for an alias would
    // report its anchor's place.
    const locations = findPodTemplates(value).map((location) => ({
      ...location,
      start: writtenAt(doc, location.path) ?? doc.range[0],
    }));
    const otherKinds = otherKindNotes(value).map((note) => ({
      name: note.name,
      message: note.message,
      line: at(writtenAt(doc, note.path) ?? doc.range[0]).line,
      result: 'note' as const,
    }));
    for (const note of namespaceNotes(value)) {
      const line = at(writtenAt(doc, note.path) ?? doc.range[0]).line;
      report.push({ name: note.name, message: note.message, line, result: 'note' });
    }
    for (const location of locations) {
      const node = doc.getIn(location.path, true) as Node | undefined;
      const line = at(location.start).line;
      const before = valueAtPath(value, location.path);
      // The printer recurses: a pod nested hundreds of levels deep (no real one is) would overflow it.
      if (isNestedDeeper(before, MAX_POD_DEPTH)) {
        tooDeep.push(
          `${at(node?.range?.[0] ?? 0).text}: ${location.name}: nested more than ${MAX_POD_DEPTH} levels deep, which no pod is`,
        );
        continue;
      }
      const wrongTypes = wrongPodTypes(before);
      for (const problem of wrongTypes) {
        const field = doc.getIn([...location.path, ...problem.path], true) as Node | undefined;
        const where = at(field?.range?.[0] ?? node?.range?.[0] ?? 0).text;
        mistyped.push(`${where}: ${location.name}: ${problem.path.join('.')} ${problem.message}`);
      }
      if (wrongTypes.length > 0) continue;
      // No containers: the API server refuses such a pod, so it is an error here too, not a skip.
      const noContainers = missingContainers(before);
      if (noContainers !== undefined) {
        const spec = doc.getIn([...location.path, 'spec'], true);
        const pair = isMap(spec)
          ? spec.items.find((item) => isScalar(item.key) && item.key.value === noContainers.key)
          : undefined;
        const field = (isNode(pair?.key) ? pair.key : spec) as Node | undefined;
        const where = at(field?.range?.[0] ?? node?.range?.[0] ?? 0).text;
        mistyped.push(`${where}: ${location.name}: ${noContainers.message}`);
        continue;
      }
      const outcome = injectPod(before as PodLike, options);
      if (outcome.kind === 'invalid') {
        for (const problem of outcome.problems) {
          const key = doc.getIn([...location.path, 'metadata', 'annotations', problem.annotation], true) as
            | Node
            | undefined;
          const where = at(key?.range?.[0] ?? node?.range?.[0] ?? 0).text;
          const message = problem.message.startsWith(problem.annotation)
            ? problem.message
            : `${problem.annotation}: ${problem.message}`;
          invalid.push(`${where}: ${location.name}: ${message}`);
        }
        continue;
      }
      if (outcome.kind === 'skipped') {
        // Istio users opt Jobs out because Istio's sidecar kept them from completing; Mutual's, a
        // native sidecar, stops with the Job, so the opt-out may well be obsolete.
        const isJob = /(^|\/)(job|cronjob)\//.test(location.name);
        const istioJobOptOut =
          isJob && outcome.reason === 'disabled' && outcome.message.includes('sidecar.istio.io/inject')
            ? " (Istio users set it on Jobs because Istio's sidecar kept them from completing; Mutual's is a native sidecar that stops when the Job's containers exit)"
            : '';
        report.push({
          name: location.name,
          line,
          result: 'skipped',
          reason: outcome.reason,
          message: `${outcome.message}${istioJobOptOut}`,
        });
        continue;
      }
      for (const operation of diffValues(before, outcome.pod)) {
        applyToDocument(doc, { ...operation, path: [...location.path, ...operation.path] } as PathOperation);
      }
      isChanged = true;
      report.push({
        name: location.name,
        line,
        result: 'injected',
        message:
          outcome.change === 'anchors'
            ? 'already injected; its trust anchors (MUTUAL_PROXY_IDENTITY_BUNDLE_PEM) updated to the given ones'
            : 'injected',
      });
      const immutable = immutableTemplateNote(value, location.path);
      if (immutable !== undefined)
        report.push({ name: location.name, line, result: 'note', message: immutable });
      for (const note of outcome.notes) {
        const key = doc.getIn([...location.path, 'metadata', 'annotations', note.annotation], true);
        const noteLine = isNode(key) && key.range ? at(key.range[0]).line : line;
        report.push({ name: location.name, line: noteLine, result: 'note', message: note.message });
      }
    }
    report.push(...otherKinds);
    if (!isChanged) return unchanged;
    // Printed now, so the document itself can go: only its text is kept until its end is known.
    const printed =
      json === undefined
        ? doc.toString({ flowCollectionPadding, indentSeq, lineWidth: 0 })
        : JSON.stringify(doc.toJS({ maxAliasCount: -1 }), null, 4);
    return (start, end) => {
      // Windows line endings (CRLF) stay so in a changed document: mixed endings show as a change
      // to every line in some editors and diffs. Line breaks inside values read the same either way.
      const ending = (lines: string) =>
        text.slice(start, end).includes('\r\n') ? lines.replace(/\r?\n/g, '\r\n') : lines;
      // A JSON document's own leading and trailing text (`---`, comments, the newline) is kept.
      return json === undefined
        ? ending(printed)
        : `${text.slice(start, json.start)}${ending(printed)}${text.slice(json.end, end)}`;
    };
  };
  // One document at a time, each let go once injected: a file of tens of thousands of workloads
  // (64 MiB is allowed) would not fit in memory as parsed documents all at once. Each document's
  // text runs to where the next one starts, the last one's to the end of the file.
  let previousEnd = 0;
  let pending: { piece: Piece; end: number } | undefined;
  const flush = (end: number) => {
    if (pending === undefined) return;
    pieces.push(pending.piece(previousEnd, end));
    previousEnd = end;
    pending = undefined;
  };
  for (const { doc, base } of documentsOf(text, sources)) {
    flush(pending?.end ?? 0);
    const end = base + doc.range[2];
    const problems = [
      ...doc.errors.map(
        (error) => `${position(base + error.pos[0]).text}: ${readable(error.message.split('\n')[0] ?? '')}`,
      ),
      ...(doc.errors.length > 0 ? [] : [...duplicateKeys(doc, { isMerge: true }), ...aliasProblems(doc)]).map(
        (problem) => `${position(base + problem.offset).text}: ${problem.message}`,
      ),
    ];
    syntax.push(...problems);
    // A document that is a bare value (a JPEG, a line of text) is no object: kubectl refuses it too.
    if (problems.length === 0 && isScalar(doc.contents) && doc.contents.value !== null) {
      plainValues.push(
        `${position(base + (doc.contents.range?.[0] ?? 0)).text}: a plain value, not an object with apiVersion and kind; is this the manifests file?`,
      );
    }
    // Past the first such problem the run fails: what follows is read only for its problems.
    const isFailing = syntax.length > 0 || plainValues.length > 0;
    pending = { piece: isFailing ? unchanged : injectDocument(doc, base), end };
  }
  flush(text.length);
  // No document at all (only comments, or nothing): the text as it is.
  if (previousEnd < text.length) pieces.push(text.slice(previousEnd));
  if (syntax.length > 0) {
    // A chart's template file itself (`{{ include "app.labels" . | nindent 4 }}`) is not YAML yet.
    const action = /\{\{-?\s*(?:[.$]|include\b|if\b|range\b|with\b|end\b|template\b|toYaml\b)/.exec(text);
    const template =
      action === null
        ? ''
        : `\n  ${position(action.index).text}: this is a Helm chart template ({{ … }} actions), not manifests: render it first, e.g. helm template RELEASE CHART | mutual inject -`;
    throw new MutualError(
      'MUTUAL_K8S_INJECT_YAML_INVALID',
      `${file} is not valid ${/^\uFEFF?\s*\{/.test(text) ? 'JSON (nor YAML)' : 'YAML'}:${template}\n${syntax.map((line) => `  ${line}`).join('\n')}`,
      { detail: { file, problems: syntax.length } },
    );
  }
  if (plainValues.length > 0) {
    throw new MutualError(
      'MUTUAL_K8S_INJECT_YAML_INVALID',
      `${file} is not Kubernetes manifests:\n${plainValues.map((line) => `  ${line}`).join('\n')}`,
      { detail: { file, problems: plainValues.length } },
    );
  }
  if (tooDeep.length > 0) {
    throw new MutualError(
      'MUTUAL_K8S_INJECT_YAML_INVALID',
      `${file} is not Kubernetes manifests:\n${tooDeep.map((line) => `  ${line}`).join('\n')}`,
      { detail: { file, problems: tooDeep.length } },
    );
  }
  if (wrongApi.length > 0) {
    throw new MutualError(
      'MUTUAL_K8S_INJECT_API_VERSION_INVALID',
      `${file} has workloads whose apiVersion or kind Kubernetes does not serve (kubectl would refuse them):\n${wrongApi.map((line) => `  ${line}`).join('\n')}`,
      { detail: { file, problems: wrongApi.length } },
    );
  }
  if (mistyped.length > 0) {
    throw new MutualError(
      'MUTUAL_K8S_INJECT_YAML_INVALID',
      `${file} has pod fields missing or of the wrong Kubernetes type (kubectl would refuse them too):\n${mistyped.map((line) => `  ${line}`).join('\n')}`,
      { detail: { file, problems: mistyped.length } },
    );
  }
  if (invalid.length > 0) {
    throw new MutualError(
      'MUTUAL_K8S_INJECT_ANNOTATION_INVALID',
      `${file} has annotations the injector cannot use:\n${invalid.map((line) => `  ${line}`).join('\n')}`,
      { detail: { file, problems: invalid.length } },
    );
  }
  return { outputChunks: chunked(pieces, OUTPUT_CHUNK_CHARS), report };
}

/** About 16 MiB of text per write: few writes, each far below the longest string V8 makes. */
const OUTPUT_CHUNK_CHARS = 16 * 1024 * 1024;

/** `pieces` joined into strings of about `size` characters (one piece longer than that stays whole). */
function chunked(pieces: readonly string[], size: number): string[] {
  const chunks: string[] = [];
  let batch: string[] = [];
  let length = 0;
  for (const piece of pieces) {
    if (length > 0 && length + piece.length > size) {
      chunks.push(batch.join(''));
      batch = [];
      length = 0;
    }
    batch.push(piece);
    length += piece.length;
  }
  if (length > 0 || chunks.length === 0) chunks.push(batch.join(''));
  return chunks;
}

/** The documents of each source span in turn, parsed lazily: one at a time in memory. */
function* documentsOf(
  text: string,
  sources: readonly { start: number; end: number }[],
): Generator<{ doc: Document.Parsed; base: number }> {
  for (const { start, end } of sources) {
    const composer = new Composer({ prettyErrors: false, ...KUBECTL_YAML, ...LINEAR_KEYS });
    for (const doc of composer.compose(new Parser().parse(text.slice(start, end)))) {
      yield { doc, base: start };
    }
  }
}

/**
 * YAML as kubectl reads it (sigs.k8s.io/yaml, go-yaml v2: YAML 1.1), so that what is read and what
 * is printed back mean to kubectl what the file meant: `0755` is octal (Helm charts write
 * `defaultMode: 0755`, which YAML 1.2 reads and prints as 755, past the 0777 the API accepts),
 * `yes`/`on`/`y` and their opposites are booleans (`hostNetwork: yes` is true), `<<: *base` merges.
 * go-yaml leaves timestamps and base-60 numbers (`1:20`) as strings when decoding into JSON, so
 * those 1.1 types are left out.
 */
const KUBECTL_YAML = {
  version: '1.1',
  merge: true,
  customTags: (tags: Tags) =>
    tags.filter(
      (tag) =>
        typeof tag === 'string' || (tag.format !== 'TIME' && tag.tag !== 'tag:yaml.org,2002:timestamp'),
    ),
} as const;

/**
 * Where a document's contents are a JSON object, in offsets into the whole text: a flow map with
 * no anchor or tag whose text JSON.parse takes (`{apiVersion: v1}` is YAML, and printed as YAML).
 */
function jsonContentsRange(
  doc: Document,
  text: string,
  base: number,
): { start: number; end: number } | undefined {
  const contents = doc.contents;
  if (!isMap(contents) || !contents.flow || contents.anchor || contents.tag || !contents.range)
    return undefined;
  const range = { start: base + contents.range[0], end: base + contents.range[1] };
  try {
    JSON.parse(text.slice(range.start, range.end));
    return range;
  } catch {
    return undefined;
  }
}

/** A parser message as users can act on it. */
function readable(message: string): string {
  const text = message.replace(/ at line \d+, column \d+:?$/, '');
  // The parser recurses too; its stack ends hundreds of levels down, far below any real object.
  return /Maximum call stack size exceeded/.test(text)
    ? 'nested too deeply to read (hundreds of levels; no Kubernetes object comes close)'
    : text;
}

/**
 * What a Namespace given with the manifests will do otherwise than its author likely expects:
 * annotated `mutual.dev/inject: enabled` (as Linkerd namespaces are) but not labelled so, which the
 * webhook, selecting by label, ignores; opted in while Pod Security enforces `baseline` or
 * `restricted`, which refuse mutual-init's NET_ADMIN and NET_RAW, so every injected pod is refused.
 */
function namespaceNotes(object: unknown): { name: string; message: string; path: string[] }[] {
  if (!isPlainMap(object) || object.kind !== 'Namespace' || !isPlainMap(object.metadata)) return [];
  const { annotations, labels, name } = object.metadata;
  const annotation = isPlainMap(annotations) ? annotations[ANNOTATIONS.inject] : undefined;
  const label = isPlainMap(labels) ? labels[LABELS.inject] : undefined;
  const enforce = isPlainMap(labels) ? labels[POD_SECURITY_ENFORCE] : undefined;
  const notes: { name: string; message: string; path: string[] }[] = [];
  if (annotation === INJECT_VALUES.enabled && label !== INJECT_VALUES.enabled) {
    notes.push({
      name: `namespace/${String(name)}`,
      path: ['metadata', 'annotations', ANNOTATIONS.inject],
      message: `the annotation ${ANNOTATIONS.inject}: ${INJECT_VALUES.enabled} does nothing on a Namespace; the webhook selects namespaces by the label ${LABELS.inject}=${INJECT_VALUES.enabled} (put it under labels:)`,
    });
  }
  const isOptedIn = label === INJECT_VALUES.enabled || annotation === INJECT_VALUES.enabled;
  if (isOptedIn && (enforce === 'baseline' || enforce === 'restricted')) {
    notes.push({
      name: `namespace/${String(name)}`,
      path: ['metadata', 'labels', POD_SECURITY_ENFORCE],
      message: `${POD_SECURITY_ENFORCE}: ${enforce} refuses mutual-init's NET_ADMIN and NET_RAW capabilities, so the API server will refuse every injected pod here; the namespace needs ${POD_SECURITY_ENFORCE}: privileged`,
    });
  }
  if (isPlainMap(annotations)) {
    for (const setting of otherMeshSettings(annotations, 'namespace')) {
      notes.push({
        name: `namespace/${String(name)}`,
        path: ['metadata', 'annotations', setting.annotation],
        message: setting.message,
      });
    }
  }
  // Another mesh's injector selecting the same namespace (a migration half done): which injector
  // runs first decides whether a pod gets one proxy or two.
  const otherMesh = isOptedIn ? otherMeshNamespaceOptIn(labels, annotations) : undefined;
  if (otherMesh !== undefined) {
    notes.push({
      name: `namespace/${String(name)}`,
      path: ['metadata', otherMesh.where === 'label' ? 'labels' : 'annotations', otherMesh.key],
      message: `${otherMesh.where} ${otherMesh.key}: ${otherMesh.value} opts its pods into ${otherMesh.mesh} too: both injectors act on each new pod, which ends with ${otherMesh.mesh}'s sidecar only (Mutual leaves such a pod alone) or with two proxies fighting over its traffic; remove it to mesh the namespace with Mutual`,
    });
  }
  return notes;
}

/** Istio's or Linkerd's opt-in on a Namespace, if it has one. */
function otherMeshNamespaceOptIn(
  labels: unknown,
  annotations: unknown,
): { mesh: string; where: 'label' | 'annotation'; key: string; value: string } | undefined {
  const labelOf = (key: string) => (isPlainMap(labels) ? labels[key] : undefined);
  if (labelOf('istio-injection') === 'enabled') {
    return { mesh: 'Istio', where: 'label', key: 'istio-injection', value: 'enabled' };
  }
  const revision = labelOf('istio.io/rev');
  if (typeof revision === 'string' && revision !== '') {
    return { mesh: 'Istio', where: 'label', key: 'istio.io/rev', value: revision };
  }
  const linkerd = isPlainMap(annotations) ? annotations['linkerd.io/inject'] : undefined;
  if (linkerd === 'enabled') {
    return { mesh: 'Linkerd', where: 'annotation', key: 'linkerd.io/inject', value: 'enabled' };
  }
  return undefined;
}

/**
 * Objects of kinds injection does not change that hold a pod template where the workload kinds do
 * (an Argo Rollout, an OpenShift DeploymentConfig): printed unchanged, which the webhook would not
 * leave them, so the report says so and how their pods get the proxy.
 */
function otherKindNotes(
  object: unknown,
  path: (string | number)[] = [],
): { name: string; message: string; path: (string | number)[] }[] {
  if (!isPlainMap(object) || typeof object.kind !== 'string') return [];
  const { kind } = object;
  if (Array.isArray(object.items) && kind.endsWith('List')) {
    return object.items.flatMap((item, index) => otherKindNotes(item, [...path, 'items', index]));
  }
  if (INJECTABLE_KINDS.includes(kind)) return [];
  const templatePath = [
    ['spec', 'template'],
    ['spec', 'jobTemplate', 'spec', 'template'],
  ].find((candidate) => Array.isArray(valueAtPathOrUndefined(object, [...candidate, 'spec', 'containers'])));
  if (templatePath === undefined) return [];
  const metadata = isPlainMap(object.metadata) ? object.metadata : {};
  return [
    {
      name: `${kind.toLowerCase()}/${typeof metadata.name === 'string' ? metadata.name : '(unnamed)'}`,
      path: [...path, ...templatePath],
      message: `a ${kind} is not a kind mutual inject changes (${INJECTABLE_KINDS.join(', ')}), so its pod template is printed unchanged and its pods run without the proxy unless the webhook injects them as they are created: label the namespace ${LABELS.inject}=${INJECT_VALUES.enabled}, or annotate the template ${ANNOTATIONS.inject}: ${INJECT_VALUES.enabled}`,
    },
  ];
}

/**
 * A Pod or Job read from the cluster (`kubectl get pod -o yaml`: it has a uid) cannot take the
 * proxy by `kubectl apply`: a Pod's containers and a Job's pod template cannot change once they
 * exist, and the API server refuses the update. Said, with what to inject instead.
 */
function immutableTemplateNote(
  root: unknown,
  templatePath: readonly (string | number)[],
): string | undefined {
  const hasUid = (object: Record<string, unknown>) =>
    isPlainMap(object.metadata) && typeof object.metadata.uid === 'string' && object.metadata.uid !== '';
  const pod = valueAtPath(root, templatePath);
  if (isPlainMap(pod) && pod.kind === 'Pod' && hasUid(pod)) {
    const owners = isPlainMap(pod.metadata) ? pod.metadata.ownerReferences : undefined;
    const owner = Array.isArray(owners)
      ? owners.find((reference) => isPlainMap(reference) && reference.controller === true)
      : undefined;
    const hash =
      isPlainMap(pod.metadata) && isPlainMap(pod.metadata.labels)
        ? pod.metadata.labels['pod-template-hash']
        : undefined;
    const ownerName = isPlainMap(owner) ? String(owner.name) : '';
    // A Deployment's pods come from a ReplicaSet named <deployment>-<pod-template-hash>.
    const workload =
      isPlainMap(owner) &&
      owner.kind === 'ReplicaSet' &&
      typeof hash === 'string' &&
      ownerName.endsWith(`-${hash}`)
        ? `Deployment ${ownerName.slice(0, -hash.length - 1)}`
        : `${String(isPlainMap(owner) ? owner.kind : '')} ${ownerName}`;
    const instead = isPlainMap(owner)
      ? `inject its ${workload} instead, whose pods then get the proxy as they are re-created`
      : 'delete the pod and create this one instead (kubectl replace --force -f -)';
    return `this Pod was read from the cluster (it has a uid), and a Pod's containers cannot change once it exists, so kubectl apply will refuse it: ${instead}`;
  }
  const isTemplate = templatePath.at(-2) === 'spec' && templatePath.at(-1) === 'template';
  const owner = isTemplate ? valueAtPath(root, templatePath.slice(0, -2)) : undefined;
  if (isPlainMap(owner) && owner.kind === 'Job' && hasUid(owner)) {
    return "this Job was read from the cluster (it has a uid), and a Job's pod template cannot change once it exists, so kubectl apply will refuse it: inject the Job's own manifest (or its CronJob) and create it anew";
  }
  return undefined;
}

/** The Pod Security admission label that refuses pods (warn and audit only report). */
const POD_SECURITY_ENFORCE = 'pod-security.kubernetes.io/enforce';

/**
 * Whether the document indents a block list under its key (`ports:\n  - port: 80`, the yaml
 * library's way) or writes its dashes level with the key (`ports:\n- port: 80`, as kubectl, Helm
 * charts and most samples do), judged by the first such list; the printed document follows it, so
 * an injected document differs from what was written only where injection changed it.
 */
function isSeqIndented(doc: Document, text: string, base: number): boolean {
  let isIndented = true;
  visit(doc, {
    Pair(_key, pair) {
      const { key, value } = pair;
      if (!isSeq(value) || value.flow || !isNode(key) || !key.range || !value.range) return undefined;
      const column = (offset: number) => offset - (text.lastIndexOf('\n', offset - 1) + 1);
      const keyOffset = base + key.range[0];
      const dashOffset = base + value.range[0];
      // Only a list that starts on a line of its own below its key tells the style.
      if (text.slice(keyOffset, dashOffset).indexOf('\n') === -1) return undefined;
      isIndented = column(dashOffset) > column(keyOffset);
      return visit.BREAK;
    },
  });
  return isIndented;
}

/**
 * Whether the document writes its flow collections `{ app: web }` (the yaml library's way) or
 * `{app: web}`, judged by the first non-empty one; the printed document follows it, so the
 * collections injection leaves alone keep their look.
 */
function isFlowPadded(doc: Document, text: string, base: number): boolean {
  let isPadded = true;
  visit(doc, (_key, node) => {
    if (!isCollection(node) || !node.flow || node.items.length === 0 || !node.range) return undefined;
    isPadded = text[base + node.range[0] + 1] === ' ';
    return visit.BREAK;
  });
  return isPadded;
}

/**
 * The spans of two or more JSON objects that make up the whole text, separated by whitespace only
 * (`{…}\n{…}`, as `kubectl get … -o json` for several resources in turn prints); undefined for
 * anything else, which is read as YAML.
 */
function jsonObjectSpans(text: string): { start: number; end: number }[] | undefined {
  const spans: { start: number; end: number }[] = [];
  let i = text.startsWith('\uFEFF') ? 1 : 0;
  for (;;) {
    while (i < text.length && ' \t\r\n'.includes(text[i] as string)) i++;
    if (i === text.length) break;
    if (text[i] !== '{') return undefined;
    const start = i;
    let depth = 0;
    let isInString = false;
    for (; i < text.length; i++) {
      const char = text[i];
      if (isInString) {
        if (char === '\\') i++;
        else if (char === '"') isInString = false;
      } else if (char === '"') isInString = true;
      else if (char === '{' || char === '[') depth++;
      else if ((char === '}' || char === ']') && --depth === 0) {
        i++;
        break;
      }
    }
    if (depth !== 0) return undefined;
    spans.push({ start, end: i });
  }
  if (spans.length < 2) return undefined;
  for (const span of spans) {
    try {
      JSON.parse(text.slice(span.start, span.end));
    } catch {
      return undefined;
    }
  }
  return spans;
}

/** The pod fields injection reads or writes, by the type the Kubernetes API gives them. */
const POD_FIELD_TYPES: readonly { path: readonly string[]; type: 'map' | 'list' }[] = [
  { path: ['metadata'], type: 'map' },
  { path: ['metadata', 'annotations'], type: 'map' },
  { path: ['metadata', 'labels'], type: 'map' },
  { path: ['spec'], type: 'map' },
  { path: ['spec', 'containers'], type: 'list' },
  { path: ['spec', 'initContainers'], type: 'list' },
  { path: ['spec', 'volumes'], type: 'list' },
];

/** Fields that are present (not null) but not the map or list Kubernetes expects. */
function wrongPodTypes(pod: unknown): { path: readonly string[]; message: string }[] {
  const problems: { path: readonly string[]; message: string }[] = [];
  for (const field of POD_FIELD_TYPES) {
    const parent = valueAtPathOrUndefined(pod, field.path.slice(0, -1));
    if (!isPlainMap(parent)) continue;
    const value = parent[field.path[field.path.length - 1] as string];
    if (value === undefined || value === null) continue;
    const isRight = field.type === 'map' ? isPlainMap(value) : Array.isArray(value);
    if (isRight) continue;
    const example =
      field.type === 'map'
        ? 'a map of key: value lines (e.g. `app: web`), not a list or a single value'
        : 'a list of items (each starting with `- `), not a single value or a map';
    problems.push({ path: field.path, message: `is ${describe(value)}; it must be ${example}` });
  }
  return problems;
}

/**
 * Why a pod (template) has no containers, which Kubernetes requires (at least one): none written,
 * an empty list, or the list under a misspelled key (`container:`, `Containers:`).
 */
function missingContainers(pod: unknown): { key: string; message: string } | undefined {
  const spec = valueAtPathOrUndefined(pod, ['spec']);
  const containers = isPlainMap(spec) ? spec.containers : undefined;
  if (Array.isArray(containers) && containers.length > 0) return undefined;
  const misspelled = isPlainMap(spec)
    ? Object.keys(spec).find((key) => key !== 'containers' && /^containers?$/i.test(key.trim()))
    : undefined;
  if (misspelled !== undefined) {
    return {
      key: misspelled,
      message: `spec.${misspelled} is not a pod field, and spec.containers is missing (kubectl would refuse the pod): rename it to containers`,
    };
  }
  return {
    key: 'containers',
    message: `spec.containers is ${Array.isArray(containers) ? 'an empty list' : 'missing'}; a pod needs at least one container (kubectl would refuse it): list the app's containers there`,
  };
}

function valueAtPathOrUndefined(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const key of path) current = isPlainMap(current) ? current[key] : undefined;
  return current;
}

function isPlainMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (isPlainMap(value)) return 'a map';
  return `${typeof value === 'string' ? 'the string' : `the ${typeof value}`} ${JSON.stringify(value)}`;
}

function valueAtPath(value: unknown, path: readonly (string | number)[]): unknown {
  let current = value;
  for (const key of path) current = (current as Record<string | number, unknown>)[key];
  return current;
}

/** One patch operation on a YAML document: inserts into sequences, sets or deletes map keys. */
function applyToDocument(doc: Document, operation: PathOperation): void {
  const parentPath = operation.path.slice(0, -1);
  const last = operation.path[operation.path.length - 1];
  // Nothing on the way may be shared with another place in the document: an alias on the way
  // (`labels: *labels`) is replaced by a copy of what it points to, so the change lands in this
  // pod template only, never in the anchor's other uses (the selector); an anchored node on the
  // way (`template: &pod`) first gives its aliases (another workload's `template: *pod`) copies of
  // itself as it was. A map with a merge key (`<<: *base`) is written out whole, so an injected key
  // cannot hide the merged ones (a `labels:` of its own would replace the merged labels).
  for (let depth = 1; depth <= parentPath.length; depth++) {
    const prefix = parentPath.slice(0, depth);
    const node = doc.getIn(prefix, true);
    if (isAlias(node)) doc.setIn(prefix, aliasTargetCopy(doc, node));
    const current = doc.getIn(prefix, true);
    if (isMap(current) && current.items.some((pair) => isMergeKey(pair.key))) {
      unshareYamlNode(doc, current, { isWhole: true });
      doc.setIn(prefix, doc.createNode(current.toJS(doc), { aliasDuplicateObjects: false }));
    } else if (isNode(current)) {
      unshareYamlNode(doc, current, { isWhole: false });
    }
  }
  // A flow-style map or list (`metadata: {labels: {app: web}}`) that gains injected entries would
  // print as a long brace block; the changed branch goes to block style, the rest is kept as written.
  for (let depth = 0; depth <= parentPath.length; depth++) {
    const node = depth === 0 ? doc.contents : doc.getIn(parentPath.slice(0, depth), true);
    if (isCollection(node) && node.flow) node.flow = false;
  }
  const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
  const isInsert = operation.op === 'add' && isSeq(parent) && typeof last === 'number';
  // A node replaced or removed takes its anchors with it: their aliases elsewhere get copies first.
  const target = doc.getIn(operation.path, true);
  if (!isInsert && isNode(target)) unshareYamlNode(doc, target, { isWhole: true });
  if (operation.op === 'remove') {
    doc.deleteIn(operation.path);
    return;
  }
  if (isInsert) {
    // A comment above a block list's first item is the list's in the parsed document, so it would
    // end up above the item put in front (mutual-init); it goes with the item it was written over.
    const first = parent.items[0];
    if (last === 0 && isNode(first) && !parent.flow && parent.commentBefore) {
      first.commentBefore = first.commentBefore
        ? `${parent.commentBefore}\n${first.commentBefore}`
        : parent.commentBefore;
      first.spaceBefore = first.spaceBefore || parent.spaceBefore;
      parent.commentBefore = null;
    }
    parent.items.splice(last, 0, doc.createNode(operation.value, { aliasDuplicateObjects: false }));
    return;
  }
  // No anchors of its own (&a1 for a repeated value): nothing new is shared with anything else.
  doc.setIn(operation.path, doc.createNode(operation.value, { aliasDuplicateObjects: false }));
}

/** The offset of the node at `path`, or of the alias on the way that stands for it. */
function writtenAt(doc: Document, path: readonly (string | number)[]): number | undefined {
  let node: unknown = doc.contents;
  for (const key of path) {
    if (isAlias(node) || !isCollection(node)) break;
    node = node.get(key, true);
  }
  return isNode(node) ? node.range?.[0] : undefined;
}

function isMergeKey(key: unknown): boolean {
  const value = isScalar(key) ? key.value : key;
  return value === '<<' || (typeof value === 'symbol' && value.description === '<<');
}
