/**
 * Sender Keys for group messages (docs/e2ee.md section 7; mirror of
 * taube/crypto/sender_keys.py). Receivers verify the Ed25519 signature before
 * anything else; a failed decrypt changes nothing.
 */

import { concat } from "./bytes.js";
import { Kind, MAX_U32, Reader, Writer } from "./encoding.js";
import { CryptoError, DuplicateMessage, TooManySkipped, UnknownSenderKey } from "./errors.js";
import { kdfCk, senderMessageKeys } from "./kdf.js";
import { KEY_SIZE, SIGNATURE_SIZE } from "./keys.js";
import {
  type Random,
  aesCbcDecrypt,
  aesCbcEncrypt,
  defaultRandom,
  draw,
  ed25519Public,
  ed25519Sign,
  ed25519Verify,
} from "./primitives.js";
import { MAX_MESSAGE_SIZE, MAX_SKIP, MAX_SKIPPED_TOTAL } from "./ratchet.js";

/** A group message: key id, iteration, ciphertext, Ed25519 signature over the rest. */
export class SenderKeyMessage {
  constructor(
    readonly keyId: number,
    readonly iteration: number,
    readonly ciphertext: Uint8Array,
    readonly signature: Uint8Array,
  ) {}

  signedPart(): Uint8Array {
    return new Writer(Kind.SENDER_KEY_MESSAGE, 14 + this.ciphertext.length + SIGNATURE_SIZE)
      .u32(this.keyId)
      .u32(this.iteration)
      .var(this.ciphertext)
      .finish();
  }

  toBytes(): Uint8Array {
    return concat(this.signedPart(), this.signature);
  }

  static fromBytes(data: Uint8Array): SenderKeyMessage {
    const r = new Reader(data, Kind.SENDER_KEY_MESSAGE);
    const keyId = r.u32();
    const iteration = r.u32();
    const ciphertext = r.var(MAX_MESSAGE_SIZE);
    const signature = r.fixed(SIGNATURE_SIZE);
    r.finish();
    return new SenderKeyMessage(keyId, iteration, ciphertext, signature);
  }
}

/** What a sender gives each member so it can read the sender's group messages. */
export class SenderKeyDistribution {
  constructor(
    readonly keyId: number,
    readonly iteration: number,
    readonly chainKey: Uint8Array,
    /** The Ed25519 public key that signs this sender's messages under keyId. */
    readonly signingKey: Uint8Array,
  ) {}

  toBytes(): Uint8Array {
    return new Writer(Kind.SENDER_KEY_DISTRIBUTION, 74)
      .u32(this.keyId)
      .u32(this.iteration)
      .fixed(this.chainKey, 32)
      .fixed(this.signingKey, KEY_SIZE)
      .finish();
  }

  static fromBytes(data: Uint8Array): SenderKeyDistribution {
    const r = new Reader(data, Kind.SENDER_KEY_DISTRIBUTION);
    const keyId = r.u32();
    const iteration = r.u32();
    const chainKey = r.fixed(32);
    const signingKey = r.fixed(32);
    r.finish();
    return new SenderKeyDistribution(keyId, iteration, chainKey, signingKey);
  }

  toString(): string {
    return `SenderKeyDistribution(keyId=${this.keyId}, iteration=${this.iteration})`;
  }
}

/** The sending state of one device in one group. */
export class SenderKeySender {
  private constructor(
    readonly keyId: number,
    private _iteration: number,
    private _chainKey: Uint8Array,
    private readonly signingSeed: Uint8Array,
  ) {}

  /** A fresh state: random key id, chain key and signing key (use on rotation). */
  static generate(random: Random = defaultRandom): SenderKeySender {
    const idBytes = draw(random, 4);
    const keyId = new DataView(idBytes.buffer).getUint32(0, false);
    const chainKey = draw(random, 32);
    const seed = draw(random, KEY_SIZE);
    return new SenderKeySender(keyId, 0, chainKey, seed);
  }

  get iteration(): number {
    return this._iteration;
  }

  get signingKey(): Uint8Array {
    return ed25519Public(this.signingSeed);
  }

  /** The distribution message for the current iteration (earlier messages stay closed). */
  distribution(): SenderKeyDistribution {
    return new SenderKeyDistribution(this.keyId, this._iteration, this._chainKey.slice(), this.signingKey);
  }

  encrypt(plaintext: Uint8Array): Uint8Array {
    if (this._iteration >= MAX_U32) throw new CryptoError("sender key exhausted; rotate");
    const [seed, nextChainKey] = kdfCk(this._chainKey);
    const [key, iv] = senderMessageKeys(seed);
    const signed = new SenderKeyMessage(
      this.keyId,
      this._iteration,
      aesCbcEncrypt(key, iv, plaintext),
      new Uint8Array(0),
    ).signedPart();
    const signature = ed25519Sign(this.signingSeed, signed);
    this._chainKey = nextChainKey;
    this._iteration += 1;
    return concat(signed, signature);
  }

