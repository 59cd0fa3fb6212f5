/**
 * The local message history of this device (port of taube.client.history): what each
 * chat shows, built from the messages recorded in it, with the same receiving rules
 * (docs/protocol.md 12.5) so every device shows the same chat whatever the order:
 * idempotent on (sender, id); reactions, votes, edits and the chat timer are
 * last-writer-wins by message id; edits by the author within 15 minutes; deletes by
 * the author within 2 days or by a group admin at any time; everything acts only in
 * its own conversation.
 */

import {
  type AnyContent,
  type KnownContent,
  type MessageRef,
  type Poll,
  contentFromStored,
  contentText,
  contentToStored,
} from "./content.js";
import type { Db, MsgRecord } from "./db.js";

export const EDIT_WINDOW_MS = 15 * 60 * 1000;
export const DELETE_WINDOW_MS = 2 * 24 * 3600 * 1000;
const EXPIRING = "expiring";

export type Status = "pending" | "sent" | "delivered" | "read" | "failed";
const RANK: Record<Status, number> = { failed: -1, pending: 0, sent: 1, delivered: 2, read: 3 };

export type Kind = "text" | "poll" | "attachment" | "system" | "unsupported";

export interface Row extends MsgRecord {
  sender: string;
  id: string;
  device: number;
  mine: boolean;
  kind: Kind;
  content: unknown;
  text?: string;
  editedAt?: number;
  editId?: string;
  deleted?: boolean;
  status?: Status;
  error?: string;
  read: boolean;
  expiresAt?: number | null;
  reactions: Record<string, { emoji: string; id: string }>;
  votes: Record<string, { options: number[]; id: string }>;
  undecryptable?: boolean;
  /** Written while the server could not be reached during this incident (its id). */
  queuedDuring?: number;
}

export interface Chat {
  conv: string;
  name?: string;
  lastText: string;
  lastT: number;
  lastSender: string;
  lastMine: boolean;
  lastK?: string;
  unread: number;
  toRead: Record<string, string[]>;
  timer?: { seconds: number; id: string };
  draft?: string;
  left?: boolean;
}

interface Stub {
  conv: string;
  reactions: Row["reactions"];
  votes: Row["votes"];
}

export function rowKey(sender: string, id: string): string {
  return `${sender}/${id}`;
}

export function rowContent(row: Row): AnyContent {
  return contentFromStored(row.content);
}

/** The text a row shows (after edits), or a placeholder. */
export function rowText(row: Row): string {
  if (row.deleted) return "This message was deleted";
  if (row.text !== undefined) return row.text;
  const c = rowContent(row);
  if (c.type === "unsupported") {
    return c.wireType === "undecryptable"
      ? "Waiting for this message. Asked the sender to send it again."
      : "This message cannot be shown: update Taube to see it.";
  }
  return contentText(c) ?? "";
}

export interface PollTally {
  counts: number[];
  voters: string[][];
  mine: number[];
}

export function tally(row: Row, me: string): PollTally | null {
  const c = rowContent(row);
  if (c.type !== "poll" || row.deleted) return null;
  const counts = c.options.map(() => 0);
  const voters: string[][] = c.options.map(() => []);
  let mine: number[] = [];
  for (const [user, vote] of Object.entries(row.votes)) {
    const choice = validChoice(vote.options, c.options.length, c.multiple ?? false);
    for (const i of choice) {
      counts[i]! += 1;
      voters[i]!.push(user);
    }
    if (user === me) mine = choice;
  }
  return { counts, voters, mine };
}

function validChoice(options: number[], n: number, multiple: boolean): number[] {
  if (options.some((i) => !Number.isInteger(i) || i < 0 || i >= n)) return [];
  const unique = [...new Set(options)];
  return multiple ? unique : unique.slice(0, 1);
}

export interface Recorded {
  /** Rows that changed and should be shown again. */
  rows: Row[];
  /** The row that is new (a shown message), if any. */
  added?: Row;
  chat: Chat;
}

export class History {
  private cache = new Map<string, Row>();

  constructor(
    private readonly db: Db,
    private readonly me: string,
  ) {}

  chat(conv: string): Chat {
    return (
      this.db.get<Chat>(`chat:${conv}`) ?? {
        conv,
        lastText: "",
        lastT: 0,
        lastSender: "",
        lastMine: false,
        unread: 0,
        toRead: {},
      }
    );
  }

