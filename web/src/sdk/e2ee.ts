/**
 * End-to-end encryption for this browser device: a port of taube.client.e2ee
 * (docs/e2ee.md sections 6-8). Keys on the server, pairwise sessions per device,
 * fan-out to every device of the peer and our own other devices, Sender Keys for
 * groups (rotated when a device left), stale device lists, resend requests,
 * pinned identity keys and verification.
 *
 * Crossed sessions: two devices that send to each other before either has read the
 * other both start a session, and each then replaces its own with the one the
 * other's prekey message starts: each ends up sending in the session the other just
 * put away. So a replaced session is kept (the last MAX_OLD_SESSIONS per device) and
 * a message the current session cannot open is tried with those, newest first; the
 * one that opens it becomes current again, and both ends settle on one session.
 *
 * Every state change is committed to the encrypted store before its result is used.
 */

import {
  CryptoError,
  DuplicateMessage,
  IdentityKeyPair,
  InvalidMessage,
  OneTimePreKey,
  PreKeyBundle,
  PreKeyMessage,
  type RatchetMessage,
  type SafetyNumber,
  SenderKeyMessage,
  SenderKeyReceiver,
  SenderKeySender,
  Session,
  SignedPreKey,
  decodePairwise,
  safetyNumber,
} from "../crypto/index.js";
import { type Api, ApiError, type DeviceBundle, type DeviceIdentity } from "./api.js";
import type { Db } from "./db.js";
import {
  ENVELOPE_VERSION,
  NOTHING_FOR_YOU,
  decodeEnvelope,
  decodeInner,
  encodeEnvelope,
  encodeInner,
  type Envelope,
} from "./envelope.js";
import { type DeviceKey, KeyStore, deviceKey, parseDeviceKey } from "./keystore.js";
import { b64encode, bytesEq, compareBytes, parseAddress } from "./util.js";

export const ONE_TIME_PREKEYS = 100;
export const LOW_WATER = 20;
const SIGNED_PREKEY_ROTATION_MS = 7 * 24 * 3600 * 1000;
const SIGNED_PREKEY_GRACE_MS = 30 * 24 * 3600 * 1000;
const SENT_KEPT_MS = 7 * 24 * 3600 * 1000;
/** Replaced sessions kept per device, for messages the other device may still send in
 * them (crossed starts need one; libsignal keeps up to 40). */
export const MAX_OLD_SESSIONS = 5;

export interface DevicePayload {
  user: string;
  device: number;
  payload: string; // base64
}

export interface Decrypted {
  content: Uint8Array | null;
  encrypted: boolean;
  error?: string;
  retryRequest?: [string, number];
  originalId?: string;
  changed: string[];
}

/** Sends to this contact wait until the user verifies their new keys. */
export class UntrustedIdentity extends Error {
  readonly code = "e2ee.identity_changed";
  constructor(readonly user: string) {
    super(`@${user}'s security code changed: compare and verify it again before sending`);
  }
}

function payloadOf(user: string, device: number, bytes: Uint8Array): DevicePayload {
  return { user, device, payload: b64encode(bytes) };
}

function keySet(devices: DeviceIdentity[]): Uint8Array {
  const keys = devices.map((d) => d.identityKey).sort(compareBytes);
  const out = new Uint8Array(keys.reduce((n, k) => n + k.length, 0));
  let i = 0;
  for (const k of keys) {
    out.set(k, i);
    i += k.length;
  }
  return out;
}

export class E2ee {
  readonly keys: KeyStore;
  private identity: IdentityKeyPair | null = null;
  private sessions = new Map<DeviceKey, Session>();
  private pending = new Map<string, { group: string; keyId: number; holders: Set<DeviceKey> }>();
  private lock: Promise<unknown> = Promise.resolve();
  private starting: Promise<void> = Promise.resolve();

  constructor(
    readonly handle: string,
    readonly device: number,
    private readonly api: Api,
    private readonly db: Db,
    private readonly onChanged: (user: string) => void = () => undefined,
  ) {
    this.keys = new KeyStore(db);
  }

