/**
 * X3DH key agreement with Ed25519 identity keys (docs/e2ee.md section 3;
 * mirror of taube/crypto/x3dh.py).
 */

import { concat, isZero, utf8 } from "./bytes.js";
import { Kind, Reader, Writer } from "./encoding.js";
import { CryptoError } from "./errors.js";
import {
  IdentityKeyPair,
  KEY_SIZE,
  KeyPair,
  OneTimePreKey,
  SIGNATURE_SIZE,
  SignedPreKey,
  ed25519PublicToX25519,
  verifySignedPrekey,
} from "./keys.js";
import { ZERO_SALT, hkdfSha256 } from "./primitives.js";

export const X3DH_INFO = utf8("Taube X3DH v1");
const F = new Uint8Array(32).fill(0xff);

export interface PreKeyBundleFields {
  identityKey: Uint8Array;
  signedPrekeyId: number;
  signedPrekey: Uint8Array;
  signedPrekeySignature: Uint8Array;
  oneTimePrekeyId?: number | null;
  oneTimePrekey?: Uint8Array | null;
}

/** What the server hands out for one device: identity, signed prekey, maybe one OPK. */
export class PreKeyBundle {
  readonly identityKey: Uint8Array;
  readonly signedPrekeyId: number;
  readonly signedPrekey: Uint8Array;
  readonly signedPrekeySignature: Uint8Array;
  readonly oneTimePrekeyId: number | null;
  readonly oneTimePrekey: Uint8Array | null;

  constructor(fields: PreKeyBundleFields) {
    this.identityKey = fields.identityKey;
    this.signedPrekeyId = fields.signedPrekeyId;
    this.signedPrekey = fields.signedPrekey;
    this.signedPrekeySignature = fields.signedPrekeySignature;
    this.oneTimePrekeyId = fields.oneTimePrekeyId ?? null;
    this.oneTimePrekey = fields.oneTimePrekey ?? null;
    if ((this.oneTimePrekeyId === null) !== (this.oneTimePrekey === null)) {
      throw new CryptoError("oneTimePrekeyId and oneTimePrekey go together");
    }
  }

  static create(
    identity: IdentityKeyPair,
    signedPrekey: SignedPreKey,
    oneTimePrekey: OneTimePreKey | null = null,
  ): PreKeyBundle {
    return new PreKeyBundle({
      identityKey: identity.public,
      signedPrekeyId: signedPrekey.keyId,
      signedPrekey: signedPrekey.public,
      signedPrekeySignature: signedPrekey.signature,
      oneTimePrekeyId: oneTimePrekey?.keyId ?? null,
      oneTimePrekey: oneTimePrekey?.public ?? null,
    });
  }

  /** Throw InvalidSignature unless the identity key signed the signed prekey. */
  verify(): void {
    verifySignedPrekey(this.identityKey, this.signedPrekeyId, this.signedPrekey, this.signedPrekeySignature);
  }

  toBytes(): Uint8Array {
    return new Writer(Kind.PREKEY_BUNDLE, 171)
      .fixed(this.identityKey, KEY_SIZE)
      .u32(this.signedPrekeyId)
      .fixed(this.signedPrekey, KEY_SIZE)
      .fixed(this.signedPrekeySignature, SIGNATURE_SIZE)
      .optionalU32(this.oneTimePrekeyId)
      .fixed(this.oneTimePrekey ?? new Uint8Array(KEY_SIZE), KEY_SIZE)
      .finish();
  }

  static fromBytes(data: Uint8Array): PreKeyBundle {
    const r = new Reader(data, Kind.PREKEY_BUNDLE);
    const identityKey = r.fixed(KEY_SIZE);
    const signedPrekeyId = r.u32();
    const signedPrekey = r.fixed(KEY_SIZE);
    const signedPrekeySignature = r.fixed(SIGNATURE_SIZE);
    const oneTimePrekeyId = r.optionalU32();
    const opk = r.fixed(KEY_SIZE);
    r.finish();
    if (oneTimePrekeyId === null && !isZero(opk)) throw r.fail("absent one-time prekey must be zero-filled");
    return new PreKeyBundle({
      identityKey,
      signedPrekeyId,
      signedPrekey,
      signedPrekeySignature,
      oneTimePrekeyId,
      oneTimePrekey: oneTimePrekeyId === null ? null : opk,
    });
  }
}

/** The initiator's outcome: shared secret, AD and what goes in the prekey header. */
export interface X3DHResult {
  sharedSecret: Uint8Array;
  associatedData: Uint8Array;
  /** The ephemeral key EK_A; its public half travels in the prekey message. */
  baseKey: KeyPair;
  signedPrekeyId: number;
  oneTimePrekeyId: number | null;
}

/** AD = IK_A || IK_B (raw 32-byte Ed25519 public keys). */
export function associatedData(initiatorIdentity: Uint8Array, responderIdentity: Uint8Array): Uint8Array {
  return concat(initiatorIdentity, responderIdentity);
}

function kdf(dhs: Uint8Array[]): Uint8Array {
  return hkdfSha256(concat(F, ...dhs), ZERO_SALT, X3DH_INFO, 32);
}

/** Alice's side. Verifies the bundle first; `baseKey` is a fresh X25519 key pair. */
export function x3dhInitiate(identity: IdentityKeyPair, bundle: PreKeyBundle, baseKey: KeyPair): X3DHResult {
  bundle.verify();
  const theirIdentityDh = ed25519PublicToX25519(bundle.identityKey);
  const dhs = [
    identity.dh(bundle.signedPrekey),
    baseKey.dh(theirIdentityDh),
    baseKey.dh(bundle.signedPrekey),
  ];
  if (bundle.oneTimePrekey !== null) dhs.push(baseKey.dh(bundle.oneTimePrekey));
  return {
    sharedSecret: kdf(dhs),
    associatedData: associatedData(identity.public, bundle.identityKey),
    baseKey,
    signedPrekeyId: bundle.signedPrekeyId,
    oneTimePrekeyId: bundle.oneTimePrekeyId,
  };
}

/** Bob's side: returns `[sharedSecret, associatedData]`. */
export function x3dhRespond(
  identity: IdentityKeyPair,
  signedPrekey: SignedPreKey,
  oneTimePrekey: OneTimePreKey | null,
  theirIdentity: Uint8Array,
  theirBaseKey: Uint8Array,
): [Uint8Array, Uint8Array] {
  const theirIdentityDh = ed25519PublicToX25519(theirIdentity);
  const dhs = [
    signedPrekey.keyPair.dh(theirIdentityDh),
    identity.dh(theirBaseKey),
    signedPrekey.keyPair.dh(theirBaseKey),
  ];
  if (oneTimePrekey !== null) dhs.push(oneTimePrekey.keyPair.dh(theirBaseKey));
  return [kdf(dhs), associatedData(theirIdentity, identity.public)];
}