  toBytes(): Uint8Array {
    return new Writer(Kind.SENDER_KEY_SENDER, 74)
      .u32(this.keyId)
      .u32(this._iteration)
      .fixed(this._chainKey, 32)
      .fixed(this.signingSeed, KEY_SIZE)
      .finish();
  }

  static fromBytes(data: Uint8Array): SenderKeySender {
    const r = new Reader(data, Kind.SENDER_KEY_SENDER);
    const keyId = r.u32();
    const iteration = r.u32();
    const chainKey = r.fixed(32);
    const seed = r.fixed(KEY_SIZE);
    r.finish();
    return new SenderKeySender(keyId, iteration, chainKey, seed);
  }

  toString(): string {
    return `SenderKeySender(keyId=${this.keyId}, iteration=${this._iteration})`;
  }
}

/** What one member holds to read one sender's messages under one key id. */
export class SenderKeyReceiver {
  private constructor(
    readonly keyId: number,
    /** Iteration of the next message key the chain would produce. */
    private _iteration: number,
    private _chainKey: Uint8Array,
    readonly signingKey: Uint8Array,
    /** Insertion-ordered (oldest first): iteration -> seed. */
    private readonly skipped: Map<number, Uint8Array>,
  ) {}

  static fromDistribution(distribution: SenderKeyDistribution | Uint8Array): SenderKeyReceiver {
    const d =
      distribution instanceof SenderKeyDistribution ? distribution : SenderKeyDistribution.fromBytes(distribution);
    return new SenderKeyReceiver(d.keyId, d.iteration, d.chainKey.slice(), d.signingKey.slice(), new Map());
  }

  get iteration(): number {
    return this._iteration;
  }

  get skippedCount(): number {
    return this.skipped.size;
  }

  /** Verify and decrypt a group message; the state is unchanged if this throws. */
  decrypt(data: Uint8Array): Uint8Array {
    const message = SenderKeyMessage.fromBytes(data);
    if (message.keyId !== this.keyId) throw new UnknownSenderKey(`no state for sender key id ${message.keyId}`);
    ed25519Verify(this.signingKey, message.signedPart(), message.signature);
    const n = message.iteration;
    if (n < this._iteration) {
      const seed = this.skipped.get(n);
      if (seed === undefined) throw new DuplicateMessage("message key already used or discarded");
      const [key, iv] = senderMessageKeys(seed);
      const plaintext = aesCbcDecrypt(key, iv, message.ciphertext);
      this.skipped.delete(n);
      return plaintext;
    }
    if (n - this._iteration > MAX_SKIP) throw new TooManySkipped(`message needs ${n - this._iteration} skipped keys`);
    let chainKey = this._chainKey;
    const fresh: [number, Uint8Array][] = [];
    for (let i = this._iteration; i < n; i++) {
      const [seed, next] = kdfCk(chainKey);
      fresh.push([i, seed]);
      chainKey = next;
    }
    const [seed, next] = kdfCk(chainKey);
    const [key, iv] = senderMessageKeys(seed);
    const plaintext = aesCbcDecrypt(key, iv, message.ciphertext);
    this._chainKey = next;
    this._iteration = n + 1;
    for (const [i, s] of fresh) this.skipped.set(i, s);
    if (this.skipped.size > MAX_SKIPPED_TOTAL) {
      let excess = this.skipped.size - MAX_SKIPPED_TOTAL;
      for (const k of this.skipped.keys()) {
        if (excess-- <= 0) break;
        this.skipped.delete(k);
      }
    }
    return plaintext;
  }

  toBytes(): Uint8Array {
    const w = new Writer(Kind.SENDER_KEY_RECEIVER, 80 + 36 * this.skipped.size)
      .u32(this.keyId)
      .u32(this._iteration)
      .fixed(this._chainKey, 32)
      .fixed(this.signingKey, KEY_SIZE)
      .u32(this.skipped.size);
    for (const [n, seed] of this.skipped) w.u32(n).fixed(seed, 32);
    return w.finish();
  }

  static fromBytes(data: Uint8Array): SenderKeyReceiver {
    const r = new Reader(data, Kind.SENDER_KEY_RECEIVER);
    const keyId = r.u32();
    const iteration = r.u32();
    const chainKey = r.fixed(32);
    const signingKey = r.fixed(32);
    const count = r.u32();
    if (count > MAX_SKIPPED_TOTAL) throw r.fail("too many skipped keys");
    const skipped = new Map<number, Uint8Array>();
    for (let i = 0; i < count; i++) {
      const n = r.u32();
      skipped.set(n, r.fixed(32));
    }
    r.finish();
    if (skipped.size !== count) throw r.fail("duplicate skipped key");
    return new SenderKeyReceiver(keyId, iteration, chainKey, signingKey, skipped);
  }

  toString(): string {
    return `SenderKeyReceiver(keyId=${this.keyId}, iteration=${this._iteration})`;
  }
}
