// YAML anchors share one node between several places (`template: &pod …` and `template: *pod`).
// Before `mutual inject` changes a node in place, or replaces it, every alias elsewhere that reads
// it becomes a copy of what it read, so the change lands in one pod template only, nothing else in
// the document moves with it, and no alias is left without its anchor.
import { type Alias, type Document, isAlias, type Node, visit } from 'yaml';

/** A copy of what `alias` reads, with no anchors of its own (an anchor there would capture later aliases). */
export function aliasTargetCopy(doc: Document, alias: Alias): Node {
  return anchorlessCopy(alias.resolve(doc) as Node);
}

/**
 * Makes `node` the only reader of itself before it is changed. `isWhole`: it is about to be
 * replaced or rebuilt, so the anchors inside it go too and their aliases elsewhere are copied as
 * well. An anchor whose aliases were all copied is dropped from a node changed in place.
 */
export function unshareYamlNode(doc: Document, node: Node, { isWhole }: { isWhole: boolean }): void {
  const anchored = new Set<Node>();
  const inside = new Set<Node>();
  if (isWhole) {
    visit(node, {
      Node: (_key, inner) => {
        inside.add(inner);
        if (!isAlias(inner) && inner.anchor) anchored.add(inner);
      },
    });
  } else if (node.anchor) {
    anchored.add(node);
  }
  if (anchored.size === 0) return;
  // Which node each alias reads: the last one with its anchor before it, in document order.
  const latest = new Map<string, Node>();
  const copies = new Map<Alias, Node>();
  visit(doc, {
    Node: (_key, inner) => {
      if (isAlias(inner)) {
        const target = latest.get(inner.source);
        if (target !== undefined && anchored.has(target) && !inside.has(inner)) copies.set(inner, target);
      } else if (inner.anchor) {
        latest.set(inner.anchor, inner);
      }
    },
  });
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

/** Offsets of aliases whose anchor is not defined earlier in the document. */
export function unresolvedAliases(doc: Document): number[] {
  const offsets: number[] = [];
  const anchors = new Set<string>();
  visit(doc, {
    Node: (_key, node) => {
      if (!isAlias(node)) {
        if (node.anchor) anchors.add(node.anchor);
      } else if (!anchors.has(node.source)) {
        offsets.push(node.range?.[0] ?? 0);
      }
    },
  });
  return offsets;
}
