/**
 * Pairwise sessions: X3DH followed by the Double Ratchet without header encryption
 * (docs/e2ee.md sections 4-6; mirror of taube/crypto/ratchet.py).
 *
 * Invariants:
 * - Decryption is transactional: every change is computed on a copy and committed
 *   only after the MAC verified; a failed decrypt leaves the state unchanged.
 * - At most MAX_SKIP keys are skipped in one chain per message, at most
 *   MAX_SKIPPED_TOTAL are stored (oldest evicted first).
 * - A message key is used once (DuplicateMessage otherwise).
 * - Until the initiator has decrypted a reply it sends PreKeyMessages.
 */

import { bytesEqual, concat, hex } from "./bytes.js";
import { Kind, MAX_U32, Reader, Writer } from "./encoding.js";
import { CryptoError, DuplicateMessage, InvalidKey, InvalidMessage, TooManySkipped } from "./errors.js";
import { kdfCk, kdfRk, messageKeys } from "./kdf.js";
import { IdentityKeyPair, KEY_SIZE, KeyPair, OneTimePreKey, SignedPreKey } from "./keys.js";
import {
  type Random,
  aesCbcDecrypt,
  aesCbcEncrypt,
  constantTimeEqual,
  defaultRandom,
  hmacSha256,
} from "./primitives.js";
import { PreKeyBundle, x3dhInitiate, x3dhRespond } from "./x3dh.js";

/** Most message keys one message may make us skip in one receiving chain. */
export const MAX_SKIP = 1000;
/** Most skipped message keys a session stores; the oldest is evicted beyond this. */
export const MAX_SKIPPED_TOTAL = 2000;
/** Old receiving ratchet keys remembered to recognise replays from earlier chains. */
export const MAX_PREVIOUS_CHAINS = 32;
export const MAC_SIZE = 32;
/** Bound on a ciphertext field when decoding, so a length prefix cannot ask for 4 GiB. */
export const MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

/** A Double Ratchet message: header (ratchet key, PN, N), ciphertext and MAC. */
export class RatchetMessage {
  constructor(
    readonly ratchetKey: Uint8Array,
    readonly previousCounter: number,
    readonly counter: number,
    readonly ciphertext: Uint8Array,
    readonly mac: Uint8Array,
  ) {}

  /** The encoding up to (not including) the MAC: what the MAC covers after AD. */
  authenticatedPart(): Uint8Array {
    return new Writer(Kind.RATCHET_MESSAGE, 46 + this.ciphertext.length + MAC_SIZE)
      .fixed(this.ratchetKey, KEY_SIZE)
      .u32(this.previousCounter)
      .u32(this.counter)
      .var(this.ciphertext)
      .finish();
  }

  toBytes(): Uint8Array {
    return concat(this.authenticatedPart(), this.mac);
  }

  static fromBytes(data: Uint8Array): RatchetMessage {
    const r = new Reader(data, Kind.RATCHET_MESSAGE);
    const key = r.fixed(KEY_SIZE);
    const pn = r.u32();
    const n = r.u32();
    const ciphertext = r.var(MAX_MESSAGE_SIZE);
    const mac = r.fixed(MAC_SIZE);
    r.finish();
    return new RatchetMessage(key, pn, n, ciphertext, mac);
  }
}

/** The X3DH header (who, which prekeys) wrapped around a RatchetMessage. */
export class PreKeyMessage {
  constructor(
    readonly identityKey: Uint8Array,
    readonly baseKey: Uint8Array,
    readonly signedPrekeyId: number,
    readonly oneTimePrekeyId: number | null,
    readonly message: RatchetMessage,
  ) {}

  toBytes(): Uint8Array {
    const inner = this.message.toBytes();
    return new Writer(Kind.PREKEY_MESSAGE, 79 + inner.length)
      .fixed(this.identityKey, KEY_SIZE)
      .fixed(this.baseKey, KEY_SIZE)
      .u32(this.signedPrekeyId)
      .optionalU32(this.oneTimePrekeyId)
      .var(inner)
      .finish();
  }

  static fromBytes(data: Uint8Array): PreKeyMessage {
    const r = new Reader(data, Kind.PREKEY_MESSAGE);
    const identity = r.fixed(KEY_SIZE);
    const baseKey = r.fixed(KEY_SIZE);
    const spkId = r.u32();
    const opkId = r.optionalU32();
    const inner = r.var(MAX_MESSAGE_SIZE + 1024);
    r.finish();
    return new PreKeyMessage(identity, baseKey, spkId, opkId, RatchetMessage.fromBytes(inner));
  }
}

