// The chunks of an upstream body exactly as its socket delivered them.
//
// `for await (const chunk of readable)` calls read() with no size, and a
// paused Readable answers that with everything it has buffered, copied into
// one new Buffer (Readable's fromList). On a fast upstream two or three socket
// reads are buffered by the time the consumer asks again, so a 256 MiB blob
// fill allocated ~1,800 fresh 128 KiB buffers on top of the socket's own — a
// second full copy of the blob, and ~40 MiB of external memory waiting for a
// GC at the peak of a cold pull (issue 7's RSS target). In flowing mode a
// Readable hands over each pushed chunk as it is, so this iterator listens to
// 'data', pauses the stream while its consumer is busy, and resumes it when
// the queue is empty: the same backpressure, without the copy.
import type { Readable } from "node:stream";

/**
 * Yields body's chunks without concatenating them. Ends when body ends;
 * throws body's error, or a premature-close error when it closes before its
 * end. Leaving early (break, throw) destroys body, like Readable's own
 * iterator.
 */
export async function* bodyChunks(body: Readable): AsyncGenerator<Buffer, void, undefined> {
  const queue: Buffer[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: Buffer): void => {
    queue.push(chunk);
    body.pause();
    notify();
  };
  const onEnd = (): void => {
    ended = true;
    notify();
  };
  const onError = (err: Error): void => {
    failure ??= err;
    notify();
  };
  const onClose = (): void => {
    if (!ended) failure ??= Object.assign(new Error("premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
    notify();
  };
  body.on("data", onData);
  body.on("end", onEnd);
  body.on("error", onError);
  body.on("close", onClose);
  if (body.readableEnded) ended = true;
  else if (body.destroyed) failure = body.errored ?? Object.assign(new Error("premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
  let finished = false;
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk !== undefined) {
        if (queue.length === 0 && !ended && failure === undefined) body.resume();
        yield chunk;
        continue;
      }
      if (failure !== undefined) throw failure;
      if (ended) {
        finished = true;
        return;
      }
      body.resume();
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    body.off("data", onData);
    body.off("end", onEnd);
    body.off("error", onError);
    body.off("close", onClose);
    if (!finished && !body.destroyed) body.destroy();
  }
}
