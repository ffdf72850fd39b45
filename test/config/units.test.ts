import { describe, it, expect } from "vitest";
import { formatDuration, formatSize, parseDuration, parseSize } from "../../src/config/units.js";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["5m", 300_000],
    ["2h", 7_200_000],
    ["7d", 604_800_000],
    ["1h30m", 5_400_000],
    ["1m30s", 90_000],
    ["1d2h3m4s5ms", 93_784_005],
    ["1.5h", 5_400_000],
    ["0", 0],
    ["0s", 0],
    ["0ms", 0],
    [" 5m ", 300_000],
  ])("%j → %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "  ", "5 minutes", "5", "30", "1.5", "5x", "m5", "5m junk", "1h 30m", "s", "5M", "-5m", "-0", "1e3s", "0x10s", "NaN", "Infinity"])(
    "rejects %j with a message quoting it",
    (text) => {
      expect(() => parseDuration(text)).toThrow(JSON.stringify(text));
    },
  );

  it("says what is wrong", () => {
    expect(() => parseDuration("5 minutes")).toThrow('"5 minutes" is not a duration (use e.g. 30s, 5m, 7d)');
    expect(() => parseDuration("-5m")).toThrow(/negative/);
    expect(() => parseDuration("300")).toThrow(/unit is required \(e\.g\. 300s/);
  });

  it("rejects durations too large to represent", () => {
    expect(() => parseDuration("99999999999999999999d")).toThrow(/too large/);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [500, "500ms"],
    [30_000, "30s"],
    [300_000, "5m"],
    [5_400_000, "1h30m"],
    [604_800_000, "7d"],
    [93_784_005, "1d2h3m4s5ms"],
  ])("%d → %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("round-trips through parseDuration", () => {
    for (const ms of [1, 999, 1_000, 61_000, 86_400_001, 123_456_789]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});

describe("parseSize", () => {
  it.each([
    ["50GiB", 50 * 2 ** 30],
    ["512MiB", 512 * 2 ** 20],
    ["10KiB", 10_240],
    ["1TiB", 2 ** 40],
    ["100MB", 100_000_000],
    ["1GB", 1_000_000_000],
    ["1KB", 1_000],
    ["1kB", 1_000],
    ["1024", 1_024],
    ["1024B", 1_024],
    ["0", 0],
    ["0B", 0],
    ["1.5GiB", 1.5 * 2 ** 30],
    ["64Mi", 64 * 2 ** 20],
  ])("%j → %d bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(["", "big", "50 GiB please", "50G", "50gb", "50XB", "GiB", "-1GiB", "1e9", "0x10", "5..0MB"])(
    "rejects %j with a message quoting it",
    (text) => {
      expect(() => parseSize(text)).toThrow(JSON.stringify(text));
    },
  );

  it("says what is wrong", () => {
    expect(() => parseSize("big")).toThrow('"big" is not a size (use e.g. 512MiB, 50GiB, 100MB or a number of bytes)');
    expect(() => parseSize("50G")).toThrow(/unknown unit "G"/);
    expect(() => parseSize("-1GiB")).toThrow(/negative/);
  });
});

describe("formatSize", () => {
  it.each([
    [0, "0B"],
    [512, "512B"],
    [1_024, "1KiB"],
    [50 * 2 ** 30, "50GiB"],
    [64 * 2 ** 20, "64MiB"],
    [100_000_000, "100MB"],
    [1_500, "1.46KiB"],
  ])("%d → %s", (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it("produces text parseSize accepts", () => {
    for (const bytes of [1, 1_000, 1_500, 2 ** 30 + 1, 123_456_789_012]) {
      expect(() => parseSize(formatSize(bytes))).not.toThrow();
    }
    expect(parseSize(formatSize(50 * 2 ** 30))).toBe(50 * 2 ** 30);
  });
});