  /** Sessions are started one task at a time: each bundle fetch consumes one of the
   * peer's one-time prekeys, and the sender and a resend or stale-device answer can
   * need the same session at once. A task that waited looks again. */
  private startLock<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.starting.then(fn, fn);
    this.starting = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /** Run `fn` after every earlier state operation (like the Python SDK's profile thread). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.lock.then(fn, fn);
    this.lock = p.catch(() => undefined);
    return p;
  }

  private async commit(): Promise<void> {
    try {
      await this.db.commit();
    } catch (e) {
      this.sessions.clear();
      throw e;
    }
  }

  private session(user: string, device: number): Session | null {
    const k = deviceKey(user, device);
    let s = this.sessions.get(k) ?? null;
    if (s === null) {
      const state = this.keys.session(user, device);
      if (state === null) return null;
      s = Session.fromBytes(state);
      this.sessions.set(k, s);
    }
    return s;
  }
  private saveSession(user: string, device: number, s: Session): void {
    this.keys.saveSession(user, device, s.toBytes());
    this.sessions.set(deviceKey(user, device), s);
  }
  /** Make `s` the session we send with; keep the one it replaces, which the other
   * device may still be sending in (see "Crossed sessions" above). */
  private replaceSession(user: string, device: number, s: Session): void {
    const current = this.session(user, device);
    if (current !== null && !bytesEq(current.baseKey, s.baseKey)) this.archive(user, device, current);
    this.keys.deleteOldSession(user, device, s.baseKey); // if it was one
    this.saveSession(user, device, s);
  }
  private archive(user: string, device: number, s: Session): void {
    this.keys.archiveSession(user, device, s.baseKey, s.toBytes(), MAX_OLD_SESSIONS);
  }

  me(): IdentityKeyPair {
    if (this.identity === null) {
      const stored = this.keys.identity();
      if (stored === null) throw new CryptoError("this device has no identity key yet");
      this.identity = IdentityKeyPair.fromBytes(stored.state);
    }
    return this.identity;
  }

  // ---------------------------------------------------------------- own keys

  async ensureKeys(): Promise<void> {
    let stored = this.keys.identity();
    if (stored === null) {
      this.keys.saveIdentity(IdentityKeyPair.generate().toBytes());
      await this.commit();
      stored = this.keys.identity()!;
    }
    const identity = this.me();
    if (!stored.uploaded) {
      const upload = await this.serial(() => this.newUpload(identity, ONE_TIME_PREKEYS, true));
      await this.api.uploadKeys(upload);
      this.keys.markUploaded();
      await this.commit();
      return;
    }
    const status = await this.api.keysStatus();
    if (status.identity_key === null) {
      const upload = await this.serial(() => this.newUpload(identity, ONE_TIME_PREKEYS, true));
      await this.api.uploadKeys(upload);
      return;
    }
    const newest = this.keys.newestSignedPrekey();
    const rotate = newest === null || Date.now() - newest.created > SIGNED_PREKEY_ROTATION_MS;
    const low = status.one_time_prekeys < LOW_WATER;
    if (low || rotate) {
      const upload = await this.serial(() =>
        this.newUpload(identity, low ? ONE_TIME_PREKEYS - status.one_time_prekeys : 0, rotate),
      );
      await this.api.uploadKeys(upload);
    }
  }

  private async newUpload(identity: IdentityKeyPair, oneTime: number, signed: boolean) {
    let spkBody: { id: number; key: Uint8Array; signature: Uint8Array } | null = null;
    if (signed) {
      const [spkId] = this.keys.takePrekeyIds(1) as [number];
      const now = Date.now();
      const spk = SignedPreKey.generate(identity, spkId, { createdMs: now });
      this.keys.saveSignedPrekey(spkId, spk.toBytes(), now);
      this.keys.dropSignedPrekeysBefore(now - SIGNED_PREKEY_GRACE_MS, spkId);
      spkBody = { id: spkId, key: spk.public, signature: spk.signature };
    }
    const prekeys = this.keys.takePrekeyIds(Math.max(0, oneTime)).map((i) => OneTimePreKey.generate(i));
    for (const p of prekeys) this.keys.savePrekey(p.keyId, p.toBytes());
    await this.commit();
    return {
      identityKey: identity.public,
      signedPrekey: spkBody,
      oneTimePrekeys: prekeys.map((p) => ({ id: p.keyId, key: p.public })),
    };
  }

  // ---------------------------------------------------------------- sending