  saveChat(chat: Chat): void {
    this.db.set(`chat:${chat.conv}`, chat);
  }

  chats(): Chat[] {
    return this.db
      .keys("chat:")
      .map((k) => this.db.get<Chat>(k)!)
      .sort((a, b) => b.lastT - a.lastT || a.conv.localeCompare(b.conv));
  }

  async get(k: string): Promise<Row | undefined> {
    const cached = this.cache.get(k);
    if (cached) return cached;
    const row = (await this.db.getMsg(k)) as Row | undefined;
    if (row) this.cache.set(k, row);
    return row;
  }

  private put(row: Row): void {
    this.cache.set(row.k, row);
    this.db.putMsg(row);
  }

  /** Rows of `conv` before `before` (oldest first), up to `limit` of them. */
  async page(conv: string, before: Row | null, limit: number): Promise<Row[]> {
    const rows = (await this.db.pageMsgs(conv, before ? [before.t, before.k] : null, limit)) as Row[];
    for (const r of rows) if (!this.cache.has(r.k)) this.cache.set(r.k, r);
    return rows.map((r) => this.cache.get(r.k)!).reverse();
  }

  disappearing(conv: string): number {
    return this.chat(conv).timer?.seconds ?? 0;
  }

  /** Apply one message, ours or someone else's. Call db.commit() afterwards. */
  async record(args: {
    conv: string;
    sender: string;
    device: number;
    id: string;
    t: number;
    content: AnyContent;
    admins?: Set<string>;
    status?: Status;
    queuedDuring?: number;
  }): Promise<Recorded | null> {
    const { conv, sender, id, content } = args;
    let t = args.t;
    const k = rowKey(sender, id);
    const existing = await this.get(k);
    let read = false;
    if (existing) {
      // A resend replaces the "could not decrypt" line, unless the message was deleted
      // for everyone meanwhile: what everyone else no longer sees must not come back.
      const resend =
        existing.undecryptable && !existing.deleted && !(content.type === "unsupported" && content.wireType === "undecryptable");
      if (!resend) return null;
      read = existing.read;
      t = existing.t; // when it was sent, not resent: its timer and edit window count from then
    }
    const mine = sender === this.me;
    const chat = this.chat(conv);
    switch (content.type) {
      case "text":
      case "poll":
      case "attachment":
      case "unsupported":
      case "disappearing": {
        if (content.type === "disappearing") {
          if (chat.timer === undefined || id > chat.timer.id) chat.timer = { seconds: content.seconds, id };
        }
        const kind: Kind =
          content.type === "disappearing" ? "system" : content.type === "unsupported" ? "unsupported" : content.type;
        let expiresAt: number | null = null;
        if (kind !== "system" && kind !== "unsupported") {
          const c = content as KnownContent & { expire_s?: number | null };
          const seconds = c.expire_s ?? chat.timer?.seconds ?? 0;
          expiresAt = seconds ? t + seconds * 1000 : null;
        }
        const row: Row = {
          k,
          c: conv,
          t,
          sender,
          id,
          device: args.device,
          mine,
          kind,
          content: contentToStored(content),
          read: mine || read,
          expiresAt,
          reactions: {},
          votes: {},
        };
        if (content.type === "unsupported" && content.wireType === "undecryptable") row.undecryptable = true;
        if (mine) row.status = args.status ?? "sent";
        if (mine && args.queuedDuring !== undefined) row.queuedDuring = args.queuedDuring;
        if (expiresAt !== null) this.noteExpiry(k, expiresAt);
        const stub = this.db.get<Stub>(`stub:${k}`);
        if (stub) {
          if (stub.conv === conv) {
            row.reactions = stub.reactions;
            row.votes = stub.votes;
          }
          this.db.del(`stub:${k}`);
        }
        this.put(row);
        if (!mine && !row.read) {
          (chat.toRead[sender] ??= []).push(id);
          if (kind !== "system") chat.unread += 1;
        }
        if (t >= chat.lastT || existing) this.setLast(chat, row);
        this.saveChat(chat);
        return { rows: [row], added: row, chat };
      }
      case "reaction":
        return this.react(chat, sender, id, content.target, content.emoji);
      case "vote":
        return this.vote(chat, sender, id, content.poll, content.options);
      case "edit":
        return this.edit(chat, sender, id, t, content.target, content.text);
      case "delete":
        return this.delete(chat, sender, t, content.target, args.admins ?? new Set());
    }
  }

