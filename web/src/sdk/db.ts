/**
 * This device's storage: IndexedDB, every value encrypted at rest with AES-256-GCM
 * under a non-extractable WebCrypto key that lives only in this browser profile's
 * IndexedDB (script on the page can use it but never read it out). Keys, sessions,
 * history, outbox: nothing leaves the device, nothing lies on disk in the clear.
 *
 * Two object stores hold data:
 *  - `kv`: small records (keys, sessions, chats, outbox, cursor), all loaded into
 *    memory at start; writes are collected and committed in one transaction.
 *  - `msgs`: the message history, keyed by `sender/id`, with an index on
 *    (conversation, time, key) for paging backwards through a chat.
 */

import { fromUtf8, utf8 } from "./util.js";

const DB_VERSION = 1;

interface Sealed {
  iv: Uint8Array;
  ct: ArrayBuffer;
}

function req<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
  });
}

export interface MsgRecord {
  k: string;
  c: string;
  t: number;
  [field: string]: unknown;
}

export class Db {
  readonly kv = new Map<string, unknown>();
  private dirty = new Set<string>();
  private msgDirty = new Map<string, MsgRecord>();
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly idb: IDBDatabase,
    private readonly key: CryptoKey,
    readonly name: string,
  ) {}

  static async open(name = "taube"): Promise<Db> {
    const open = indexedDB.open(name, DB_VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains("meta")) db.createObjectStore("meta");
      if (!db.objectStoreNames.contains("kv")) db.createObjectStore("kv");
      if (!db.objectStoreNames.contains("msgs")) {
        const msgs = db.createObjectStore("msgs", { keyPath: "k" });
        msgs.createIndex("conv", ["c", "t", "k"]);
      }
    };
    const idb = await req(open);
    let tx = idb.transaction("meta", "readonly");
    let key = (await req(tx.objectStore("meta").get("wrap"))) as CryptoKey | undefined;
    if (key === undefined) {
      key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
      tx = idb.transaction("meta", "readwrite");
      tx.objectStore("meta").put(key, "wrap");
      await done(tx);
    }
    const db = new Db(idb, key, name);
    await db.loadKv();
    return db;
  }

  private async seal(value: unknown): Promise<Sealed> {
    const iv = new Uint8Array(12);
    crypto.getRandomValues(iv);
    const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, this.key, utf8(JSON.stringify(value)) as BufferSource);
    return { iv, ct };
  }

  private async open(sealed: Sealed): Promise<unknown> {
    const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: sealed.iv as BufferSource }, this.key, sealed.ct);
    return JSON.parse(fromUtf8(new Uint8Array(pt)));
  }

  private async loadKv(): Promise<void> {
    const tx = this.idb.transaction("kv", "readonly");
    const store = tx.objectStore("kv");
    const [keys, values] = await Promise.all([req(store.getAllKeys()), req(store.getAll())]);
    for (let i = 0; i < keys.length; i++) {
      this.kv.set(String(keys[i]), await this.open(values[i] as Sealed));
    }
  }

  get<T>(key: string): T | undefined {
    return this.kv.get(key) as T | undefined;
  }

  set(key: string, value: unknown): void {
    this.kv.set(key, value);
    this.dirty.add(key);
  }

  del(key: string): void {
    this.kv.delete(key);
    this.dirty.add(key);
  }

  keys(prefix: string): string[] {
    const out: string[] = [];
    for (const k of this.kv.keys()) if (k.startsWith(prefix)) out.push(k);
    return out;
  }

  putMsg(row: MsgRecord): void {
    this.msgDirty.set(row.k, row);
  }

  /** Write everything changed so far in one transaction (in call order). */
  commit(): Promise<void> {
    const keys = [...this.dirty];
    const msgs = [...this.msgDirty.values()];
    this.dirty.clear();
    this.msgDirty.clear();
    const snapshot = keys.map((k) => [k, this.kv.has(k), this.kv.get(k)] as const);
    const run = async (): Promise<void> => {
      if (keys.length === 0 && msgs.length === 0) return;
      const sealedKv = await Promise.all(snapshot.map(async ([k, has, v]) => [k, has ? await this.seal(v) : null] as const));
      const sealedMsgs = await Promise.all(
        msgs.map(async (m) => ({ k: m.k, c: m.c, t: m.t, s: await this.seal(m) })),
      );
      const tx = this.idb.transaction(["kv", "msgs"], "readwrite");
      const kv = tx.objectStore("kv");
      for (const [k, sealed] of sealedKv) {
        if (sealed === null) kv.delete(k);
        else kv.put(sealed, k);
      }
      const store = tx.objectStore("msgs");
      for (const m of sealedMsgs) store.put(m);
      await done(tx);
    };
    const p = this.chain.then(run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async getMsg(k: string): Promise<MsgRecord | undefined> {
    const pending = this.msgDirty.get(k);
    if (pending) return pending;
    const tx = this.idb.transaction("msgs", "readonly");
    const rec = (await req(tx.objectStore("msgs").get(k))) as { s: Sealed } | undefined;
    return rec === undefined ? undefined : ((await this.open(rec.s)) as MsgRecord);
  }

  /** Up to `limit` rows of a conversation older than `before` (t, k), newest first. */
  async pageMsgs(conv: string, before: [number, string] | null, limit: number): Promise<MsgRecord[]> {
    const tx = this.idb.transaction("msgs", "readonly");
    const index = tx.objectStore("msgs").index("conv");
    const upper = before === null ? [conv, Infinity, ""] : [conv, before[0], before[1]];
    const range = IDBKeyRange.bound([conv, -Infinity, ""], upper, false, before !== null);
    const sealed: { s: Sealed }[] = [];
    await new Promise<void>((resolve, reject) => {
      const cursor = index.openCursor(range, "prev");
      cursor.onsuccess = () => {
        const c = cursor.result;
        if (c === null || sealed.length >= limit) return resolve();
        sealed.push(c.value as { s: Sealed });
        c.continue();
      };
      cursor.onerror = () => reject(cursor.error);
    });
    const rows: MsgRecord[] = [];
    for (const s of sealed) rows.push((await this.open(s.s)) as MsgRecord);
    return rows;
  }

  async deleteMsgs(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    for (const k of keys) this.msgDirty.delete(k);
    await this.chain;
    const tx = this.idb.transaction("msgs", "readwrite");
    for (const k of keys) tx.objectStore("msgs").delete(k);
    await done(tx);
  }

  close(): void {
    this.idb.close();
  }

  /** Delete this device's whole database (logout). */
  static async wipe(name = "taube"): Promise<void> {
    await new Promise<void>((resolve) => {
      const r = indexedDB.deleteDatabase(name);
      r.onsuccess = () => resolve();
      r.onerror = () => resolve();
      r.onblocked = () => resolve();
    });
  }
}
