// Files appear whole or not at all: written to a temp name, then renamed.
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

export async function writeFileAtomic(path: string, data: Uint8Array | string, tempPath: string): Promise<void> {
  try {
    await writeFile(tempPath, data, { flag: "wx" });
    await mkdir(dirname(path), { recursive: true });
    await rename(tempPath, path);
  } catch (err) {
    await rm(tempPath, { force: true });
    throw err;
  }
}