  private setLast(chat: Chat, row: Row): void {
    chat.lastT = Math.max(chat.lastT, row.t);
    chat.lastK = row.k;
    chat.lastSender = row.sender;
    chat.lastMine = row.mine;
    chat.lastText = rowText(row);
  }

  private async stubOr(chat: Chat, target: MessageRef): Promise<Row | Stub | null> {
    const k = rowKey(target.sender, target.id);
    const row = await this.get(k);
    if (row) return row.c === chat.conv ? row : null;
    const stub = this.db.get<Stub>(`stub:${k}`) ?? { conv: chat.conv, reactions: {}, votes: {} };
    return stub.conv === chat.conv ? stub : null;
  }

  private saveTarget(target: MessageRef, t: Row | Stub): Row[] {
    if ("k" in t) {
      this.put(t as Row);
      return [t as Row];
    }
    this.db.set(`stub:${rowKey(target.sender, target.id)}`, t);
    return [];
  }

  private async react(chat: Chat, sender: string, id: string, target: MessageRef, emoji: string): Promise<Recorded | null> {
    const t = await this.stubOr(chat, target);
    if (t === null || ("deleted" in t && t.deleted)) return null;
    const before = t.reactions[sender];
    if (before && before.id >= id) return null;
    t.reactions[sender] = { emoji, id };
    return { rows: this.saveTarget(target, t), chat };
  }

  private async vote(chat: Chat, sender: string, id: string, poll: MessageRef, options: number[]): Promise<Recorded | null> {
    const t = await this.stubOr(chat, poll);
    if (t === null || ("deleted" in t && t.deleted)) return null;
    const before = t.votes[sender];
    if (before && before.id >= id) return null;
    t.votes[sender] = { options, id };
    return { rows: this.saveTarget(poll, t), chat };
  }

  private async edit(chat: Chat, sender: string, id: string, t: number, target: MessageRef, text: string): Promise<Recorded | null> {
    const row = await this.get(rowKey(target.sender, target.id));
    if (!row || row.c !== chat.conv || row.deleted || row.kind !== "text") return null;
    if (target.sender !== sender || t - row.t > EDIT_WINDOW_MS) return null;
    if (row.editId !== undefined && row.editId >= id) return null;
    row.text = text;
    row.editId = id;
    row.editedAt = t;
    this.put(row);
    if (chat.lastK === row.k) {
      chat.lastText = text;
      this.saveChat(chat);
    }
    return { rows: [row], chat };
  }

  private async delete(chat: Chat, sender: string, t: number, target: MessageRef, admins: Set<string>): Promise<Recorded | null> {
    const row = await this.get(rowKey(target.sender, target.id));
    if (!row || row.c !== chat.conv || row.deleted) return null;
    const byAuthor = target.sender === sender && t - row.t <= DELETE_WINDOW_MS;
    const byAdmin = chat.conv.startsWith("#") && admins.has(sender);
    if (!byAuthor && !byAdmin) return null;
    row.deleted = true;
    row.content = null;
    delete row.text;
    row.reactions = {};
    row.votes = {};
    this.put(row);
    if (chat.lastK === row.k) {
      chat.lastText = rowText(row);
      this.saveChat(chat);
    }
    return { rows: [row], chat };
  }

  /** Our own message changed state (sent, delivered, read, failed): only forward. */
  async setStatus(ids: string[], status: Status, error?: string): Promise<Row[]> {
    const changed: Row[] = [];
    for (const id of ids) {
      const row = await this.get(rowKey(this.me, id));
      if (!row || !row.mine) continue;
      const now = row.status ?? "sent";
      if (status === "failed" ? now !== "pending" : RANK[status] <= RANK[now]) continue;
      row.status = status;
      if (error) row.error = error;
      this.put(row);
      changed.push(row);
    }
    return changed;
  }

  /** Messages of `sender` in `conv` were read on another of our devices. */
  async markReadElsewhere(conv: string, sender: string, ids: string[]): Promise<Row[]> {
    const chat = this.chat(conv);
    const changed: Row[] = [];
    for (const id of ids) {
      const row = await this.get(rowKey(sender, id));
      if (!row || row.mine || row.read) continue;
      row.read = true;
      this.put(row);
      changed.push(row);
      const list = chat.toRead[sender];
      if (list) chat.toRead[sender] = list.filter((x) => x !== id);
      if (row.kind !== "system") chat.unread = Math.max(0, chat.unread - 1);
    }
    this.saveChat(chat);
    return changed;
  }

