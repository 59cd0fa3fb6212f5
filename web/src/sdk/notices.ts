/**
 * Signed service notices (docs/status.md; port of taube.status.signing.verify_notice
 * and taube.client.Client._check_notice).
 *
 * The server signs each `notice` frame with the cluster's status key (Ed25519,
 * public at `GET /v1/status/key`) over the canonical JSON of `{id, text, level,
 * at_ms}`: keys sorted, separators `,` and `:`, non-ASCII kept as it is (Python's
 * `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`),
 * encoded as UTF-8. Known answers: tests/vectors/status_notices.json.
 */

import { b64decode, ed25519Verify, utf8 } from "../crypto/index.js";

/** A notice frame as received: `id`, `text`, `level`, `at_ms` and `signature` are read. */
export type NoticeFrame = Readonly<Record<string, unknown>>;

/**
 * The bytes a notice's signature covers, or null if the frame's fields cannot be
 * what the server signed (the server sends strings and an integer at_ms).
 *
 * JSON.stringify escapes strings exactly as Python's json with ensure_ascii=False:
 * `"` `\` and \b \f \n \r \t by name, other control characters as \u00xx (lower-case
 * hex), everything else (non-ASCII, U+007F, U+2028) as it is. A lone surrogate,
 * which Python cannot encode to UTF-8 (so never signs), comes out escaped and so
 * never verifies.
 */
export function noticeCanonicalBytes(frame: NoticeFrame): Uint8Array | null {
  const { id, text, level, at_ms } = frame;
  if (typeof id !== "string" || typeof text !== "string" || typeof level !== "string") return null;
  if (typeof at_ms !== "number" || !Number.isSafeInteger(at_ms)) return null;
  // Keys in sorted order; the numbers JSON.stringify writes for safe integers are Python's.
  return utf8(JSON.stringify({ at_ms, id, level, text }));
}

/** True if `frame.signature` is a valid signature of the notice under `publicKey`. */
export function verifyNotice(frame: NoticeFrame, publicKey: Uint8Array): boolean {
  const message = noticeCanonicalBytes(frame);
  const signature = frame.signature;
  if (message === null || typeof signature !== "string") return false;
  try {
    ed25519Verify(publicKey, message, b64decode(signature));
  } catch {
    return false;
  }
  return true;
}

/**
 * true: signed with the status key; false: unsigned, or no key known (show it,
 * marked unsigned); null: the signature does not verify, so it must not be shown.
 */
export function checkNotice(frame: NoticeFrame, publicKey: Uint8Array | null): boolean | null {
  const signature = frame.signature;
  if (typeof signature !== "string" || signature === "" || publicKey === null) return false;
  return verifyNotice(frame, publicKey) ? true : null;
}

/** The status key as `GET /v1/status/key` gives it (base64 of 32 bytes); throws if malformed. */
export function parseStatusKey(raw: unknown): Uint8Array {
  const text = (raw as { public_key?: unknown } | null)?.public_key;
  if (typeof text !== "string") throw new Error("no public_key in the status key answer");
  const key = b64decode(text);
  if (key.length !== 32) throw new Error("the status key is not 32 bytes");
  return key;
}
