// YAML anchors share one node between several places (`template: &pod …` and `template: *pod`).
// Aliases are checked as kubectl checks them (anchor set before, not inside itself, no exponential
// expansion). Before `mutual inject` changes a node in place, or replaces it, every alias elsewhere
// that reads it becomes a copy of what it read, so the change lands in one pod template only,
// nothing else in the document moves with it, and no alias is left without its anchor.
import { type Alias, type Document, isAlias, isCollection, isPair, type Node, visit } from 'yaml';

/** Values a document may hold once its aliases are expanded; far above any real set of manifests. */
export const MAX_EXPANDED_VALUES = 1_000_000;

/** Which anchored node each alias of a document reads, and the other way round. */
interface AliasIndex {
  readonly targets: Map<Alias, Node>;
  readers: Map<Node, Alias[]>;
}

// Built once per document and kept until a change here adds or moves aliases, so that copying the
// aliases of a List of hundreds of pods is not a walk of the whole document per alias.
const indexes = new WeakMap<Document, AliasIndex>();

function indexOf(doc: Document): AliasIndex {
  let index = indexes.get(doc);
  if (index !== undefined) return index;
  index = { targets: new Map(), readers: new Map() };
  // An alias reads the last node with its anchor before it, in document order.
  const latest = new Map<string, Node>();
  const { targets, readers } = index;
  visit(doc, {
    Node: (_key, node) => {
      if (!isAlias(node)) {
        if (node.anchor) latest.set(node.anchor, node);
        return;
      }
      const target = latest.get(node.source);
      if (target === undefined) return;
      targets.set(node, target);
      readers.set(target, [...(readers.get(target) ?? []), node]);
    },
  });
  indexes.set(doc, index);
  return index;
}

/** Whether `node` holds an alias or an anchor (of itself or inside). */
function hasSharing(node: Node): boolean {
  let isShared = false;
  visit(node, {
    Node: (_key, inner) => {
      if (isAlias(inner) || inner.anchor) {
        isShared = true;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return isShared;
}

/**
 * A copy of what `alias` reads, with no anchors of its own (an anchor there would capture later
 * aliases), for the caller to put in the alias's place.
 */
export function aliasTargetCopy(doc: Document, alias: Alias): Node {
  const index = indexOf(doc);
  const target = index.targets.get(alias) ?? (alias.resolve(doc) as Node);
  const copy = anchorlessCopy(target);
  if (hasSharing(copy)) {
    indexes.delete(doc);
  } else {
    index.targets.delete(alias);
    index.readers.set(
      target,
      (index.readers.get(target) ?? []).filter((reader) => reader !== alias),
    );
  }
  return copy;
}

/**
 * Makes `node` the only reader of itself before it is changed. `isWhole`: it is about to be
 * replaced or rebuilt, so the anchors inside it go too and their aliases elsewhere are copied as
 * well. An anchor whose aliases were all copied is dropped from a node changed in place.
 */
export function unshareYamlNode(doc: Document, node: Node, { isWhole }: { isWhole: boolean }): void {
  const anchored: Node[] = [];
  const inside = new Set<Node>();
  if (isWhole) {
    visit(node, {
      Node: (_key, inner) => {
        inside.add(inner);
        if (!isAlias(inner) && inner.anchor) anchored.push(inner);
      },
    });
  } else if (node.anchor) {
    anchored.push(node);
  }
  if (anchored.length === 0) return;
  const { readers } = indexOf(doc);
  const copies = new Map<Alias, Node>();
  for (const target of anchored) {
    for (const alias of readers.get(target) ?? []) {
      if (!inside.has(alias)) copies.set(alias, target);
    }
  }
  if (isWhole || copies.size > 0) indexes.delete(doc);
  if (copies.size === 0) return;
  visit(doc, {
    Alias: (_key, alias) => {
      const target = copies.get(alias);
      return target === undefined ? undefined : anchorlessCopy(target);
    },
  });
  if (!isWhole) node.anchor = undefined;
}

function anchorlessCopy(node: Node): Node {
  const copy = node.clone() as Node;
  visit(copy, {
    Node: (_key, inner) => {
      if (!isAlias(inner)) inner.anchor = undefined;
    },
  });
  return copy;
}

/**
 * Aliases that cannot be read: no anchor of that name before them, inside the node their anchor is
 * on (a value containing itself), or, all together, expanding to more than MAX_EXPANDED_VALUES
 * (aliases of aliases, the "billion laughs" attack). Offsets are into the document's source.
 */
export function aliasProblems(doc: Document): { offset: number; message: string }[] {
  const problems: { offset: number; message: string }[] = [];
  const anchors = new Map<string, Node>();
  const targets = new Map<Alias, Node>();
  visit(doc, {
    Node: (_key, node, path) => {
      if (!isAlias(node)) {
        if (node.anchor) anchors.set(node.anchor, node);
        return;
      }
      const target = anchors.get(node.source);
      const offset = node.range?.[0] ?? 0;
      if (target === undefined) {
        problems.push({
          offset,
          message: 'an alias (*name) whose anchor (&name) is not set before it in this document',
        });
      } else if (path.includes(target)) {
        problems.push({
          offset,
          message: `the alias *${node.source} is inside the node its anchor &${node.source} is set on: that value would contain itself`,
        });
      } else {
        targets.set(node, target);
      }
    },
  });
  if (problems.length > 0 || targets.size === 0) return problems;
  const sizes = new Map<Node, number>();
  const size = (node: unknown): number => {
    if (isAlias(node)) return size(targets.get(node));
    if (isPair(node)) return size(node.key) + size(node.value);
    if (!isCollection(node)) return 1;
    let total = sizes.get(node);
    if (total === undefined) {
      total = 1;
      for (const item of node.items) total += size(item);
      sizes.set(node, total);
    }
    return total;
  };
  if (size(doc.contents) > MAX_EXPANDED_VALUES) {
    problems.push({
      offset: [...targets.keys()][0]?.range?.[0] ?? 0,
      message: `its aliases (*name) expand to more than ${MAX_EXPANDED_VALUES} values (aliases of aliases, as in a "billion laughs" attack); write the repeated parts out`,
    });
  }
  return problems;
}
