/**
 * One browser device's connection, outbox and inbox: a port of taube.client.Client.
 *
 * - Connects to `/v1/ws` on this origin, authenticates with the acked `last_seq`,
 *   reconnects with exponential backoff and full jitter (at once after a drain).
 * - Outbox: `send` writes the message to the encrypted IndexedDB first; it leaves the
 *   outbox only on the server's `sent` (or a final refusal). Every connection
 *   retransmits the whole outbox in order, with the same ids (the server dedupes).
 *   Each entry is encrypted per recipient device; `msg.stale_devices` refreshes the
 *   device list and resends under the same id.
 * - Inbox: items are processed in seq order, once (items at or below the highest seq
 *   seen are dropped); the cumulative ack is sent only after the item's effects and
 *   `last_seq` are committed.
 */

import { CryptoError, decryptAttachment, encryptAttachment } from "../crypto/index.js";
import { Api, ApiError, SESSION_CODES, type DeviceSession, type GroupInfo, type StatusDocument, type StatusIncident } from "./api.js";
import {
  type AnyContent,
  type Attachment,
  type KnownContent,
  type MessageRef,
  decodeContent,
  encodeContent,
  unsupported,
} from "./content.js";
import type { Db } from "./db.js";
import { type DevicePayload, E2ee, UntrustedIdentity } from "./e2ee.js";
import { type Chat, History, type Row, rowKey } from "./history.js";
import { checkNotice } from "./notices.js";
import { b64decode, b64encode, backoffDelay, hexOf, normalizeHandle, parseAddress, uuid7 } from "./util.js";

const TRANSIENT_CODES = new Set(["rate.limited", "server.overloaded", "server.draining", "server.unavailable", "internal"]);
const AUTH_CLOSE_CODES = new Set([4001, 4003]);
const MAX_STALE_RETRIES = 3;
const SEND_WINDOW = 128;
const CHUNK_BYTES = 4 * 1024 * 1024;
/** How long the server may be unreachable before the status page is asked why. */
export const STATUS_AFTER_MS = 10_000;
const STATUS_EVERY_MS = 30_000;
const PRUNE_EVERY_MS = 3_600_000;

export interface OutboxEntry {
  id: string;
  to: string;
  payload: string; // base64 content bytes
  created: number;
}

export interface Notice {
  id: string;
  text: string;
  level: "info" | "warning" | "outage";
  at_ms: number;
  /** Signed with the server's status key and verified (false: unsigned, or no key known). */
  signed: boolean;
}

export type ClientEvent =
  | { type: "connected" }
  | { type: "disconnected"; reason: string; delay: number }
  | { type: "rows"; conv: string; rows: Row[]; added?: Row }
  | { type: "chats" }
  | { type: "typing"; conv: string; user: string; active: boolean }
  | { type: "presence"; user: string; online: boolean; lastSeen: number | null }
  | { type: "notice"; notice: Notice }
  | { type: "security"; user: string }
  | { type: "sendFailed"; id: string; to: string; code: string; message: string }
  | { type: "incoming"; row: Row }
  | { type: "group"; conv: string }
  | { type: "blocks" }
  | { type: "expired"; rows: { k: string; c: string }[] }
  | { type: "status"; status: StatusDocument | null }
  | { type: "fatal"; message: string };

class Signal {
  private waiters: (() => void)[] = [];
  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  wait(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      if (ms !== undefined) setTimeout(resolve, ms);
    });
  }
}

/** In-memory mirror of the durable outbox: which entry to transmit next (port of OutboxQueue). */
class OutboxQueue {
  entries = new Map<string, OutboxEntry>();
  private toTransmit: string[] = [];
  private inFlight = new Set<string>();
  add(e: OutboxEntry): void {
    if (this.entries.has(e.id)) return;
    this.entries.set(e.id, e);
    this.toTransmit.push(e.id);
  }
  reset(): void {
    this.inFlight.clear();
    this.toTransmit = [...this.entries.keys()];
  }
  next(): OutboxEntry | null {
    if (this.inFlight.size >= SEND_WINDOW) return null;
    while (this.toTransmit.length > 0) {
      const id = this.toTransmit.shift()!;
      const e = this.entries.get(id);
      if (e === undefined) continue;
      this.inFlight.add(id);
      return e;
    }
    return null;
  }
  retry(id: string): void {
    if (this.entries.has(id)) {
      this.inFlight.delete(id);
      this.toTransmit.unshift(id);
    }
  }
  acknowledge(id: string): OutboxEntry | null {
    this.inFlight.delete(id);
    const e = this.entries.get(id) ?? null;
    this.entries.delete(id);
    return e;
  }
}

interface Outcome {
  ready: boolean;
  reason: string;
  immediate?: boolean;
  retryAfter?: number;
  fatal?: string;
}

type Frame = Record<string, unknown> & { type: string };

export function deviceName(): string {
  const ua = typeof navigator === "undefined" ? "" : navigator.userAgent;
  const browser = /Firefox\//.test(ua) ? "Firefox" : /Edg\//.test(ua) ? "Edge" : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  return `${browser} (web)`;
}

