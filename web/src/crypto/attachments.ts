/**
 * Attachment encryption: chunked AES-256-GCM under a fresh random 32-byte key
 * (docs/e2ee.md section 9; mirror of taube/crypto/attachments.py).
 *
 *     blob = 0x01 0x06 || chunk_0 || ... || chunk_k
 *     chunk_i = AES-GCM(key, 0x00*7 || u32 i || last-flag, piece_i, aad = 0x01 0x06)
 */

import { VERSION, Kind } from "./encoding.js";
import { DecodeError, InvalidKey, InvalidMessage } from "./errors.js";
import {
  type Random,
  aesGcmDecrypt,
  aesGcmEncrypt,
  constantTimeEqual,
  defaultRandom,
  draw,
  sha256Hasher,
} from "./primitives.js";

export const CHUNK_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
const HEADER = Uint8Array.of(VERSION, Kind.ATTACHMENT);
const SEALED = CHUNK_SIZE + TAG_SIZE;

export interface EncryptedAttachment {
  ciphertext: Uint8Array;
  key: Uint8Array;
  /** SHA-256 of ciphertext. */
  digest: Uint8Array;
}

function nonce(index: number, last: boolean): Uint8Array {
  const n = new Uint8Array(12);
  new DataView(n.buffer).setUint32(7, index, false);
  n[11] = last ? 1 : 0;
  return n;
}

/** Encrypt under `key` (default: 32 fresh random bytes; never reuse a key). */
export function encryptAttachment(
  plaintext: Uint8Array,
  opts: { key?: Uint8Array; random?: Random } = {},
): EncryptedAttachment {
  const key = opts.key === undefined ? draw(opts.random ?? defaultRandom, 32) : Uint8Array.from(opts.key);
  if (key.length !== 32) throw new InvalidKey("attachment key must be 32 bytes");
  const count = Math.max(1, Math.ceil(plaintext.length / CHUNK_SIZE));
  const last = count - 1;
  const lastLen = plaintext.length - last * CHUNK_SIZE;
  const ciphertext = new Uint8Array(2 + last * SEALED + lastLen + TAG_SIZE);
  ciphertext.set(HEADER, 0);
  let off = 2;
  for (let i = 0; i < count; i++) {
    const piece = plaintext.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE);
    const sealed = aesGcmEncrypt(key, nonce(i, i === last), piece, HEADER);
    ciphertext.set(sealed, off);
    off += sealed.length;
  }
  const h = sha256Hasher();
  h.update(ciphertext);
  return { ciphertext, key, digest: h.digest() };
}

/** Check the digest and every chunk tag; throws InvalidMessage/DecodeError otherwise. */
export function decryptAttachment(ciphertext: Uint8Array, key: Uint8Array, digest: Uint8Array): Uint8Array {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new InvalidMessage("attachment key must be 32 bytes");
  const h = sha256Hasher();
  h.update(ciphertext);
  if (!constantTimeEqual(h.digest(), digest)) throw new InvalidMessage("attachment digest does not match");
  if (ciphertext.length < 2 || ciphertext[0] !== HEADER[0] || ciphertext[1] !== HEADER[1]) {
    throw new DecodeError("attachment: wrong version or type");
  }
  const body = ciphertext.subarray(2);
  if (body.length < TAG_SIZE) throw new DecodeError("attachment: truncated");
  const count = Math.max(1, Math.ceil(body.length / SEALED));
  if (body.length - (count - 1) * SEALED < TAG_SIZE) throw new DecodeError("attachment: truncated final chunk");
  const out = new Uint8Array(body.length - count * TAG_SIZE);
  let off = 0;
  for (let i = 0; i < count; i++) {
    const sealed = body.subarray(i * SEALED, (i + 1) * SEALED);
    const piece = aesGcmDecrypt(key, nonce(i, i === count - 1), sealed, HEADER);
    out.set(piece, off);
    off += piece.length;
  }
  return out;
}
