/**
 * This device's end-to-end state in the encrypted store (port of taube.client.keystore):
 * identity, prekeys, sessions per (user, device) (`e:sess:`, the one we send with, and
 * `e:old:`, the last few it replaced, newest first, which the other device may still
 * be sending in; see "Crossed sessions" in e2ee.ts), pinned device keys, verification,
 * sender keys, content sent (for resends) and content received but not yet acked.
 * Changes are collected in the Db and made durable by `Db.commit()`, which the E2EE
 * layer awaits before a result is sent or shown.
 */

import type { Db } from "./db.js";
import { b64decode, b64encode, bytesEq } from "./util.js";

export type DeviceKey = string; // "user.device"

export function deviceKey(user: string, device: number): DeviceKey {
  return `${user}.${device}`;
}
export function parseDeviceKey(text: string): [string, number] {
  const i = text.lastIndexOf(".");
  return [text.slice(0, i), Number(text.slice(i + 1))];
}

interface Contact {
  verified: string | null;
  changed: boolean;
}

export class KeyStore {
  constructor(readonly db: Db) {}

  identity(): { state: Uint8Array; uploaded: boolean } | null {
    const v = this.db.get<{ state: string; uploaded: boolean }>("e:identity");
    return v ? { state: b64decode(v.state), uploaded: v.uploaded } : null;
  }
  saveIdentity(state: Uint8Array): void {
    this.db.set("e:identity", { state: b64encode(state), uploaded: false });
  }
  markUploaded(): void {
    const v = this.db.get<{ state: string; uploaded: boolean }>("e:identity");
    if (v) this.db.set("e:identity", { ...v, uploaded: true });
  }
  takePrekeyIds(count: number): number[] {
    const next = this.db.get<number>("e:nextid") ?? 1;
    this.db.set("e:nextid", next + count);
    return Array.from({ length: count }, (_, i) => next + i);
  }
  saveSignedPrekey(id: number, state: Uint8Array, createdMs: number): void {
    this.db.set(`e:spk:${id}`, { state: b64encode(state), created: createdMs });
  }
  signedPrekey(id: number): Uint8Array | null {
    const v = this.db.get<{ state: string }>(`e:spk:${id}`);
    return v ? b64decode(v.state) : null;
  }
  newestSignedPrekey(): { id: number; created: number } | null {
    let best: { id: number; created: number } | null = null;
    for (const k of this.db.keys("e:spk:")) {
      const v = this.db.get<{ created: number }>(k)!;
      const id = Number(k.slice(6));
      if (best === null || v.created > best.created || (v.created === best.created && id > best.id)) {
        best = { id, created: v.created };
      }
    }
    return best;
  }
  dropSignedPrekeysBefore(createdMs: number, keep: number): void {
    for (const k of this.db.keys("e:spk:")) {
      const v = this.db.get<{ created: number }>(k)!;
      if (v.created < createdMs && Number(k.slice(6)) !== keep) this.db.del(k);
    }
  }
  savePrekey(id: number, state: Uint8Array): void {
    this.db.set(`e:opk:${id}`, b64encode(state));
  }
  prekey(id: number): Uint8Array | null {
    const v = this.db.get<string>(`e:opk:${id}`);
    return v ? b64decode(v) : null;
  }
  deletePrekey(id: number): void {
    this.db.del(`e:opk:${id}`);
  }

  session(user: string, device: number): Uint8Array | null {
    const v = this.db.get<string>(`e:sess:${deviceKey(user, device)}`);
    return v ? b64decode(v) : null;
  }
  saveSession(user: string, device: number, state: Uint8Array): void {
    this.db.set(`e:sess:${deviceKey(user, device)}`, b64encode(state));
  }
  deleteSession(user: string, device: number): void {
    this.db.del(`e:sess:${deviceKey(user, device)}`);
  }

