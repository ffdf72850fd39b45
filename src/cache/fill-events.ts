// The one way a fill's readers wait: until the fill reports progress, finishes
// or fails — or until the waiting stream itself closes.
import type { EventEmitter } from "node:events";

const FILL_EVENTS = ["progress", "done", "failed"] as const;

/** Resolves on the fill's next progress/done/failed event, or when `stream` (if given) closes. */
export function nextFillEvent(fill: EventEmitter, stream?: EventEmitter): Promise<void> {
  return new Promise<void>((resolve) => {
    const wake = (): void => {
      for (const e of FILL_EVENTS) fill.off(e, wake);
      stream?.off("close", wake);
      resolve();
    };
    for (const e of FILL_EVENTS) fill.on(e, wake);
    stream?.on("close", wake);
  });
}