/** Decode a pairwise ciphertext of either kind (dispatch on the type byte). */
export function decodePairwise(data: Uint8Array): PreKeyMessage | RatchetMessage {
  if (data instanceof Uint8Array && data.length >= 2 && data[1] === Kind.PREKEY_MESSAGE) {
    return PreKeyMessage.fromBytes(data);
  }
  return RatchetMessage.fromBytes(data);
}

interface Pending {
  signedPrekeyId: number;
  oneTimePrekeyId: number | null;
}

interface Skipped {
  ratchetKey: Uint8Array;
  index: number;
  seed: Uint8Array;
}

interface State {
  initiator: boolean;
  associatedData: Uint8Array;
  baseKey: Uint8Array;
  rootKey: Uint8Array;
  dhs: KeyPair;
  dhr: Uint8Array;
  cks: Uint8Array;
  ns: number;
  ckr: Uint8Array | null;
  nr: number;
  pn: number;
  pending: Pending | null;
  previous: readonly Uint8Array[];
  /** Insertion-ordered (oldest first), keyed by slotKey(ratchetKey, index). */
  skipped: Map<string, Skipped>;
}

function slotKey(ratchetKey: Uint8Array, index: number): string {
  return `${hex(ratchetKey)}:${index}`;
}

/** Derive and collect the keys of messages `state.nr .. until-1` of the receiving chain. */
function skip(state: State, until: number, out: Skipped[]): void {
  if (state.ckr === null) return;
  if (until - state.nr > MAX_SKIP) {
    throw new TooManySkipped(`message needs ${until - state.nr} skipped keys, more than MAX_SKIP=${MAX_SKIP}`);
  }
  let ckr = state.ckr;
  let nr = state.nr;
  while (nr < until) {
    const [seed, next] = kdfCk(ckr);
    out.push({ ratchetKey: state.dhr, index: nr, seed });
    ckr = next;
    nr += 1;
  }
  state.ckr = ckr;
  state.nr = nr;
}

/** One end of a pairwise Double Ratchet session (build with initiate/respond). */
export class Session {
  private s: State;
  private readonly random: Random;

  private constructor(state: State, random: Random) {
    this.s = state;
    this.random = random;
  }

  // -- construction ------------------------------------------------------------

  /** Alice: verify `bundle` (InvalidSignature if bad), run X3DH, start the ratchet. */
  static initiate(identity: IdentityKeyPair, bundle: PreKeyBundle, random: Random = defaultRandom): Session {
    const x = x3dhInitiate(identity, bundle, KeyPair.generate(random));
    const dhs = KeyPair.generate(random);
    const [rootKey, cks] = kdfRk(x.sharedSecret, dhs.dh(bundle.signedPrekey));
    return new Session(
      {
        initiator: true,
        associatedData: x.associatedData,
        baseKey: x.baseKey.public,
        rootKey,
        dhs,
        dhr: Uint8Array.from(bundle.signedPrekey),
        cks,
        ns: 0,
        ckr: null,
        nr: 0,
        pn: 0,
        pending: { signedPrekeyId: x.signedPrekeyId, oneTimePrekeyId: x.oneTimePrekeyId },
        previous: [],
        skipped: new Map(),
      },
      random,
    );
  }

  /**
   * Bob: build the session from a prekey message and decrypt it. The caller looks
   * up the prekeys the message names and deletes the one-time prekey only after
   * this returns. Throws (and no session exists) if decryption fails.
   */
  static respond(
    identity: IdentityKeyPair,
    message: PreKeyMessage | Uint8Array,
    signedPrekey: SignedPreKey,
    oneTimePrekey: OneTimePreKey | null,
    random: Random = defaultRandom,
  ): [Session, Uint8Array] {
    const msg = message instanceof PreKeyMessage ? message : PreKeyMessage.fromBytes(message);
    if (msg.signedPrekeyId !== signedPrekey.keyId) {
      throw new InvalidMessage("prekey message names a different signed prekey");
    }
    const opkId = oneTimePrekey === null ? null : oneTimePrekey.keyId;
    if (msg.oneTimePrekeyId !== opkId) {
      throw new InvalidMessage("prekey message names a different one-time prekey");
    }
    let secret: Uint8Array;
    let ad: Uint8Array;
    try {
      [secret, ad] = x3dhRespond(identity, signedPrekey, oneTimePrekey, msg.identityKey, msg.baseKey);
    } catch (exc) {
      if (exc instanceof InvalidKey) throw new InvalidMessage(`bad key in prekey message: ${exc.message}`);
      throw exc;
    }
    const session = new Session(
      {
        initiator: false,
        associatedData: ad,
        baseKey: msg.baseKey,
        rootKey: secret,
        dhs: signedPrekey.keyPair,
        // No receiving chain yet: the first message always triggers a DH ratchet
        // step because its ratchet key differs from this placeholder.
        dhr: new Uint8Array(KEY_SIZE),
        cks: new Uint8Array(32),
        ns: 0,
        ckr: null,
        nr: 0,
        pn: 0,
        pending: null,
        previous: [],
        skipped: new Map(),
      },
      random,
    );
    const plaintext = session.decryptMessage(msg.message);
    return [session, plaintext];
  }