  /** The sessions with `user`.`device` that were replaced, newest first. */
  oldSessions(user: string, device: number): Uint8Array[] {
    const v = this.db.get<{ b: string; s: string }[]>(`e:old:${deviceKey(user, device)}`) ?? [];
    return v.map((o) => b64decode(o.s));
  }
  /** Keep a replaced session (as the newest; one per base key), and only the `keep` newest. */
  archiveSession(user: string, device: number, baseKey: Uint8Array, state: Uint8Array, keep: number): void {
    const k = `e:old:${deviceKey(user, device)}`;
    const b = b64encode(baseKey);
    const v = (this.db.get<{ b: string; s: string }[]>(k) ?? []).filter((o) => o.b !== b);
    this.db.set(k, [{ b, s: b64encode(state) }, ...v].slice(0, keep));
  }
  deleteOldSession(user: string, device: number, baseKey: Uint8Array): void {
    const k = `e:old:${deviceKey(user, device)}`;
    const v = this.db.get<{ b: string; s: string }[]>(k);
    if (v === undefined) return;
    const b = b64encode(baseKey);
    const rest = v.filter((o) => o.b !== b);
    if (rest.length === v.length) return;
    if (rest.length === 0) this.db.del(k);
    else this.db.set(k, rest);
  }

  /** device -> pinned identity key ("" for a device listed before it had keys). */
  devices(user: string): Map<number, Uint8Array> {
    const v = this.db.get<Record<string, string>>(`e:devs:${user}`) ?? {};
    const out = new Map<number, Uint8Array>();
    for (const [d, key] of Object.entries(v)) out.set(Number(d), b64decode(key));
    return out;
  }
  private saveDevices(user: string, devices: Map<number, Uint8Array>): void {
    const o: Record<string, string> = {};
    for (const [d, key] of [...devices.entries()].sort((a, b) => a[0] - b[0])) o[String(d)] = b64encode(key);
    this.db.set(`e:devs:${user}`, o);
  }
  knows(user: string): boolean {
    return this.db.get(`e:contact:${user}`) !== undefined || this.db.get(`e:devs:${user}`) !== undefined;
  }
  setKnown(user: string): void {
    if (this.db.get(`e:contact:${user}`) === undefined) this.db.set(`e:contact:${user}`, { verified: null, changed: false });
  }
  /** Pin a device's key; true if this changes what we knew of `user` (see the Python SDK). */
  recordDevice(user: string, device: number, identityKey: Uint8Array, firstContact?: boolean): boolean {
    const known = this.devices(user);
    const first = firstContact ?? !this.knows(user);
    const before = known.get(device);
    if (before !== undefined && bytesEq(before, identityKey)) return false;
    known.set(device, identityKey);
    this.saveDevices(user, known);
    if (this.db.get(`e:contact:${user}`) === undefined) this.db.set(`e:contact:${user}`, { verified: null, changed: false });
    if (first || (before !== undefined && before.length === 0)) return false;
    const c = this.db.get<Contact>(`e:contact:${user}`)!;
    this.db.set(`e:contact:${user}`, { ...c, changed: true });
    return true;
  }
  noteKeyless(user: string, device: number): void {
    const known = this.devices(user);
    if (!known.has(device)) {
      known.set(device, new Uint8Array(0));
      this.saveDevices(user, known);
    }
  }
  forgetDevice(user: string, device: number): void {
    const known = this.devices(user);
    known.delete(device);
    this.saveDevices(user, known);
    this.deleteSession(user, device);
    this.db.del(`e:old:${deviceKey(user, device)}`);
  }
  contact(user: string): { verified: Uint8Array | null; changed: boolean } {
    const c = this.db.get<Contact>(`e:contact:${user}`);
    if (!c) return { verified: null, changed: false };
    return { verified: c.verified === null ? null : b64decode(c.verified), changed: c.changed };
  }
  setVerified(user: string, keys: Uint8Array | null): void {
    this.db.set(`e:contact:${user}`, { verified: keys === null ? null : b64encode(keys), changed: false });
  }

