// The sources in order (file first, then Kubernetes): the first that knows an address answers;
// nobody knowing it is an answer too ("unknown", not meshed).
import type { DestinationAnswer, DestinationSource, DestinationTarget } from './answer.ts';

export interface SourcedAnswer extends DestinationAnswer {
  /** Which source answered; absent when none knew the destination. */
  readonly source?: string;
}

export interface DestinationLookup {
  resolve(target: DestinationTarget): SourcedAnswer;
  notReadyReason(): string | undefined;
  /** Calls `listener` after any source changed; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  close(): void;
}

export function createDestinationLookup(sources: readonly DestinationSource[]): DestinationLookup {
  return {
    resolve(target) {
      for (const source of sources) {
        const answer =
          target.kind === 'address'
            ? source.resolveAddress(target.address, target.port)
            : source.resolveName(target.host, target.port);
        if (answer) return { ...answer, source: source.name };
      }
      return { meshed: false, reason: 'unknown' };
    },
    notReadyReason() {
      for (const source of sources) {
        const reason = source.notReadyReason();
        if (reason) return reason;
      }
      return undefined;
    },
    subscribe(listener) {
      const unsubscribers = sources.map((source) => source.subscribe(listener));
      return () => {
        for (const unsubscribe of unsubscribers) unsubscribe();
      };
    },
    close() {
      for (const source of sources) source.close();
    },
  };
}
