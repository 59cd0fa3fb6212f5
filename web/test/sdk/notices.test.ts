/**
 * Signed service notices against tests/vectors/status_notices.json, which the
 * Python side makes (tests/vectors/generate.py, with taube.status.signing) and
 * checks (tests/unit/test_status_signing.py; tests/crypto/test_vectors.py
 * regenerates it, so it cannot drift from the server's signing).
 */
import { strict as assert } from "node:assert";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { b64decode, hex } from "../../src/crypto/index.js";
import { checkNotice, noticeCanonicalBytes, parseStatusKey, verifyNotice } from "../../src/sdk/notices.js";

interface Case {
  name: string;
  notice: Record<string, unknown>;
  canonical?: string;
  canonical_hex?: string;
  expect: "signed" | "forged" | "unsigned";
}

function load(): { public_key: string; cases: Case[] } {
  // tests/vectors of the repository: $TAUBE_VECTORS, else relative to web/build/sdk-test/.
  const dir = process.env["TAUBE_VECTORS"] || fileURLToPath(new URL("../../../tests/vectors/", import.meta.url));
  const path = join(dir, "status_notices.json");
  if (!existsSync(path)) throw new Error(`vector file missing: ${path} (set TAUBE_VECTORS)`);
  return JSON.parse(readFileSync(path, "utf-8"));
}

const vectors = load();
const key = parseStatusKey({ public_key: vectors.public_key });
const WANT = { signed: true, forged: null, unsigned: false } as const;

test("the vectors cover signed, forged and unsigned notices", () => {
  const kinds = new Set(vectors.cases.map((c) => c.expect));
  assert.deepEqual([...kinds].sort(), ["forged", "signed", "unsigned"]);
  assert.ok(vectors.cases.filter((c) => c.expect === "signed").length >= 4);
});

test("canonical bytes are the Python side's, byte for byte (non-ASCII, escapes)", () => {
  for (const c of vectors.cases.filter((c) => c.canonical_hex !== undefined)) {
    const bytes = noticeCanonicalBytes(c.notice);
    assert.ok(bytes !== null, c.name);
    assert.equal(hex(bytes), c.canonical_hex, c.name);
    assert.equal(new TextDecoder().decode(bytes), c.canonical, c.name);
  }
});

test("every vector is signed, forged or unsigned as the Python side says", () => {
  for (const c of vectors.cases) {
    assert.equal(checkNotice(c.notice, key), WANT[c.expect], c.name);
    assert.equal(verifyNotice(c.notice, key), c.expect === "signed", c.name);
  }
});

test("a tampered copy of a signed vector does not verify", () => {
  for (const c of vectors.cases.filter((c) => c.expect === "signed")) {
    const n = c.notice;
    const atMs = n.at_ms as number;
    for (const tampered of [
      { ...n, text: `${n.text as string}!` },
      { ...n, id: `${n.id as string}x` },
      { ...n, level: n.level === "outage" ? "info" : "outage" },
      { ...n, at_ms: atMs + 1 },
      { ...n, at_ms: String(atMs) },
      { ...n, extra: "ignored, not signed" }, // only the four fields are covered: still valid
    ]) {
      const want = "extra" in tampered ? true : null;
      assert.equal(checkNotice(tampered, key), want, `${c.name}: ${JSON.stringify(tampered)}`);
    }
    const sig = b64decode(n.signature as string);
    sig[0] = sig[0]! ^ 1;
    assert.equal(checkNotice({ ...n, signature: Buffer.from(sig).toString("base64") }, key), null, c.name);
  }
});

test("without a known key a signed notice counts as unsigned (shown, not marked signed)", () => {
  const signed = vectors.cases.find((c) => c.expect === "signed")!;
  assert.equal(checkNotice(signed.notice, null), false);
  const other = new Uint8Array(key);
  other[0] = other[0]! ^ 1;
  assert.equal(checkNotice(signed.notice, other), null);
});

test("the status key answer is checked", () => {
  assert.equal(hex(parseStatusKey({ public_key: vectors.public_key })), hex(key));
  assert.throws(() => parseStatusKey({}));
  assert.throws(() => parseStatusKey({ public_key: "AAAA" }));
  assert.throws(() => parseStatusKey(null));
});