export class Client {
  readonly api: Api;
  readonly e2ee: E2ee;
  readonly history: History;
  readonly handle: string;
  readonly device: number;
  connected = false;
  serverDown = false;
  notices = new Map<string, Notice>();
  presence = new Map<string, { online: boolean; lastSeen: number | null }>();
  groups = new Map<string, GroupInfo>();
  /** Users this account blocked (GET /v1/blocks on every connection, kept on the device). */
  blockedUsers = new Set<string>();
  /** The status page's answer while the server cannot be reached (null: none, or it failed too). */
  status: StatusDocument | null = null;
  private downSince: number | null = null;
  private statusAskedAt = 0;
  private statusBusy = false;
  private timers: ReturnType<typeof setInterval>[] = [];
  private prunedAt = 0; // when sent content was last pruned (purgeExpired)
  private listeners: ((e: ClientEvent) => void)[] = [];
  private ws: WebSocket | null = null;
  private outbox = new OutboxQueue();
  private outboxWake = new Signal();
  private runWake = new Signal();
  private sealed = new Map<string, DevicePayload[]>();
  private staleTries = new Map<string, number>();
  private seen: number;
  private taken: number;
  private acked: number;
  private pendingFrames: Frame[] = [];
  private watching: string[] | null = null;
  private closed = false;
  private persistTimer: ReturnType<typeof setTimeout> | null = null;
  private frameChain: Promise<void> = Promise.resolve();
  private adminCache = new Map<string, { at: number; admins: Set<string> }>();
  /** The status key (GET /v1/status/key), which service notices are checked against. */
  private statusKey: Uint8Array | null = null;
  private statusKeyFetch: Promise<void> | null = null;
  private lastFrameAt = 0;

  readonly wsUrl: string;

  /** `base` is the server's URL ("" for this page's origin). */
  constructor(
    readonly db: Db,
    readonly session: DeviceSession,
    base = "",
  ) {
    this.handle = session.handle;
    this.device = session.device;
    this.wsUrl = base ? `${base.replace(/^http/, "ws")}/v1/ws` : defaultWsUrl();
    this.api = new Api(session.token, base);
    this.history = new History(db, session.handle);
    this.e2ee = new E2ee(session.handle, session.device, this.api, db, (user) => this.securityChanged(user));
    const last = db.get<number>("last_seq") ?? 0;
    this.seen = this.taken = this.acked = last;
    for (const e of db.get<OutboxEntry[]>("outbox") ?? []) this.outbox.add(e);
    for (const b of db.get<string[]>("blocks") ?? []) this.blockedUsers.add(b);
  }

  on(listener: (e: ClientEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  private emit(e: ClientEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        console.error(err);
      }
    }
  }