  /** One payload per recipient device for the outbox entry `id`; its content is kept
   * for resend requests until `forgetAt` (disappearing content) or for SENT_KEPT_MS. */
  async encrypt(id: string, to: string, content: Uint8Array, forgetAt: number | null = null): Promise<DevicePayload[]> {
    const address = parseAddress(to);
    if (address === null) throw new Error(`not an address: ${to}`);
    if (address.kind === "user") {
      await this.ensureKnown(address.name);
      await this.ensureKnown(this.handle);
      if (this.blocked(address.name)) throw new UntrustedIdentity(address.name);
      const targets = this.targets([address.name, this.handle]);
      await this.ensureSessions(targets);
      return this.serial(async () => {
        const inner = encodeInner({ c: content });
        const payloads = targets.map(([u, d]) => this.seal(u, d, inner));
        this.keys.saveSent(id, to, content, forgetAt, targets.map(([u, d]) => deviceKey(u, d)));
        await this.commit();
        return payloads;
      });
    }
    const members = (await this.api.group(address.name)).members.map((m) => m.handle);
    for (const m of members) await this.ensureKnown(m);
    const targets = this.targets(members);
    await this.ensureSessions(this.needsSenderKey(to, targets));
    return this.serial(async () => {
      const stored = this.keys.senderOut(to);
      const all = new Set(targets.map(([u, d]) => deviceKey(u, d)));
      let sender: SenderKeySender;
      let holders: Set<DeviceKey>;
      if (stored === null || [...stored.holders].some((h) => !all.has(h))) {
        sender = SenderKeySender.generate();
        holders = new Set();
      } else {
        sender = SenderKeySender.fromBytes(stored.state);
        holders = stored.holders;
      }
      const distribution = encodeInner({ k: sender.distribution().toBytes(), kg: to });
      const groupMessage = sender.encrypt(content);
      this.keys.saveSenderOut(to, sender.toBytes(), holders);
      const given = new Set<DeviceKey>();
      const payloads: DevicePayload[] = [];
      for (const [u, d] of targets) {
        if (holders.has(deviceKey(u, d))) {
          payloads.push(payloadOf(u, d, encodeEnvelope({ e: ENVELOPE_VERSION, g: groupMessage })));
        } else {
          const p = this.seal(u, d, distribution, groupMessage);
          if (p.payload !== b64encode(NOTHING_FOR_YOU)) given.add(deviceKey(u, d));
          payloads.push(p);
        }
      }
      this.keys.saveSent(id, to, content, forgetAt, targets.map(([u, d]) => deviceKey(u, d)));
      await this.commit();
      this.pending.set(id, { group: to, keyId: sender.keyId, holders: given });
      return payloads;
    });
  }

  /** The server stored `id`: the devices it carried our sender key to now hold it. */
  async sent(id: string): Promise<void> {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    await this.serial(async () => {
      const stored = this.keys.senderOut(p.group);
      if (stored === null) return;
      if (SenderKeySender.fromBytes(stored.state).keyId === p.keyId) {
        this.keys.saveSenderOut(p.group, stored.state, new Set([...stored.holders, ...p.holders]));
        await this.commit();
      }
    });
  }

  forgetPending(id: string): void {
    this.pending.delete(id);
  }

  ownOtherDevices(): number[] {
    return [...this.keys.devices(this.handle).keys()].filter((d) => d !== this.device);
  }

  /** Whether sends to `user` wait for a new verification (verified, and keys changed). */
  blocked(user: string): boolean {
    const c = this.keys.contact(user);
    return c.verified !== null && c.changed;
  }

  private targets(users: string[]): [string, number][] {
    const out: [string, number][] = [];
    for (const user of new Set(users)) {
      for (const device of [...this.keys.devices(user).keys()].sort((a, b) => a - b)) {
        if (user === this.handle && device === this.device) continue;
        out.push([user, device]);
      }
    }
    return out;
  }

  private seal(user: string, device: number, inner: Uint8Array, group?: Uint8Array): DevicePayload {
    const s = this.session(user, device);
    if (s === null) return payloadOf(user, device, NOTHING_FOR_YOU);
    const sealed = s.encrypt(inner);
    this.saveSession(user, device, s);
    const env: Envelope = { e: ENVELOPE_VERSION, p: sealed };
    if (group) env.g = group;
    return payloadOf(user, device, encodeEnvelope(env));
  }

  private needsSenderKey(group: string, targets: [string, number][]): [string, number][] {
    const stored = this.keys.senderOut(group);
    const all = new Set(targets.map(([u, d]) => deviceKey(u, d)));
    if (stored === null || [...stored.holders].some((h) => !all.has(h))) return targets;
    return targets.filter(([u, d]) => !stored.holders.has(deviceKey(u, d)));
  }