  /** Mark everything in `conv` read; per sender, the ids to send read receipts for. */
  async markRead(conv: string): Promise<[string, string[]][]> {
    const chat = this.chat(conv);
    const out = Object.entries(chat.toRead).filter(([, ids]) => ids.length > 0);
    if (out.length === 0 && chat.unread === 0) return [];
    for (const [sender, ids] of out) {
      for (const id of ids) {
        const row = await this.get(rowKey(sender, id));
        if (row && !row.read) {
          row.read = true;
          this.put(row);
        }
      }
    }
    chat.toRead = {};
    chat.unread = 0;
    this.saveChat(chat);
    return out;
  }

  /** Add a local system line (e.g. "security code changed"). */
  systemLine(conv: string, text: string, t = Date.now()): Row {
    const id = `local-${t}-${Math.random().toString(36).slice(2, 8)}`;
    const row: Row = {
      k: rowKey("", id),
      c: conv,
      t,
      sender: "",
      id,
      device: 0,
      mine: false,
      kind: "system",
      content: null,
      text,
      read: true,
      reactions: {},
      votes: {},
    };
    this.put(row);
    return row;
  }

  async purgeExpired(rows: Row[], now = Date.now()): Promise<Row[]> {
    const gone = rows.filter((r) => r.expiresAt != null && r.expiresAt <= now);
    if (gone.length === 0) return gone;
    const index = { ...this.expiring() };
    for (const r of gone) {
      this.cache.delete(r.k);
      delete index[r.k];
    }
    this.db.set(EXPIRING, index);
    this.forgetInChats(gone);
    await this.db.deleteMsgs(gone.map((r) => r.k));
    await this.db.commit();
    return gone;
  }

  /** Which stored rows expire when (key -> ms): kept beside the encrypted rows so a
   * timer can find them without reading every chat. */
  private expiring(): Record<string, number> {
    return this.db.get<Record<string, number>>(EXPIRING) ?? {};
  }

  private noteExpiry(k: string, at: number): void {
    this.db.set(EXPIRING, { ...this.expiring(), [k]: at });
  }

  /** The earliest expiry of any stored row, or null (for a purge timer). */
  nextExpiry(): number | null {
    let min: number | null = null;
    for (const at of Object.values(this.expiring())) if (min === null || at < min) min = at;
    return min;
  }

  /** Remove every row that expired by `now` from the store, with its chat's preview;
   * returns the rows removed (key and conversation). Commits. */
  async purgeDue(now = Date.now()): Promise<{ k: string; c: string }[]> {
    const index = this.expiring();
    const due = Object.entries(index).filter(([, at]) => at <= now).map(([k]) => k);
    if (due.length === 0) return [];
    const gone: { k: string; c: string }[] = [];
    for (const k of due) {
      const row = await this.get(k);
      if (row) gone.push({ k, c: row.c });
      this.cache.delete(k);
    }
    const rest = { ...index };
    for (const k of due) delete rest[k];
    this.db.set(EXPIRING, rest);
    this.forgetInChats(gone);
    await this.db.deleteMsgs(due);
    await this.db.commit();
    return gone;
  }

  /** Expired rows leave their chats: the preview (it shows the text) and unread ids. */
  private forgetInChats(gone: { k: string; c: string }[]): void {
    for (const g of gone) {
      const chat = this.chat(g.c);
      if (chat.lastK === g.k) {
        chat.lastText = "";
        chat.lastSender = "";
        chat.lastMine = false;
        delete chat.lastK;
        this.saveChat(chat);
      }
      if (chat.toRead) {
        for (const [sender, ids] of Object.entries(chat.toRead)) {
          const kept = ids.filter((id) => rowKey(sender, id) !== g.k);
          if (kept.length !== ids.length) {
            chat.toRead[sender] = kept;
            chat.unread = Math.max(0, chat.unread - (ids.length - kept.length));
            this.saveChat(chat);
          }
        }
      }
    }
  }

  pollOf(row: Row): Poll | null {
    const c = rowContent(row);
    return c.type === "poll" ? c : null;
  }
}
