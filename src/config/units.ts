// Human-friendly units for the configuration file: durations ("30s", "5m",
// "1h30m") to milliseconds and sizes ("50GiB", "100MB", "1024") to bytes,
// plus the reverse formatters used in log and error messages.

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

// Largest first: formatDuration walks this list.
const DURATION_ORDER = ["d", "h", "m", "s", "ms"] as const;

const DURATION_HINT = "use e.g. 30s, 5m, 7d";

/**
 * Parses a duration such as "500ms", "30s", "5m", "2h", "7d", "1h30m" or
 * "1.5h" into whole milliseconds (rounded). "0" is the only unit-less value
 * accepted. Throws an Error whose message quotes the value and says what is
 * expected.
 */
export function parseDuration(s: string): number {
  const text = s.trim();
  const quoted = JSON.stringify(s);
  if (text === "") {
    throw new Error(`${quoted} is not a duration (${DURATION_HINT})`);
  }
  if (text.startsWith("-")) {
    throw new Error(`${quoted} is not a duration: negative durations are not allowed`);
  }
  if (/^\d+(\.\d+)?$/.test(text)) {
    if (Number(text) === 0) return 0;
    throw new Error(
      `${quoted} is not a duration: a unit is required (e.g. ${text}s or ${text}ms)`,
    );
  }
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    part.lastIndex = pos;
    const m = part.exec(text);
    if (m === null) {
      throw new Error(`${quoted} is not a duration (${DURATION_HINT})`);
    }
    const [, amount = "", unit = ""] = m;
    total += Number(amount) * (DURATION_UNITS[unit] ?? Number.NaN);
    pos = part.lastIndex;
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) {
    throw new Error(`${quoted} is too large a duration`);
  }
  return ms;
}

/** Formats milliseconds as a compact duration string, e.g. 5400000 → "1h30m", 0 → "0s". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  let rest = Math.round(ms);
  if (rest === 0) return "0s";
  let out = "";
  for (const unit of DURATION_ORDER) {
    const size = DURATION_UNITS[unit] ?? 1;
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KB: 1e3,
  kB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  PB: 1e15,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
  PiB: 2 ** 50,
  // Kubernetes-style binary suffixes.
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
};

const SIZE_HINT = "use e.g. 512MiB, 50GiB, 100MB or a number of bytes";

/**
 * Parses a size such as "50GiB", "512MiB", "100MB" (decimal units), "1024"
 * or "1024B" (bytes) into whole bytes (rounded). Unit letters are case
 * sensitive ("50gb" is rejected rather than guessed). Throws an Error whose
 * message quotes the value and says what is expected.
 */
export function parseSize(s: string): number {
  const text = s.trim();
  const quoted = JSON.stringify(s);
  if (text.startsWith("-")) {
    throw new Error(`${quoted} is not a size: negative sizes are not allowed`);
  }
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(text);
  if (m === null) {
    throw new Error(`${quoted} is not a size (${SIZE_HINT})`);
  }
  const [, amount = "", unit = ""] = m;
  const factor = unit === "" ? 1 : SIZE_UNITS[unit];
  if (factor === undefined) {
    throw new Error(`${quoted} is not a size: unknown unit "${unit}" (${SIZE_HINT})`);
  }
  const bytes = Math.round(Number(amount) * factor);
  if (!Number.isSafeInteger(bytes)) {
    throw new Error(`${quoted} is too large a size`);
  }
  return bytes;
}

const BINARY_ORDER = ["PiB", "TiB", "GiB", "MiB", "KiB"] as const;
const DECIMAL_ORDER = ["PB", "TB", "GB", "MB", "KB"] as const;

/**
 * Formats bytes for messages: exact when a unit divides the value
 * (53687091200 → "50GiB", 100000000 → "100MB", 512 → "512B"), otherwise
 * approximate in the largest binary unit with two decimals (1500 →
 * "1.46KiB"). The output is always accepted by parseSize.
 */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  if (bytes < 0) return `-${formatSize(-bytes)}`;
  const n = Math.round(bytes);
  if (n === 0) return "0B";
  for (const unit of BINARY_ORDER) {
    const f = SIZE_UNITS[unit] ?? 1;
    if (n >= f && n % f === 0) return `${n / f}${unit}`;
  }
  for (const unit of DECIMAL_ORDER) {
    const f = SIZE_UNITS[unit] ?? 1;
    if (n >= f && n % f === 0) return `${n / f}${unit}`;
  }
  for (const unit of BINARY_ORDER) {
    const f = SIZE_UNITS[unit] ?? 1;
    if (n >= f) return `${Number((n / f).toFixed(2))}${unit}`;
  }
  return `${n}B`;
}
