/** Shared helpers for the crypto tests: locating vectors, hex, random tapes. */

import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

import { fromHex, hex, type Random } from "../../src/crypto/index.js";

/** tests/vectors of the repository: $TAUBE_VECTORS, else relative to web/build/test/. */
export function vectorsDir(): string {
  const env = process.env["TAUBE_VECTORS"];
  if (env) return env;
  return fileURLToPath(new URL("../../../tests/vectors/", import.meta.url));
}

/** ../shared/vectors/wycheproof beside the repository: $TAUBE_WYCHEPROOF overrides. */
export function wycheproofDir(): string {
  const env = process.env["TAUBE_WYCHEPROOF"];
  if (env) return env;
  return fileURLToPath(new URL("../../../../shared/vectors/wycheproof/", import.meta.url));
}

export type Json = any;

export function loadVector(name: string): Json {
  const path = join(vectorsDir(), name);
  if (!existsSync(path)) throw new Error(`vector file missing: ${path} (set TAUBE_VECTORS)`);
  return JSON.parse(readFileSync(path, "utf-8"));
}

export const x = fromHex;
export { hex };

/** A random source that returns the recorded tape values in order, checking sizes. */
export interface Tape extends Random {
  remaining(): number;
}

export function tape(values: readonly string[]): Tape {
  let i = 0;
  const fn = ((n: number) => {
    if (i >= values.length) throw new Error(`random tape exhausted (asked for ${n} bytes)`);
    const v = fromHex(values[i++]!);
    if (v.length !== n) throw new Error(`tape value ${i - 1} has ${v.length} bytes, asked for ${n}`);
    return v;
  }) as Tape;
  fn.remaining = () => values.length - i;
  return fn;
}

/** Count of vector values compared, reported at the end of each test file. */
export class Counter {
  n = 0;
  add(k = 1): void {
    this.n += k;
  }
}
