// Parsing of WWW-Authenticate challenges (RFC 7235) as registries send them:
//   Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"
//   Basic realm="Registry Realm"

export interface Challenge {
  readonly scheme: "bearer" | "basic";
  readonly params: Readonly<Record<string, string>>;
}

const PARAM_RE = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/y;

/** Parses every challenge in a header value; unknown schemes are dropped. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) {
    let i = 0;
    let current: { scheme: string; params: Record<string, string> } | undefined;
    while (i < value.length) {
      while (i < value.length && (value[i] === " " || value[i] === ",")) i++;
      if (i >= value.length) break;
      PARAM_RE.lastIndex = i;
      const m = PARAM_RE.exec(value);
      if (m && current) {
        const key = m[1]!.toLowerCase();
        const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : (m[3] ?? "");
        current.params[key] = raw;
        i = PARAM_RE.lastIndex;
        continue;
      }
      // A new scheme token.
      const start = i;
      while (i < value.length && value[i] !== " " && value[i] !== ",") i++;
      const scheme = value.slice(start, i).toLowerCase();
      current = { scheme, params: {} };
      if (scheme === "bearer" || scheme === "basic") out.push(current as Challenge);
    }
  }
  return out;
}

/** The challenge tug acts on: Bearer when offered, else Basic. */
export function pickChallenge(header: string | string[] | undefined): Challenge | undefined {
  const all = parseChallenges(header);
  return all.find((c) => c.scheme === "bearer") ?? all.find((c) => c.scheme === "basic");
}

export function repositoryScope(repository: string, actions = "pull"): string {
  return `repository:${repository}:${actions}`;
}
