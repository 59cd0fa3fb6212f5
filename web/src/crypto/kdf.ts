/**
 * The key derivations of the Double Ratchet and of Sender Keys (libsignal's labels;
 * docs/e2ee.md sections 4 and 7; mirror of taube/crypto/kdf.py).
 */

import { utf8 } from "./bytes.js";
import { ZERO_SALT, hkdfSha256, hmacSha256 } from "./primitives.js";

export const ROOT_INFO = utf8("WhisperRatchet");
export const MESSAGE_KEYS_INFO = utf8("WhisperMessageKeys");
export const SENDER_KEY_INFO = utf8("Taube SenderKey v1");

const MESSAGE_KEY_SEED = Uint8Array.of(0x01);
const CHAIN_KEY_SEED = Uint8Array.of(0x02);

export interface MessageKeys {
  cipherKey: Uint8Array;
  macKey: Uint8Array;
  iv: Uint8Array;
}

/** Root KDF: returns `[newRootKey, chainKey]`. */
export function kdfRk(rootKey: Uint8Array, dhOut: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdfSha256(dhOut, rootKey, ROOT_INFO, 64);
  return [out.slice(0, 32), out.slice(32, 64)];
}

/** Chain KDF: returns `[messageKeySeed, nextChainKey]`. */
export function kdfCk(chainKey: Uint8Array): [Uint8Array, Uint8Array] {
  return [hmacSha256(chainKey, MESSAGE_KEY_SEED), hmacSha256(chainKey, CHAIN_KEY_SEED)];
}

/** Pairwise message keys from a seed: AES key, MAC key, CBC IV. */
export function messageKeys(seed: Uint8Array): MessageKeys {
  const out = hkdfSha256(seed, ZERO_SALT, MESSAGE_KEYS_INFO, 80);
  return { cipherKey: out.slice(0, 32), macKey: out.slice(32, 64), iv: out.slice(64, 80) };
}

/** Sender-key message keys: `[aesKey, iv]`. */
export function senderMessageKeys(seed: Uint8Array): [Uint8Array, Uint8Array] {
  const out = hkdfSha256(seed, ZERO_SALT, SENDER_KEY_INFO, 48);
  return [out.slice(0, 32), out.slice(32, 48)];
}