  /** Start connecting in the background (sending works at once, through the outbox). */
  start(): void {
    this.downSince = Date.now();
    this.timers.push(setInterval(() => void this.checkStatus(), 1000));
    this.timers.push(setInterval(() => void this.purgeExpired(), 1000));
    void this.purgeExpired();
    void this.run();
    void this.refreshGroups().catch(() => undefined);
    if (typeof window !== "undefined") {
      window.addEventListener("online", () => this.runWake.notify());
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.ws?.close();
    this.runWake.notify();
    this.outboxWake.notify();
  }

  pending(): OutboxEntry[] {
    return [...this.outbox.entries.values()];
  }

  // ---------------------------------------------------------------- sending

  async send(to: string, content: KnownContent | string): Promise<string> {
    const address = parseAddress(to);
    if (address === null) throw new Error(`not an address (@handle or #group): ${to}`);
    if (address.kind === "user" && this.e2ee.blocked(address.name)) throw new UntrustedIdentity(address.name);
    let item: KnownContent = typeof content === "string" ? { type: "text", text: content } : content;
    if ((item.type === "text" || item.type === "poll" || item.type === "attachment") && item.expire_s == null) {
      const timer = this.history.disappearing(to);
      if (timer) item = { ...item, expire_s: timer };
    }
    const now = Date.now();
    const entry: OutboxEntry = { id: uuid7(now), to, payload: b64encode(encodeContent(item)), created: now };
    const incident = this.incident();
    const admins = item.type === "delete" ? await this.admins(to) : undefined;
    this.outbox.add(entry);
    this.db.set("outbox", [...this.outbox.entries.values()]);
    const recorded = await this.history.record({
      conv: to,
      sender: this.handle,
      device: this.device,
      id: entry.id,
      t: now,
      content: item,
      admins,
      status: "pending",
      queuedDuring: incident?.id,
    });
    if (recorded && !recorded.chat.name && address.kind === "group") {
      recorded.chat.name = this.groups.get(to)?.name;
    }
    await this.db.commit();
    await this.reviseSent(entry);
    if (recorded) this.emit({ type: "rows", conv: to, rows: recorded.rows, added: recorded.added });
    this.emit({ type: "chats" });
    this.outboxWake.notify();
    return entry.id;
  }

  reply(to: string, text: string, target: MessageRef): Promise<string> {
    return this.send(to, { type: "text", text, reply_to: target });
  }
  react(conv: string, target: MessageRef, emoji: string): Promise<string> {
    return this.send(conv, { type: "reaction", target, emoji });
  }
  edit(conv: string, target: MessageRef, text: string): Promise<string> {
    return this.send(conv, { type: "edit", target, text });
  }
  deleteForEveryone(conv: string, target: MessageRef): Promise<string> {
    return this.send(conv, { type: "delete", target });
  }
  poll(to: string, question: string, options: string[], multiple = false): Promise<string> {
    return this.send(to, { type: "poll", question, options, multiple });
  }
  vote(conv: string, poll: MessageRef, options: number[]): Promise<string> {
    return this.send(conv, { type: "vote", poll, options });
  }
  setDisappearing(conv: string, seconds: number): Promise<string> {
    return this.send(conv, { type: "disappearing", seconds });
  }

  // ---------------------------------------------------------------- blocking

  isBlocked(handle: string): boolean {
    return this.blockedUsers.has(normalizeHandle(handle));
  }

  /** The server stops delivering their 1:1 messages and hides our presence from them;
   * this client drops their 1:1 messages too, should a server deliver them anyway. */
  async block(handle: string): Promise<void> {
    const user = normalizeHandle(handle);
    await this.api.block(user);
    this.blockedUsers.add(user);
    await this.blocksChanged(user, `You blocked @${user}.`);
  }

  async unblock(handle: string): Promise<void> {
    const user = normalizeHandle(handle);
    await this.api.unblock(user);
    this.blockedUsers.delete(user);
    await this.blocksChanged(user, `You unblocked @${user}.`);
  }

  async refreshBlocks(): Promise<string[]> {
    const handles = await this.api.blocks();
    const before = [...this.blockedUsers].sort().join(",");
    this.blockedUsers = new Set(handles);
    if ([...this.blockedUsers].sort().join(",") !== before) {
      this.db.set("blocks", [...this.blockedUsers]);
      await this.db.commit();
      this.emit({ type: "blocks" });
    }
    return handles;
  }

  private async blocksChanged(user: string, line: string): Promise<void> {
    this.db.set("blocks", [...this.blockedUsers]);
    const row = this.history.systemLine(`@${user}`, line);
    await this.db.commit();
    this.emit({ type: "rows", conv: `@${user}`, rows: [row], added: row });
    this.emit({ type: "blocks" });
  }

  // ---------------------------------------------------------------- disappearing

  /** When this device must forget what it sent in `entry` (kept for resend requests):
   * disappearing content (its own timer) no later than it disappears, and an edit,
   * reaction, vote or delete no later than the chat's timer or its target would make
   * it; null: after 7 days. */
  private async forgetSentAt(entry: OutboxEntry): Promise<number | null> {
    const content = decodeContent(b64decode(entry.payload));
    if (content.type === "text" || content.type === "poll" || content.type === "attachment") {
      // send() gave it the chat's timer, if the chat had one.
      return content.expire_s ? entry.created + content.expire_s * 1000 : null;
    }
    if (content.type === "disappearing") return null; // no text, and it must reach every device
    const deadlines: number[] = [];
    const seconds = this.history.disappearing(entry.to);
    if (seconds) deadlines.push(entry.created + seconds * 1000);
    const target =
      content.type === "edit" || content.type === "reaction" || content.type === "delete"
        ? content.target
        : content.type === "vote"
          ? content.poll
          : null;
    const row = target === null ? undefined : await this.history.get(rowKey(target.sender, target.id));
    if (row?.expiresAt != null) deadlines.push(row.expiresAt);
    return deadlines.length > 0 ? Math.min(...deadlines) : null;
  }

  /** Our edit or delete of our own message, which took effect here, also changes the
   * copy of it kept for resend requests, so that a device that asks for it again gets
   * what the others see, not the original (the edit or delete may have reached that
   * device first and found nothing to change). The target went out first (the outbox
   * keeps order), so its copy exists unless it was forgotten already. */
  private async reviseSent(entry: OutboxEntry): Promise<void> {
    try {
      await this.reviseSentNow(decodeContent(b64decode(entry.payload)));
    } catch (e) {
      console.warn("cannot update the copy kept for resends", e); // housekeeping only
    }
  }

  /** Called once our edit or delete is recorded in our history, and again once it is
   * encrypted: whichever comes last finds both the copy and the change. */
  private async reviseSentNow(change: AnyContent): Promise<void> {
    if ((change.type !== "edit" && change.type !== "delete") || change.target.sender !== this.handle) return;
    const id = change.target.id;
    const row = await this.history.get(rowKey(this.handle, id));
    if (change.type === "delete") {
      if (!row || row.deleted) await this.e2ee.reviseSent(id, null);
      return;
    }
    const kept = this.e2ee.sentCopy(id);
    if (!row || row.text !== change.text || kept === null) return;
    const original = decodeContent(kept);
    if (original.type === "text") await this.e2ee.reviseSent(id, encodeContent({ ...original, text: change.text }));
  }

  /** Remove messages whose time has come, from the store and (by the event) the view,
   * and what we sent from the copies kept for resend requests (at once when due, and
   * hourly for those past their week). */
  private async purgeExpired(): Promise<void> {
    const now = Date.now();
    const sentDue = this.e2ee.nextSentDue();
    if ((sentDue !== null && sentDue <= now) || now - this.prunedAt >= PRUNE_EVERY_MS) {
      this.prunedAt = now;
      await this.e2ee.prune(now).catch((e: unknown) => console.warn("cannot forget sent content now; will retry", e));
    }
    const next = this.history.nextExpiry();
    if (next === null || next > now) return;
    try {
      const rows = await this.history.purgeDue();
      if (rows.length > 0) {
        this.emit({ type: "expired", rows });
        this.emit({ type: "chats" });
      }
    } catch (e) {
      console.warn("cannot remove expired messages now; will retry", e);
    }
  }

  // ---------------------------------------------------------------- status page

  /** The open incident the status page reported while the server cannot be reached. */
  incident(): StatusIncident | null {
    if (this.connected || this.status === null) return null;
    return this.status.open[0] ?? null;
  }

  /** After STATUS_AFTER_MS without a connection, ask `/status.json` why (every 30 s). */
  private async checkStatus(): Promise<void> {
    const now = Date.now();
    if (this.closed || this.connected || this.downSince === null || this.statusBusy) return;
    if (now - this.downSince < STATUS_AFTER_MS || now - this.statusAskedAt < STATUS_EVERY_MS) return;
    this.statusBusy = true;
    this.statusAskedAt = now;
    let status: StatusDocument | null;
    try {
      status = await this.api.statusDocument();
    } catch {
      status = null; // the status page cannot be reached either
    } finally {
      this.statusBusy = false;
    }
    if (this.connected) return;
    this.status = status;
    this.emit({ type: "status", status });
  }

  /** Encrypt and upload a file (needs the server now), then send it through the outbox. */
  async sendFile(
    to: string,
    data: Uint8Array,
    name: string,
    mime: string,
    opts: { caption?: string; replyTo?: MessageRef | null; progress?: (done: number, total: number) => void } = {},
  ): Promise<string> {
    const sealed = encryptAttachment(data);
    const blob = hexOf(sealed.digest);
    const size = sealed.ciphertext.length;
    let status = await this.api.createBlob(size, blob);
    let offset = status.offset;
    let retries = 0;
    while (!status.complete) {
      const chunk = sealed.ciphertext.subarray(offset, offset + CHUNK_BYTES);
      try {
        status = await this.api.uploadChunk(blob, offset, chunk);
      } catch (e) {
        if (!(e instanceof ApiError) || e.code !== "blob.offset_mismatch" || retries >= 5) throw e;
        retries += 1;
        offset = Number(e.details.offset ?? 0);
        continue;
      }
      offset = status.offset;
      opts.progress?.(offset, size);
    }
    const readers = [to];
    if (this.e2ee.ownOtherDevices().length > 0 && to !== `@${this.handle}`) readers.push(`@${this.handle}`);
    for (const r of readers) await this.api.grantBlob(blob, r);
    const content: Attachment = {
      type: "attachment",
      blob,
      key: sealed.key,
      digest: sealed.digest,
      size: data.length,
      name,
      mime: mime || "application/octet-stream",
      caption: opts.caption ?? "",
      reply_to: opts.replyTo ?? null,
    };
    return this.send(to, content);
  }

  /** The decrypted file of an attachment (throws CryptoError if it was tampered with). */
  async download(a: Attachment): Promise<Uint8Array> {
    const ct = await this.api.downloadBlob(a.blob);
    return decryptAttachment(ct, a.key, a.digest);
  }

  async markChatRead(conv: string): Promise<void> {
    const unread = await this.history.markRead(conv);
    await this.db.commit();
    for (const [sender, ids] of unread) {
      for (let i = 0; i < ids.length; i += 1000) {
        this.sendOrQueue({ type: "read", conversation: conv, sender, ids: ids.slice(i, i + 1000) });
      }
    }
    if (unread.length > 0) this.emit({ type: "chats" });
  }

  typing(conv: string, active: boolean): void {
    this.trySend({ type: "typing", conversation: conv, active });
  }

  watch(users: string[]): void {
    this.watching = [...new Set(users.map(normalizeHandle))];
    this.trySend({ type: "watch", users: this.watching });
  }

  async saveDraft(conv: string, draft: string): Promise<void> {
    const chat = this.history.chat(conv);
    if ((chat.draft ?? "") === draft) return;
    chat.draft = draft;
    this.history.saveChat(chat);
    await this.db.commit();
  }

  /** Make a chat appear in the list (new chat with someone, new group). */
  async openChat(conv: string, name?: string): Promise<Chat> {
    const chat = this.history.chat(conv);
    if (name) chat.name = name;
    if (chat.lastT === 0) chat.lastT = Date.now();
    this.history.saveChat(chat);
    await this.db.commit();
    this.emit({ type: "chats" });
    return chat;
  }

  async createGroup(name: string, members: string[]): Promise<GroupInfo> {
    const g = await this.api.createGroup(name, members);
    this.groups.set(g.address, g);
    await this.openChat(g.address, g.name);
    return g;
  }

  async refreshGroups(): Promise<void> {
    const groups = await this.api.groups();
    let changed = false;
    for (const g of groups) {
      this.groups.set(g.address, g);
      const chat = this.history.chat(g.address);
      if (chat.name !== g.name || chat.lastT === 0 || chat.left) {
        chat.name = g.name;
        chat.left = false;
        if (chat.lastT === 0) chat.lastT = g.created_ms;
        this.history.saveChat(chat);
        changed = true;
      }
    }
    if (changed) {
      await this.db.commit();
      this.emit({ type: "chats" });
    }
  }

  async group(conv: string): Promise<GroupInfo> {
    const g = await this.api.group(conv);
    this.groups.set(g.address, g);
    this.adminCache.set(conv, { at: Date.now(), admins: new Set(g.members.filter((m) => m.admin).map((m) => m.handle)) });
    return g;
  }

  private async admins(conv: string): Promise<Set<string>> {
    if (!conv.startsWith("#")) return new Set();
    const cached = this.adminCache.get(conv);
    if (cached && Date.now() - cached.at < 60_000) return cached.admins;
    try {
      return new Set((await this.group(conv)).members.filter((m) => m.admin).map((m) => m.handle));
    } catch {
      return cached?.admins ?? new Set();
    }
  }

  private securityChanged(user: string): void {
    const row = this.history.systemLine(`@${user}`, `@${user}'s security code changed. Tap to verify.`);
    void this.db.commit();
    this.emit({ type: "rows", conv: `@${user}`, rows: [row], added: row });
    this.emit({ type: "security", user });
  }

  // ---------------------------------------------------------------- wire

  private trySend(frame: Frame): boolean {
    const ws = this.ws;
    if (ws === null || !this.connected || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  private sendOrQueue(frame: Frame): void {
    if (!this.trySend(frame)) {
      this.pendingFrames.push(frame);
      if (this.pendingFrames.length > 1000) this.pendingFrames.shift();
    }
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const outcome = await this.connection();
      if (outcome.fatal !== undefined) {
        this.closed = true;
        this.emit({ type: "fatal", message: outcome.fatal });
        return;
      }
      if (this.closed) return;
      if (outcome.ready) attempt = 0;
      let delay: number;
      if (outcome.immediate) delay = 0;
      else if (outcome.retryAfter && outcome.retryAfter > 0) delay = outcome.retryAfter;
      else delay = backoffDelay(attempt++);
      if (!outcome.ready) this.serverDown = true;
      this.downSince ??= Date.now();
      this.emit({ type: "disconnected", reason: outcome.reason, delay });
      await this.runWake.wait(delay * 1000);
    }
  }

  private connection(): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.wsUrl);
      } catch (e) {
        resolve({ ready: false, reason: `cannot connect: ${e}` });
        return;
      }
      let ready = false;
      let settled = false;
      let outcome: Outcome | null = null;
      const finish = (o: Outcome): void => {
        if (settled) return;
        settled = true;
        clearInterval(heartbeat);
        clearTimeout(authTimer);
        this.connected = false;
        if (this.ws === ws) this.ws = null;
        try {
          ws.close();
        } catch {
          /* already closed */
        }
        this.outboxWake.notify();
        resolve(o);
      };
      const authTimer = setTimeout(() => finish({ ready: false, reason: "no answer in time" }), 10_000);
      const heartbeat = setInterval(() => {
        if (!ready) return;
        if (Date.now() - this.lastFrameAt > 45_000) {
          finish({ ready: true, reason: "no answer to ping" });
          return;
        }
        this.trySend({ type: "ping", ref: "hb" });
      }, 20_000);
      ws.onopen = () => {
        ws.send(JSON.stringify({ type: "auth", token: this.session.token, last_seq: this.acked }));
      };
      ws.onmessage = (ev: MessageEvent) => {
        this.lastFrameAt = Date.now();
        let frame: Frame;
        try {
          frame = JSON.parse(String(ev.data)) as Frame;
        } catch {
          return;
        }
        if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
        if (!ready) {
          if (frame.type === "error") {
            outcome = this.errorBeforeReady(frame);
            return;
          }
          if (frame.type !== "ready") return;
          ready = true;
          clearTimeout(authTimer);
          this.ws = ws;
          // Notices come after ready and wait for this (on every connection, as the
          // Python SDK: follows a rotation of the key).
          void this.learnStatusKey();
          this.frameChain = this.frameChain
            .then(() => this.onReady(ws, frame))
            .catch((e: unknown) => {
              console.error("ready handling failed", e);
              finish({ ready: true, reason: `setup failed: ${e}` });
            });
          return;
        }
        this.frameChain = this.frameChain
          .then(async () => {
            if (settled) return;
            const o = await this.handleFrame(frame, ws);
            if (o) finish(o);
          })
          .catch((e: unknown) => {
            console.error("frame handling failed", e);
            finish({ ready: true, reason: `frame handling failed: ${e}` });
          });
      };
      ws.onclose = (ev: CloseEvent) => {
        if (AUTH_CLOSE_CODES.has(ev.code)) {
          finish({ ready, reason: "session closed", fatal: outcome?.fatal ?? `The server closed this device's session (${ev.code}).` });
          return;
        }
        if (outcome) {
          finish(outcome);
          return;
        }
        if (ev.code === 1012) finish({ ready, reason: "server is draining", immediate: true });
        else finish({ ready, reason: `connection closed (code ${ev.code})` });
      };
      ws.onerror = () => {
        /* onclose follows */
      };
    });
  }

  private errorBeforeReady(frame: Frame): Outcome {
    const code = String(frame.code ?? "");
    if (SESSION_CODES.has(code)) return { ready: false, reason: code, fatal: String(frame.message ?? code) };
    if (code === "server.draining") return { ready: false, reason: "server is draining", immediate: true };
    return { ready: false, reason: `${code}: ${frame.message}`, retryAfter: hint(frame) };
  }

  private async onReady(ws: WebSocket, ready: Frame): Promise<void> {
    const serverLast = Number(ready.last_seq ?? 0);
    this.outbox.reset();
    if (serverLast < this.acked) {
      // The server's inbox is behind what we acked (restored backup): follow it.
      this.seen = this.taken = this.acked = serverLast;
      this.db.set("last_seq", serverLast);
      await this.db.commit();
    } else {
      if (this.acked > serverLast) ws.send(JSON.stringify({ type: "ack", seq: this.acked }));
      if (this.taken > this.acked) this.schedulePersist(0);
    }
    this.seen = Math.max(this.acked, Math.min(this.seen, this.taken));
    try {
      await this.refreshBlocks();
    } catch (e) {
      console.warn("cannot load the block list now", e);
    }
    this.connected = true;
    if (this.serverDown) this.serverDown = false;
    this.downSince = null;
    this.statusAskedAt = 0;
    if (this.status !== null) {
      this.status = null;
      this.emit({ type: "status", status: null });
    }
    if (this.watching !== null) this.trySend({ type: "watch", users: this.watching });
    while (this.pendingFrames.length > 0) {
      const f = this.pendingFrames.shift()!;
      this.trySend(f);
    }
    this.emit({ type: "connected" });
    try {
      await this.e2ee.ensureKeys();
    } catch (e) {
      console.warn("cannot upload this device's keys now", e);
    }
    void this.senderLoop(ws);
  }

  private async senderLoop(ws: WebSocket): Promise<void> {
    while (!this.closed && this.ws === ws && this.connected) {
      const entry = this.outbox.next();
      if (entry === null) {
        await this.outboxWake.wait(5_000);
        continue;
      }
      let payloads = this.sealed.get(entry.id);
      if (payloads === undefined) {
        try {
          payloads = await this.e2ee.encrypt(entry.id, entry.to, b64decode(entry.payload), await this.forgetSentAt(entry));
          await this.reviseSent(entry);
        } catch (e) {
          if (e instanceof UntrustedIdentity) {
            await this.fail(entry.id, e.code, e.message);
            continue;
          }
          if (e instanceof ApiError && e.code !== "network" && e.status !== 429 && e.status < 500) {
            await this.fail(entry.id, e.code === "user.not_found" ? "msg.unknown_recipient" : e.code, e.message);
            continue;
          }
          if (e instanceof CryptoError) {
            await this.fail(entry.id, "e2ee.failed", e.message);
            continue;
          }
          console.warn(`cannot encrypt ${entry.id} now`, e);
          ws.close();
          return;
        }
        this.sealed.set(entry.id, payloads);
      }
      if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
      ws.send(JSON.stringify({ type: "send", id: entry.id, to: entry.to, payloads }));
    }
  }

  private async fail(id: string, code: string, message: string): Promise<void> {
    const entry = this.outbox.acknowledge(id);
    this.sealed.delete(id);
    this.staleTries.delete(id);
    this.db.set("outbox", [...this.outbox.entries.values()]);
    const rows = await this.history.setStatus([id], "failed", message);
    await this.db.commit();
    if (entry && rows.length > 0) this.emit({ type: "rows", conv: entry.to, rows });
    this.emit({ type: "sendFailed", id, to: entry?.to ?? "", code, message });
  }

  private async handleFrame(frame: Frame, ws: WebSocket): Promise<Outcome | null> {
    switch (frame.type) {
      case "message":
      case "receipt":
      case "group": {
        const seq = Number(frame.seq);
        if (!(seq > this.seen)) return null;
        this.seen = seq;
        if (frame.type === "message") await this.onMessage(frame);
        else if (frame.type === "receipt") await this.onReceipt(frame);
        else await this.onGroup(frame);
        this.taken = Math.max(this.taken, seq);
        this.schedulePersist();
        return null;
      }
      case "sent": {
        const id = String(frame.id);
        this.sealed.delete(id);
        this.staleTries.delete(id);
        await this.e2ee.sent(id);
        const entry = this.outbox.acknowledge(id);
        if (entry !== null) {
          this.db.set("outbox", [...this.outbox.entries.values()]);
          const rows = await this.history.setStatus([id], "sent");
          await this.db.commit();
          if (rows.length > 0) this.emit({ type: "rows", conv: entry.to, rows });
          this.emit({ type: "chats" });
          this.outboxWake.notify();
        }
        return null;
      }
      case "error": {
        const code = String(frame.code ?? "");
        const ref = typeof frame.ref === "string" ? frame.ref : null;
        const message = String(frame.message ?? code);
        if (ref !== null && this.outbox.entries.has(ref)) {
          if (code === "msg.stale_devices" && (this.staleTries.get(ref) ?? 0) < MAX_STALE_RETRIES) {
            this.staleTries.set(ref, (this.staleTries.get(ref) ?? 0) + 1);
            this.sealed.delete(ref);
            this.e2ee.forgetPending(ref);
            await this.e2ee.applyDeviceList(frame.details as Record<string, unknown> | undefined);
            this.outbox.retry(ref);
            this.outboxWake.notify();
            return null;
          }
          if (SESSION_CODES.has(code)) return { ready: true, reason: code, fatal: message };
          if (TRANSIENT_CODES.has(code)) {
            ws.close();
            return { ready: false, reason: `send refused for now: ${code}`, retryAfter: hint(frame) };
          }
          await this.fail(ref, code, message);
          return null;
        }
        if (SESSION_CODES.has(code)) return { ready: true, reason: code, fatal: message };
        if (code === "server.draining") return { ready: true, reason: "server is draining", immediate: true };
        console.warn("server error", frame);
        return null;
      }
      case "typing":
        this.emit({ type: "typing", conv: String(frame.conversation), user: String(frame.user), active: frame.active !== false });
        return null;
      case "presence": {
        const p = { online: frame.online === true, lastSeen: typeof frame.last_seen_ms === "number" ? frame.last_seen_ms : null };
        this.presence.set(String(frame.user), p);
        this.emit({ type: "presence", user: String(frame.user), ...p });
        return null;
      }
      case "keys_low":
        void this.e2ee.ensureKeys().catch((e: unknown) => console.warn("cannot upload keys", e));
        return null;
      case "notice":
        // Apart from the frame chain: it may wait for the status key.
        void this.receiveNotice(frame).catch((e: unknown) => console.warn("cannot take a notice", e));
        return null;
      default:
        return null; // ready, pong and frames we do not know
    }
  }

  /**
   * Learn the status key from our own server (the root of trust for it, as for
   * everything it serves; as the Python SDK). One request at a time; on failure the
   * key stays as it was (notices show as unsigned while none is known).
   */
  private learnStatusKey(): Promise<void> {
    if (this.statusKeyFetch === null) {
      this.statusKeyFetch = (async () => {
        try {
          this.statusKey = await this.api.statusKey();
        } catch (e) {
          console.warn("cannot learn the status key now", e);
        } finally {
          this.statusKeyFetch = null;
        }
      })();
    }
    return this.statusKeyFetch;
  }

  /** Show a notice unless its signature does not verify (then drop it and warn). */
  private async receiveNotice(frame: Frame): Promise<void> {
    if (typeof frame.signature === "string" && frame.signature !== "") {
      if (this.statusKeyFetch !== null) await this.statusKeyFetch;
      if (this.statusKey === null) await this.learnStatusKey();
    }
    const signed = checkNotice(frame, this.statusKey);
    if (signed === null) {
      console.warn(`dropped notice ${String(frame.id)}: its signature does not verify (forged?)`);
      return;
    }
    if (this.closed) return;
    // The same id may come again: never let an unsigned copy replace a signed one.
    if (!signed && this.notices.get(String(frame.id))?.signed === true) return;
    const notice: Notice = {
      id: String(frame.id),
      text: String(frame.text ?? ""),
      level: frame.level === "warning" || frame.level === "outage" ? frame.level : "info",
      at_ms: Number(frame.at_ms ?? Date.now()),
      signed,
    };
    this.notices.set(notice.id, notice);
    this.emit({ type: "notice", notice });
  }

  private schedulePersist(delay = 50): void {
    if (this.persistTimer !== null) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = null;
      void this.persist();
    }, delay);
  }

  /** Commit the taken seq, then ack it (cumulative), then forget decrypted copies. */
  private async persist(): Promise<void> {
    const seq = this.taken;
    if (seq <= this.acked) return;
    this.db.set("last_seq", seq);
    this.e2ee.keys.forgetReceived(seq);
    await this.db.commit();
    this.acked = Math.max(this.acked, seq);
    this.trySend({ type: "ack", seq });
  }

  private async onMessage(frame: Frame): Promise<void> {
    const seq = Number(frame.seq);
    const sender = String(frame.sender);
    const senderDevice = Number(frame.sender_device);
    const conv = String(frame.conversation);
    const id = String(frame.id);
    const t = Number(frame.sent_at_ms);
    // Blocked: the server should not even have sent it.
    if (this.blockedUsers.has(sender) && conv === `@${sender}`) return;
    let payload: Uint8Array;
    try {
      payload = b64decode(String(frame.payload ?? ""));
    } catch {
      payload = new Uint8Array(0);
    }
    const opened = await this.e2ee.decrypt(seq, sender, senderDevice, conv, payload);
    for (const user of opened.changed) this.securityChanged(user);
    if (opened.retryRequest) {
      const [mid, dev] = opened.retryRequest;
      void this.answerRetry(mid, sender, dev);
      return;
    }
    let content: AnyContent;
    if (opened.error !== undefined) {
      const payloads = this.e2ee.retryRequest(id, sender);
      this.sendOrQueue({ type: "send", id: uuid7(), to: `@${sender}`, payloads });
      content = unsupported("undecryptable", 0, "message could not be decrypted; asked the sender to send it again");
    } else if (opened.content === null) {
      return;
    } else {
      content = decodeContent(opened.content);
    }
    const admins = content.type === "delete" && content.target.sender !== sender ? await this.admins(conv) : undefined;
    const recorded = await this.history.record({
      conv,
      sender,
      device: senderDevice,
      id: opened.originalId ?? id,
      t,
      content,
      admins,
      status: sender === this.handle ? "sent" : undefined,
    });
    if (recorded && conv.startsWith("#") && !recorded.chat.name) {
      const g = this.groups.get(conv);
      if (g) {
        recorded.chat.name = g.name;
        this.history.saveChat(recorded.chat);
      }
    }
    await this.db.commit();
    if (recorded) {
      this.emit({ type: "rows", conv, rows: recorded.rows, added: recorded.added });
      this.emit({ type: "chats" });
      if (recorded.added && !recorded.added.mine) this.emit({ type: "incoming", row: recorded.added });
    }
  }

  private async answerRetry(id: string, requester: string, device: number): Promise<void> {
    try {
      const r = await this.e2ee.resend(id, requester, device);
      if (r) this.sendOrQueue({ type: "send", id: uuid7(), to: r.to, payloads: r.payloads });
    } catch (e) {
      console.warn(`cannot resend ${id} to ${requester}.${device}`, e);
    }
  }

  private async onReceipt(frame: Frame): Promise<void> {
    const ids = Array.isArray(frame.ids) ? frame.ids.map(String) : [];
    const status = frame.status === "read" ? "read" : "delivered";
    const conv = String(frame.conversation);
    let rows: Row[];
    if (frame.by !== this.handle) {
      rows = await this.history.setStatus(ids, status);
    } else if (status === "read" && typeof frame.sender === "string") {
      rows = await this.history.markReadElsewhere(conv, frame.sender, ids);
    } else {
      return;
    }
    await this.db.commit();
    if (rows.length > 0) {
      this.emit({ type: "rows", conv, rows });
      this.emit({ type: "chats" });
    }
  }

  private async onGroup(frame: Frame): Promise<void> {
    const conv = `#${String(frame.group)}`;
    const event = String(frame.event);
    const actor = String(frame.actor);
    const members = Array.isArray(frame.members) ? frame.members.map(String) : [];
    this.adminCache.delete(conv);
    const chat = this.history.chat(conv);
    chat.name = String(frame.name ?? chat.name ?? "");
    const who = (h: string): string => (h === this.handle ? "You" : `@${h}`);
    const list = members.map((m) => (m === this.handle ? "you" : `@${m}`)).join(", ");
    let text = "";
    switch (event) {
      case "created":
        text = `${who(actor)} created the group "${chat.name}"`;
        break;
      case "added":
        text = `${who(actor)} added ${list}`;
        break;
      case "removed":
        text = `${who(actor)} removed ${list}`;
        if (members.includes(this.handle)) chat.left = true;
        break;
      case "left":
        text = `${list.replace(/^you$/, "You")} left`;
        if (members.includes(this.handle)) chat.left = true;
        break;
      case "promoted":
        text = `${list} ${members.length === 1 ? "is" : "are"} now admin`;
        break;
      case "renamed":
        text = `${who(actor)} renamed the group to "${chat.name}"`;
        break;
      default:
        text = `group changed (${event})`;
    }
    if ((event === "added" || event === "created") && members.includes(this.handle)) chat.left = false;
    const at = Number(frame.at_ms ?? Date.now());
    const row = this.history.systemLine(conv, text, at);
    if (at >= chat.lastT) {
      chat.lastT = at;
      chat.lastText = text;
      chat.lastSender = "";
      chat.lastMine = false;
      chat.lastK = row.k;
    }
    this.history.saveChat(chat);
    await this.db.commit();
    const g = this.groups.get(conv);
    if (g) g.name = chat.name;
    this.emit({ type: "rows", conv, rows: [row], added: row });
    this.emit({ type: "group", conv });
    this.emit({ type: "chats" });
  }

  /** Revoke this device on the server (logout). */
  async logout(): Promise<void> {
    try {
      await this.api.revokeDevice(this.device);
    } catch {
      /* offline or already revoked: forget it locally all the same */
    }
    this.close();
  }
}

function hint(frame: Frame): number {
  const d = frame.details as Record<string, unknown> | undefined;
  const v = d?.retry_after_s;
  return typeof v === "number" && v > 0 ? Math.min(v, 300) : 0;
}

export function defaultWsUrl(): string {
  if (typeof location === "undefined") return "ws://127.0.0.1:8080/v1/ws";
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/v1/ws`;
}

export { rowKey };