  senderOut(group: string): { state: Uint8Array; holders: Set<DeviceKey> } | null {
    const v = this.db.get<{ state: string; holders: string[] }>(`e:sout:${group}`);
    return v ? { state: b64decode(v.state), holders: new Set(v.holders) } : null;
  }
  saveSenderOut(group: string, state: Uint8Array, holders: Set<DeviceKey>): void {
    this.db.set(`e:sout:${group}`, { state: b64encode(state), holders: [...holders].sort() });
  }
  senderIn(group: string, user: string, device: number, keyId: number): Uint8Array | null {
    const v = this.db.get<string>(`e:sin:${group}:${deviceKey(user, device)}:${keyId}`);
    return v ? b64decode(v) : null;
  }
  saveSenderIn(group: string, user: string, device: number, keyId: number, state: Uint8Array): void {
    this.db.set(`e:sin:${group}:${deviceKey(user, device)}:${keyId}`, b64encode(state));
  }

  received(seq: number): { c: Uint8Array; o: string | null } | null {
    const v = this.db.get<{ c: string; o: string | null }>(`e:recv:${seq}`);
    return v ? { c: b64decode(v.c), o: v.o } : null;
  }
  saveReceived(seq: number, content: Uint8Array, original: string | null): void {
    this.db.set(`e:recv:${seq}`, { c: b64encode(content), o: original });
  }
  forgetReceived(uptoSeq: number): void {
    for (const k of this.db.keys("e:recv:")) if (Number(k.slice(7)) <= uptoSeq) this.db.del(k);
  }
  /** Keep what we sent, for resend requests, until `forgetAt` (disappearing content) or
   * until `forgetSent` finds it older than its cut-off. */
  saveSent(id: string, to: string, content: Uint8Array, forgetAt: number | null = null, devices: DeviceKey[] = []): void {
    const before = this.db.get<Record<string, unknown>>(`e:sent:${id}`);
    // Encrypted again (a stale device list): the devices are the new ones, while the
    // content stays what it is (our edit may have changed it meanwhile).
    if (before) this.db.set(`e:sent:${id}`, { ...before, d: devices });
    else this.db.set(`e:sent:${id}`, { to, c: b64encode(content), t: Date.now(), f: forgetAt, d: devices });
  }
  /** The devices (`user.device`) we sent `id` to; none known: empty. */
  sentDevices(id: string): Set<DeviceKey> {
    return new Set(this.db.get<{ d?: DeviceKey[] }>(`e:sent:${id}`)?.d ?? []);
  }
  sent(id: string): { to: string; content: Uint8Array } | null {
    const v = this.db.get<{ to: string; c: string }>(`e:sent:${id}`);
    return v ? { to: v.to, content: b64decode(v.c) } : null;
  }
  /** What a resend of `id` sends from now on (our edit of it). */
  replaceSent(id: string, content: Uint8Array): void {
    const v = this.db.get<Record<string, unknown>>(`e:sent:${id}`);
    if (v) this.db.set(`e:sent:${id}`, { ...v, c: b64encode(content) });
  }
  /** Forget what we sent as `id` (our delete for everyone). */
  forgetSentId(id: string): void {
    this.db.del(`e:sent:${id}`);
  }
  /** Forget sent content older than `createdBefore` or due at `now`; how many. */
  forgetSent(createdBefore: number, now: number): number {
    let gone = 0;
    for (const k of this.db.keys("e:sent:")) {
      const v = this.db.get<{ t: number; f?: number | null }>(k)!;
      if (v.t < createdBefore || (v.f != null && v.f <= now)) {
        this.db.del(k);
        gone++;
      }
    }
    return gone;
  }
  /** When the next sent content with a deadline is due (null: none has one). */
  nextSentDue(): number | null {
    let next: number | null = null;
    for (const k of this.db.keys("e:sent:")) {
      const f = this.db.get<{ f?: number | null }>(k)!.f;
      if (f != null && (next === null || f < next)) next = f;
    }
    return next;
  }
}
