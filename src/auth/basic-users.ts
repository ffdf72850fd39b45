// auth.users: clients of tug log in with Basic credentials checked against
// bcrypt hashes (bcryptjs: pure JS, no native build). A bcrypt check costs tens
// of milliseconds of CPU by design, and clients send their credentials with
// every request, so outcomes are remembered under a hash of the credentials:
// a success for 10 minutes, a failure for one (which also bounds the CPU a
// client guessing passwords can burn). Passwords are never stored or logged.
import { createHash } from "node:crypto";
import { compare } from "bcryptjs";
import { LRUCache } from "lru-cache";
import { SingleFlight } from "../coordination/single-flight.js";

const OK_TTL_MS = 10 * 60_000;
const FAIL_TTL_MS = 60_000;
// Checked when the user is unknown, so that a wrong name costs as long as a wrong password.
const DUMMY_HASH = "$2b$10$3K4Pjqy3vX8XmlrtKJiwq.5Wok38EIEirzoyYtI6EqDJGRNeW.ikS";

export class BasicUsers {
  readonly #users: ReadonlyMap<string, string>;
  readonly #now: () => number;
  readonly #outcomes = new LRUCache<string, { ok: boolean; until: number }>({ max: 10_000 });
  readonly #flight = new SingleFlight<boolean>();

  constructor(users: Readonly<Record<string, string>>, opts: { now?: () => number } = {}) {
    this.#users = new Map(Object.entries(users));
    this.#now = opts.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.#users.size > 0;
  }

  /** The user an `Authorization: Basic …` header logs in, or undefined. */
  async verify(authorization: string | undefined): Promise<string | undefined> {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? "");
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) return undefined;
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const hash = this.#users.get(user);
    const key = createHash("sha256").update(`${user}\0${password}\0${hash ?? ""}`).digest("hex");
    const known = this.#outcomes.get(key);
    if (known && known.until > this.#now()) return known.ok ? user : undefined;
    const ok = await this.#flight.run(key, async () => {
      const matched = await compare(password, bcryptjsHash(hash ?? DUMMY_HASH)).catch(() => false);
      const result = matched && hash !== undefined;
      this.#outcomes.set(key, { ok: result, until: this.#now() + (result ? OK_TTL_MS : FAIL_TTL_MS) });
      return result;
    });
    return ok ? user : undefined;
  }
}

/** bcryptjs reads $2a$, $2b$ and $2y$; $2x$ (crypt_blowfish's old variant) is $2a$ for the ASCII passwords it was made for. */
function bcryptjsHash(hash: string): string {
  return hash.startsWith("$2x$") ? `$2a$${hash.slice(4)}` : hash;
}
