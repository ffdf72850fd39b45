// Per-image progress bars for `tug warm`. On a terminal: one line per image,
// redrawn in place (cursor up + erase line) at most every 100 ms. Elsewhere (CI
// logs, pipes): no escape codes, one line when each image ends.
import { humanBytes } from "./format.js";
import type { ImageProgress } from "./warm.js";

export interface BoardOutput {
  write(chunk: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

const FILLED = "█";
const EMPTY = "░";

/** One line of the board, fitted to width. */
export function renderLine(p: ImageProgress, width: number, nameWidth: number): string {
  const name = p.name.length > nameWidth ? `…${p.name.slice(-(nameWidth - 1))}` : p.name.padEnd(nameWidth);
  const bytes = `${humanBytes(p.doneBytes)}/${humanBytes(p.totalBytes)}`;
  const layers = `${p.layersDone}/${p.layersTotal} layers`;
  const state = p.phase === "failed" ? `failed: ${p.note ?? ""}` : p.phase;
  const fixed = name.length + bytes.length + layers.length + 12;
  const barWidth = Math.max(10, Math.min(40, width - fixed - Math.min(state.length, 12)));
  const ratio = p.totalBytes > 0 ? Math.min(1, p.doneBytes / p.totalBytes) : p.phase === "done" ? 1 : 0;
  const filled = Math.round(ratio * barWidth);
  const pct = `${String(Math.floor(ratio * 100)).padStart(3)}%`;
  const line = `${name} ${FILLED.repeat(filled)}${EMPTY.repeat(barWidth - filled)} ${pct}  ${bytes}  ${layers}  ${state}`;
  return line.length > width ? line.slice(0, Math.max(0, width - 1)) + "…" : line;
}

export class ProgressBoard {
  readonly #out: BoardOutput;
  readonly #interactive: boolean;
  readonly #items: ImageProgress[] = [];
  readonly #announced = new Set<ImageProgress>();
  #drawn = 0;
  #timer: NodeJS.Timeout | undefined;
  #dirty = false;

  constructor(out: BoardOutput, opts: { interactive?: boolean } = {}) {
    this.#out = out;
    this.#interactive = opts.interactive ?? out.isTTY === true;
  }

  /** Called by warmImages on every change of an image's progress. */
  update(p: ImageProgress): void {
    if (!this.#items.includes(p)) this.#items.push(p);
    if (this.#interactive) {
      this.#dirty = true;
      this.#timer ??= setInterval(() => this.#draw(), 100);
      if (p.phase === "done" || p.phase === "failed") this.#draw();
      return;
    }
    if ((p.phase === "done" || p.phase === "failed") && !this.#announced.has(p)) {
      this.#announced.add(p);
      const what = `${p.layersTotal} layer${p.layersTotal === 1 ? "" : "s"}, ${humanBytes(p.totalBytes)}`;
      this.#out.write(p.phase === "done" ? `${p.name}: warmed (${what})\n` : `${p.name}: failed: ${p.note ?? ""}\n`);
    }
  }

  /** Draws the final state and stops redrawing. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#interactive) {
      this.#dirty = true;
      this.#draw();
    }
  }

  #draw(): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    const width = Math.max(40, (this.#out.columns ?? 100) - 1);
    const nameWidth = Math.min(32, Math.max(...this.#items.map((p) => p.name.length), 8));
    let s = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    for (const p of this.#items) s += `\r\x1b[2K${renderLine(p, width, nameWidth)}\n`;
    this.#drawn = this.#items.length;
    this.#out.write(s);
  }
}