  // -- properties --------------------------------------------------------------

  get localIdentity(): Uint8Array {
    const ad = this.s.associatedData;
    return this.s.initiator ? ad.slice(0, 32) : ad.slice(32);
  }

  get remoteIdentity(): Uint8Array {
    const ad = this.s.associatedData;
    return this.s.initiator ? ad.slice(32) : ad.slice(0, 32);
  }

  get associatedData(): Uint8Array {
    return this.s.associatedData.slice();
  }

  /** The X3DH ephemeral public key that names this session. */
  get baseKey(): Uint8Array {
    return this.s.baseKey.slice();
  }

  /** True while outgoing messages are prekey messages. */
  get awaitingReply(): boolean {
    return this.s.pending !== null;
  }

  get skippedCount(): number {
    return this.s.skipped.size;
  }

  /** Whether a prekey message belongs to this session (same X3DH run). */
  matches(message: PreKeyMessage): boolean {
    const sameBase = constantTimeEqual(message.baseKey, this.s.baseKey);
    const sameIdentity = constantTimeEqual(message.identityKey, this.remoteIdentity);
    return sameBase && sameIdentity;
  }

  // -- messages ----------------------------------------------------------------

  /** Encrypt one message; returns the encoded (prekey or ratchet) message. */
  encrypt(plaintext: Uint8Array): Uint8Array {
    const s = this.s;
    if (s.ns >= MAX_U32) throw new CryptoError("sending chain exhausted; start a new session");
    const [seed, nextCks] = kdfCk(s.cks);
    const keys = messageKeys(seed);
    const ciphertext = aesCbcEncrypt(keys.cipherKey, keys.iv, plaintext);
    const unsigned = new RatchetMessage(s.dhs.public, s.pn, s.ns, ciphertext, new Uint8Array(0));
    const part = unsigned.authenticatedPart();
    const mac = hmacSha256(keys.macKey, concat(s.associatedData, part));
    s.cks = nextCks;
    s.ns += 1;
    if (s.pending === null) return concat(part, mac);
    const message = new RatchetMessage(s.dhs.public, unsigned.previousCounter, unsigned.counter, ciphertext, mac);
    return new PreKeyMessage(
      this.localIdentity,
      s.baseKey,
      s.pending.signedPrekeyId,
      s.pending.oneTimePrekeyId,
      message,
    ).toBytes();
  }

  /**
   * Decrypt a ratchet or prekey message of this session. Throws DecodeError /
   * InvalidMessage (garbage, bad MAC, other session), DuplicateMessage or
   * TooManySkipped; in every case the session is unchanged.
   */
  decrypt(data: Uint8Array): Uint8Array {
    const message = decodePairwise(data);
    if (message instanceof PreKeyMessage) {
      if (!this.matches(message)) throw new InvalidMessage("prekey message of a different session");
      return this.decryptMessage(message.message);
    }
    return this.decryptMessage(message);
  }

  private open(seed: Uint8Array, message: RatchetMessage): Uint8Array {
    const keys = messageKeys(seed);
    const expected = hmacSha256(keys.macKey, concat(this.s.associatedData, message.authenticatedPart()));
    if (!constantTimeEqual(expected, message.mac)) throw new InvalidMessage("message authentication failed");
    return aesCbcDecrypt(keys.cipherKey, keys.iv, message.ciphertext);
  }

  private decryptMessage(message: RatchetMessage): Uint8Array {
    try {
      return this.decryptTransaction(message);
    } catch (exc) {
      if (exc instanceof InvalidKey) throw new InvalidMessage(`bad ratchet key: ${exc.message}`);
      throw exc;
    }
  }