  // ---------------------------------------------------------------- devices and sessions

  private async ensureKnown(user: string): Promise<void> {
    if (this.keys.knows(user)) return;
    await this.startLock(async () => {
      if (this.keys.knows(user)) return;
      const bundles = await this.api.keyBundles(user);
      await this.serial(() => this.startSessions(user, bundles, true));
    });
  }

  private async ensureSessions(targets: [string, number][]): Promise<void> {
    const missing = () => targets.filter(([u, d]) => this.keys.session(u, d) === null);
    if (missing().length === 0) return;
    await this.startLock(async () => {
      for (const [user, device] of missing()) {
        let bundles: DeviceBundle[];
        try {
          bundles = await this.api.keyBundles(user, device);
        } catch (e) {
          if (e instanceof ApiError && e.code === "keys.not_found") continue;
          throw e;
        }
        await this.serial(() => this.startSessions(user, bundles, false));
      }
    });
  }

  private async startSessions(user: string, bundles: DeviceBundle[], firstContact: boolean): Promise<void> {
    const identity = this.me();
    let changed = false;
    this.keys.setKnown(user);
    for (const b of bundles) {
      if (user === this.handle && b.device === this.device) continue;
      const bundle = new PreKeyBundle({
        identityKey: b.identityKey,
        signedPrekeyId: b.signedPrekey.id,
        signedPrekey: b.signedPrekey.key,
        signedPrekeySignature: b.signedPrekey.signature,
        oneTimePrekeyId: b.oneTimePrekey?.id ?? null,
        oneTimePrekey: b.oneTimePrekey?.key ?? null,
      });
      const s = Session.initiate(identity, bundle);
      changed = this.keys.recordDevice(user, b.device, b.identityKey, firstContact) || changed;
      this.replaceSession(user, b.device, s);
    }
    await this.commit();
    if (changed) this.onChanged(user);
  }

  /** Apply a `msg.stale_devices` answer: forget devices that left, meet new ones. */
  async applyDeviceList(details: Record<string, unknown> | undefined): Promise<void> {
    const list = (k: string): [string, number][] => {
      const v = details?.[k];
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string").map(parseDeviceKey) : [];
    };
    const extra = list("extra");
    const missing = list("missing");
    await this.serial(async () => {
      for (const [u, d] of extra) {
        this.keys.forgetDevice(u, d);
        this.sessions.delete(deviceKey(u, d));
      }
      await this.commit();
    });
    await this.ensureSessions(missing);
    await this.serial(async () => {
      for (const [u, d] of missing) this.keys.noteKeyless(u, d);
      await this.commit();
    });
  }

  // ---------------------------------------------------------------- receiving

  decrypt(seq: number, sender: string, senderDevice: number, conversation: string, payload: Uint8Array): Promise<Decrypted> {
    return this.serial(async () => {
      const again = this.keys.received(seq);
      if (again !== null) return { content: again.c, encrypted: true, originalId: again.o ?? undefined, changed: [] };
      const env = decodeEnvelope(payload);
      if (env === null) return { content: payload, encrypted: false, changed: [] };
      if (env.x) return { content: null, encrypted: true, changed: [] };
      if (env.r !== undefined) {
        if (env.rd === undefined) return { content: null, encrypted: true, changed: [] };
        return { content: null, encrypted: true, retryRequest: [env.r, env.rd], changed: [] };
      }
      const changed: string[] = [];
      const snapshot = new Map(this.db.kv);
      try {
        const [content, original] = this.open(env, sender, senderDevice, conversation, changed);
        if (content !== null) this.keys.saveReceived(seq, content, original);
        await this.commit();
        return { content, encrypted: true, originalId: original ?? undefined, changed };
      } catch (e) {
        // Nothing changes when decryption fails: put the in-memory state back.
        this.rollback(snapshot);
        if (e instanceof DuplicateMessage) return { content: null, encrypted: true, changed: [] };
        if (e instanceof CryptoError) {
          return { content: null, encrypted: true, error: `${e.constructor.name}: ${e.message}`, changed: [] };
        }
        throw e;
      }
    });
  }

