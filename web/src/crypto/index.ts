/**
 * Taube's end-to-end encryption core for the browser: a byte-compatible
 * TypeScript port of the Python package taube.crypto (specification:
 * docs/e2ee.md; known answers: tests/vectors/*.json). Synchronous, built on
 * @noble/curves, @noble/hashes and @noble/ciphers; no I/O.
 *
 *     const alice = Session.initiate(aliceIdentity, bobBundle);
 *     const wire = alice.encrypt(utf8("hi"));
 *     const [bob, plaintext] = Session.respond(bobIdentity, wire, bobSpk, bobOpk);
 */

export {
  CryptoError,
  DecodeError,
  DuplicateMessage,
  InvalidKey,
  InvalidMessage,
  InvalidSignature,
  TooManySkipped,
  UnknownSenderKey,
} from "./errors.js";
export { b64decode, b64encode, bytesEqual, compareBytes, concat, fromHex, fromUtf8, hex, utf8 } from "./bytes.js";
export { Kind, MAX_U32, Reader, VERSION, Writer } from "./encoding.js";
export { type Random, defaultRandom, constantTimeEqual, ed25519Verify } from "./primitives.js";
export { type MessageKeys, kdfCk, kdfRk, messageKeys, senderMessageKeys } from "./kdf.js";
export {
  IdentityKeyPair,
  KEY_SIZE,
  KeyPair,
  OneTimePreKey,
  SIGNATURE_SIZE,
  SignedPreKey,
  ed25519PublicToX25519,
  ed25519SeedToX25519Private,
  signedPrekeyMessage,
  verifySignedPrekey,
} from "./keys.js";
export {
  PreKeyBundle,
  type PreKeyBundleFields,
  type X3DHResult,
  associatedData,
  x3dhInitiate,
  x3dhRespond,
} from "./x3dh.js";
export {
  MAC_SIZE,
  MAX_MESSAGE_SIZE,
  MAX_PREVIOUS_CHAINS,
  MAX_SKIP,
  MAX_SKIPPED_TOTAL,
  PreKeyMessage,
  RatchetMessage,
  Session,
  decodePairwise,
} from "./ratchet.js";
export { SenderKeyDistribution, SenderKeyMessage, SenderKeyReceiver, SenderKeySender } from "./sender_keys.js";
export { ITERATIONS, SafetyNumber, accountKey, fingerprintHalf, safetyNumber } from "./safety.js";
export { CHUNK_SIZE, type EncryptedAttachment, decryptAttachment, encryptAttachment } from "./attachments.js";