  private decryptTransaction(message: RatchetMessage): Uint8Array {
    const s = this.s;
    const slot = slotKey(message.ratchetKey, message.counter);
    const stored = s.skipped.get(slot);
    if (stored !== undefined) {
      const plaintext = this.open(stored.seed, message);
      s.skipped.delete(slot);
      s.pending = null;
      return plaintext;
    }

    // Shallow copy: `skipped` is shared but only touched on commit.
    const next: State = { ...s };
    const fresh: Skipped[] = [];
    let retired: Uint8Array | null = null;
    if (next.ckr !== null && constantTimeEqual(message.ratchetKey, next.dhr)) {
      if (message.counter < next.nr) throw new DuplicateMessage("message key already used or discarded");
    } else if (next.previous.some((key) => bytesEqual(key, message.ratchetKey))) {
      throw new DuplicateMessage("message key already used or discarded");
    } else {
      if (next.ckr !== null) {
        skip(next, message.previousCounter, fresh);
        retired = next.dhr;
      }
      next.pn = next.ns;
      next.ns = 0;
      next.nr = 0;
      next.dhr = message.ratchetKey;
      [next.rootKey, next.ckr] = kdfRk(next.rootKey, next.dhs.dh(next.dhr));
      next.dhs = KeyPair.generate(this.random);
      [next.rootKey, next.cks] = kdfRk(next.rootKey, next.dhs.dh(next.dhr));
    }
    skip(next, message.counter, fresh);
    if (next.ckr === null) throw new InvalidMessage("no receiving chain");
    const [seed, ckr] = kdfCk(next.ckr);
    next.ckr = ckr;
    next.nr += 1;
    const plaintext = this.open(seed, message); // throws before anything is committed
    // Commit: the MAC verified, so the message is genuine.
    next.pending = null;
    if (retired !== null) next.previous = [...next.previous, retired].slice(-MAX_PREVIOUS_CHAINS);
    for (const entry of fresh) next.skipped.set(slotKey(entry.ratchetKey, entry.index), entry);
    if (next.skipped.size > MAX_SKIPPED_TOTAL) {
      let excess = next.skipped.size - MAX_SKIPPED_TOTAL;
      for (const key of next.skipped.keys()) {
        if (excess-- <= 0) break;
        next.skipped.delete(key);
      }
    }
    this.s = next;
    return plaintext;
  }

  // -- persistence -------------------------------------------------------------

  toBytes(): Uint8Array {
    const s = this.s;
    const w = new Writer(Kind.SESSION, 320 + 32 * s.previous.length + 68 * s.skipped.size)
      .u8(s.initiator ? 1 : 0)
      .fixed(s.associatedData, 64)
      .fixed(s.baseKey, KEY_SIZE)
      .fixed(s.rootKey, 32)
      .fixed(s.dhs.private, KEY_SIZE)
      .fixed(s.dhr, KEY_SIZE)
      .fixed(s.cks, 32)
      .u32(s.ns)
      .optional(s.ckr, 32)
      .u32(s.nr)
      .u32(s.pn)
      .u8(s.pending === null ? 0 : 1)
      .u32(s.pending === null ? 0 : s.pending.signedPrekeyId)
      .optionalU32(s.pending === null ? null : s.pending.oneTimePrekeyId);
    w.u32(s.previous.length);
    for (const key of s.previous) w.fixed(key, KEY_SIZE);
    w.u32(s.skipped.size);
    for (const entry of s.skipped.values()) w.fixed(entry.ratchetKey, KEY_SIZE).u32(entry.index).fixed(entry.seed, 32);
    return w.finish();
  }

  static fromBytes(data: Uint8Array, random: Random = defaultRandom): Session {
    const r = new Reader(data, Kind.SESSION);
    const initiator = r.flag();
    const associatedData = r.fixed(64);
    const baseKey = r.fixed(KEY_SIZE);
    const rootKey = r.fixed(32);
    const dhs = KeyPair.fromPrivateBytes(r.fixed(KEY_SIZE));
    const dhr = r.fixed(KEY_SIZE);
    const cks = r.fixed(32);
    const ns = r.u32();
    const ckr = r.optional(32);
    const nr = r.u32();
    const pn = r.u32();
    const hasPending = r.flag();
    const spkId = r.u32();
    const opkId = r.optionalU32();
    if (!hasPending && (spkId !== 0 || opkId !== null)) throw r.fail("absent prekey header must be zero-filled");
    const pending = hasPending ? { signedPrekeyId: spkId, oneTimePrekeyId: opkId } : null;
    let count = r.u32();
    if (count > MAX_PREVIOUS_CHAINS) throw r.fail("too many previous chains");
    const previous: Uint8Array[] = [];
    for (let i = 0; i < count; i++) previous.push(r.fixed(KEY_SIZE));
    count = r.u32();
    if (count > MAX_SKIPPED_TOTAL) throw r.fail("too many skipped keys");
    const skipped = new Map<string, Skipped>();
    for (let i = 0; i < count; i++) {
      const ratchetKey = r.fixed(KEY_SIZE);
      const index = r.u32();
      const seed = r.fixed(32);
      skipped.set(slotKey(ratchetKey, index), { ratchetKey, index, seed });
    }
    r.finish();
    if (skipped.size !== count) throw r.fail("duplicate skipped key");
    return new Session(
      { initiator, associatedData, baseKey, rootKey, dhs, dhr, cks, ns, ckr, nr, pn, pending, previous, skipped },
      random,
    );
  }
}