  private rollback(snapshot: Map<string, unknown>): void {
    for (const k of [...this.db.kv.keys()]) if (!snapshot.has(k)) this.db.del(k);
    for (const [k, v] of snapshot) if (this.db.kv.get(k) !== v) this.db.set(k, v);
    this.sessions.clear();
  }

  private open(
    env: Envelope,
    sender: string,
    senderDevice: number,
    conversation: string,
    changed: string[],
  ): [Uint8Array | null, string | null] {
    let inner = null;
    if (env.p !== undefined) {
      const [plaintext, remote] = this.openPairwise(env.p, sender, senderDevice);
      if (this.keys.recordDevice(sender, senderDevice, remote)) changed.push(sender);
      inner = decodeInner(plaintext);
      if (inner === null) throw new InvalidMessage("the decrypted payload is not an envelope");
      if (inner.k !== undefined && inner.kg === conversation) {
        const dist = SenderKeyReceiver.fromDistribution(inner.k);
        if (this.keys.senderIn(conversation, sender, senderDevice, dist.keyId) === null) {
          this.keys.saveSenderIn(conversation, sender, senderDevice, dist.keyId, dist.toBytes());
        }
      }
    }
    if (env.g !== undefined) {
      const message = SenderKeyMessage.fromBytes(env.g);
      const state = this.keys.senderIn(conversation, sender, senderDevice, message.keyId);
      if (state === null) throw new InvalidMessage("no sender key for this group message");
      const receiver = SenderKeyReceiver.fromBytes(state);
      const content = receiver.decrypt(env.g);
      this.keys.saveSenderIn(conversation, sender, senderDevice, message.keyId, receiver.toBytes());
      return [content, null];
    }
    if (inner === null) throw new InvalidMessage("empty envelope");
    return [inner.c ?? null, inner.o ?? null];
  }

  private openPairwise(data: Uint8Array, sender: string, senderDevice: number): [Uint8Array, Uint8Array] {
    const message = decodePairwise(data);
    let s: Session;
    let plaintext: Uint8Array;
    const opened = this.openKnown(data, message, sender, senderDevice);
    if (opened !== null) {
      [s, plaintext] = opened;
    } else if (message instanceof PreKeyMessage) {
      const spkState = this.keys.signedPrekey(message.signedPrekeyId);
      if (spkState === null) throw new InvalidMessage("the message names a signed prekey this device does not have");
      let opk: OneTimePreKey | null = null;
      if (message.oneTimePrekeyId !== null) {
        const opkState = this.keys.prekey(message.oneTimePrekeyId);
        if (opkState === null) throw new InvalidMessage("the message's one-time prekey was already used");
        opk = OneTimePreKey.fromBytes(opkState);
      }
      [s, plaintext] = Session.respond(this.me(), message, SignedPreKey.fromBytes(spkState), opk);
      if (opk !== null) this.keys.deletePrekey(opk.keyId);
    } else {
      throw new InvalidMessage("no session with this device");
    }
    this.replaceSession(sender, senderDevice, s);
    return [plaintext, s.remoteIdentity];
  }

  /**
   * Decrypt with the current session or, failing that, a replaced one (newest first);
   * null if none of them is the message's (a prekey message starting a new session, or
   * no session at all). Each try decrypts a copy, so a failed one changes no session.
   */
  private openKnown(
    data: Uint8Array,
    message: PreKeyMessage | RatchetMessage,
    sender: string,
    senderDevice: number,
  ): [Session, Uint8Array] | null {
    const keys = this.keys;
    const current = this.session(sender, senderDevice);
    function* states(): Generator<Uint8Array> {
      if (current !== null) yield current.toBytes();
      yield* keys.oldSessions(sender, senderDevice); // the replaced ones only read when needed
    }
    let error: CryptoError | null = null;
    for (const state of states()) {
      const s = Session.fromBytes(state);
      if (message instanceof PreKeyMessage && !s.matches(message)) continue;
      try {
        return [s, s.decrypt(data)];
      } catch (e) {
        if (e instanceof DuplicateMessage) throw e; // this session's message, already read: a replay
        if (!(e instanceof CryptoError)) throw e;
        error ??= e; // another session's message
      }
    }
    if (error !== null) throw error;
    return null;
  }

  // ---------------------------------------------------------------- resends

  /** The same unencrypted request to every device of `sender` and our other devices. */
  retryRequest(id: string, sender: string): DevicePayload[] {
    const request = encodeEnvelope({ e: ENVELOPE_VERSION, r: id, rd: this.device });
    return this.targets([sender, this.handle]).map(([u, d]) => payloadOf(u, d, request));
  }

  async resend(id: string, requester: string, requesterDevice: number): Promise<{ to: string; payloads: DevicePayload[] } | null> {
    const found = this.keys.sent(id);
    if (found === null) return null;
    // A device added later, or a member who joined later, must not get what was sent
    // before it was there by naming the message's id.
    if (!this.keys.sentDevices(id).has(deviceKey(requester, requesterDevice))) {
      console.warn(`resend of ${id} refused: ${requester}.${requesterDevice} did not get it`);
      return null;
    }
    if (this.blocked(requester)) return null; // as encrypt: not to a verified contact whose keys changed
    // A fresh session with the requesting device, which replaces the one it could not
    // read (kept for what it sent in it meanwhile), in one step under the lock:
    // dropping the old one first left a moment in which an encrypt beside this found
    // no session and gave that device nothing.
    const started = await this.startLock(async () => {
      let bundles: DeviceBundle[];
      try {
        bundles = await this.api.keyBundles(requester, requesterDevice);
      } catch (e) {
        if (e instanceof ApiError && e.code === "keys.not_found") return false;
        throw e;
      }
      await this.serial(() => this.startSessions(requester, bundles, false));
      return true;
    });
    if (!started || this.blocked(requester)) return null; // the bundle now may not be the verified key
    const address = parseAddress(found.to);
    const users =
      address?.kind === "group"
        ? (await this.api.group(address.name)).members.map((m) => m.handle)
        : [address?.name ?? "", this.handle];
    const targets = this.targets(users);
    const payloads = await this.serial(async () => {
      // Read again: our delete or the content's expiry may have come meanwhile.
      const kept = this.keys.sent(id);
      if (kept === null) return null;
      const inner = encodeInner({ c: kept.content, o: id });
      const out = targets.map(([u, d]) =>
        u === requester && d === requesterDevice ? this.seal(u, d, inner) : payloadOf(u, d, NOTHING_FOR_YOU),
      );
      await this.commit();
      return out;
    });
    return payloads === null ? null : { to: found.to, payloads };
  }

  // ---------------------------------------------------------------- trust

  async safetyNumber(user: string): Promise<{ number: SafetyNumber; verified: boolean }> {
    const mine = await this.api.identities(this.handle);
    const theirs = await this.api.identities(user);
    const number = safetyNumber(
      this.handle,
      mine.map((d) => d.identityKey),
      user,
      theirs.map((d) => d.identityKey),
    );
    const verified = await this.serial(async () => {
      let changed = false;
      for (const d of theirs) changed = this.keys.recordDevice(user, d.device, d.identityKey) || changed;
      await this.commit();
      if (changed) this.onChanged(user);
      const v = this.keys.contact(user).verified;
      return v !== null && bytesEq(v, keySet(theirs));
    });
    return { number, verified };
  }

  async verify(user: string): Promise<SafetyNumber> {
    const { number } = await this.safetyNumber(user);
    const theirs = await this.api.identities(user);
    await this.serial(async () => {
      this.keys.setVerified(user, keySet(theirs));
      await this.commit();
    });
    return number;
  }

  isVerified(user: string): boolean {
    const c = this.keys.contact(user);
    return c.verified !== null && !c.changed;
  }

  /** Forget sent content that is due (disappearing) or older than SENT_KEPT_MS. */
  async prune(now = Date.now()): Promise<void> {
    await this.serial(async () => {
      if (this.keys.forgetSent(now - SENT_KEPT_MS, now) > 0) await this.commit();
    });
  }

  /** Our edit (`content`: the edited message) or delete (null) of what we sent as
   * `id` changes the copy a resend would send. */
  async reviseSent(id: string, content: Uint8Array | null): Promise<void> {
    await this.serial(async () => {
      if (content === null) this.keys.forgetSentId(id);
      else this.keys.replaceSent(id, content);
      await this.commit();
    });
  }

  /** The copy of what we sent as `id` that a resend would send, or null. */
  sentCopy(id: string): Uint8Array | null {
    return this.keys.sent(id)?.content ?? null;
  }

  /** When the next sent content with a deadline is due (null: none has one). */
  nextSentDue(): number | null {
    return this.keys.nextSentDue();
  }
}
