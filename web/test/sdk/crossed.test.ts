/**
 * Crossed session starts (docs/e2ee.md section 6): two devices that send to each
 * other before either has read the other both start a session; each must still
 * open what the other sends afterwards, in the session it replaced. Offline: two
 * E2ee instances over fake-indexeddb and an in-memory key directory.
 * Run with `npm run test:sdk`.
 */
import "fake-indexeddb/auto";
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { fromUtf8, utf8 } from "../../src/crypto/index.js";
import type { Api, DeviceBundle, DeviceIdentity, KeysStatus, KeysUpload } from "../../src/sdk/api.js";
import { Db } from "../../src/sdk/db.js";
import { type Decrypted, E2ee, MAX_OLD_SESSIONS } from "../../src/sdk/e2ee.js";
import { ENVELOPE_VERSION, decodeEnvelope, encodeEnvelope } from "../../src/sdk/envelope.js";
import { KeyStore } from "../../src/sdk/keystore.js";
import { b64decode } from "../../src/sdk/util.js";

interface Published {
  identityKey: Uint8Array;
  signedPrekey: { id: number; key: Uint8Array; signature: Uint8Array };
  oneTimePrekeys: { id: number; key: Uint8Array }[];
}

/** The server's key directory: user -> device -> what the device published. */
class Directory {
  readonly keys = new Map<string, Map<number, Published>>();

  api(user: string, device: number): Api {
    const dir = this;
    const fake = {
      async uploadKeys(k: KeysUpload): Promise<KeysStatus> {
        const devices = dir.keys.get(user) ?? new Map<number, Published>();
        dir.keys.set(user, devices);
        const before = devices.get(device);
        const published: Published = {
          identityKey: k.identityKey,
          signedPrekey: k.signedPrekey ?? before!.signedPrekey,
          oneTimePrekeys: [...(before?.oneTimePrekeys ?? []), ...k.oneTimePrekeys],
        };
        devices.set(device, published);
        return fake.keysStatus();
      },
      async keysStatus(): Promise<KeysStatus> {
        const p = dir.keys.get(user)?.get(device);
        return {
          one_time_prekeys: p?.oneTimePrekeys.length ?? 0,
          signed_prekey_id: p?.signedPrekey.id ?? null,
          identity_key: p ? "x" : null,
        };
      },
      async keyBundles(handle: string, only?: number): Promise<DeviceBundle[]> {
        const out: DeviceBundle[] = [];
        for (const [d, p] of dir.keys.get(handle) ?? []) {
          if (only !== undefined && d !== only) continue;
          out.push({
            device: d,
            identityKey: p.identityKey,
            signedPrekey: p.signedPrekey,
            oneTimePrekey: p.oneTimePrekeys.shift() ?? null,
          });
        }
        return out;
      },
      async identities(handle: string): Promise<DeviceIdentity[]> {
        return [...(dir.keys.get(handle) ?? [])].map(([d, p]) => ({ device: d, identityKey: p.identityKey }));
      },
    };
    return fake as unknown as Api;
  }
}

let seq = 0;
let dbs = 0;

async function device(dir: Directory, user: string, db?: Db, id = 1): Promise<E2ee> {
  db ??= await Db.open(`crossed-${process.pid}-${++dbs}`);
  const e = new E2ee(user, id, dir.api(user, id), db);
  await e.ensureKeys();
  return e;
}

/** `from` sends `text` to `to`; returns the one payload for `to`'s device 1. */
async function send(from: E2ee, to: E2ee, text: string): Promise<Uint8Array> {
  const payloads = await from.encrypt(`${from.handle}-${++seq}`, `@${to.handle}`, utf8(text));
  const mine = payloads.filter((p) => p.user === to.handle && p.device === 1);
  assert.equal(mine.length, 1);
  return b64decode(mine[0]!.payload);
}

function receive(to: E2ee, from: E2ee, payload: Uint8Array): Promise<Decrypted> {
  return to.decrypt(++seq, from.handle, from.device, `@${from.handle}`, payload);
}

async function opens(to: E2ee, from: E2ee, payload: Uint8Array, text: string): Promise<void> {
  const d = await receive(to, from, payload);
  assert.equal(d.error, undefined, `${to.handle} cannot open ${JSON.stringify(text)}: ${d.error}`);
  assert.equal(d.content === null ? null : fromUtf8(d.content), text);
}

/** Both send first, then each reads the other's first message. */
async function crossed(dir: Directory): Promise<[E2ee, E2ee]> {
  const alice = await device(dir, "alice");
  const bob = await device(dir, "bob");
  const a1 = await send(alice, bob, "a1");
  const b1 = await send(bob, alice, "b1");
  await opens(bob, alice, a1, "a1"); // bob now sends in alice's session
  await opens(alice, bob, b1, "b1"); // alice now sends in bob's session
  return [alice, bob];
}

test("crossed session starts: each opens what the other sends next", async () => {
  const [alice, bob] = await crossed(new Directory());
  await opens(bob, alice, await send(alice, bob, "a2"), "a2");
  await opens(alice, bob, await send(bob, alice, "b2"), "b2");
  // both settled on one session: the conversation goes on both ways
  for (let i = 3; i < 6; i++) {
    await opens(bob, alice, await send(alice, bob, `a${i}`), `a${i}`);
    await opens(alice, bob, await send(bob, alice, `b${i}`), `b${i}`);
  }
});

test("crossed session starts, messages in flight both ways at once", async () => {
  const [alice, bob] = await crossed(new Directory());
  const a = [await send(alice, bob, "a2"), await send(alice, bob, "a3")];
  const b = [await send(bob, alice, "b2"), await send(bob, alice, "b3")];
  await opens(bob, alice, a[0]!, "a2");
  await opens(alice, bob, b[0]!, "b2");
  await opens(bob, alice, a[1]!, "a3");
  await opens(alice, bob, b[1]!, "b3");
  const a4 = await send(alice, bob, "a4");
  const b4 = await send(bob, alice, "b4");
  await opens(alice, bob, b4, "b4");
  await opens(bob, alice, a4, "a4");
});

test("the replaced session survives a restart (kept in the store)", async () => {
  const dir = new Directory();
  const [alice, bob] = await crossed(dir);
  const a2 = await send(alice, bob, "a2");
  const bob2 = await device(dir, "bob", await Db.open(bob.keys.db.name)); // read back from IndexedDB
  await opens(bob2, alice, a2, "a2");
});

test("a replay in a replaced session is still a duplicate, and a failed try changes nothing", async () => {
  const [alice, bob] = await crossed(new Directory());
  const a2 = await send(alice, bob, "a2");
  const before = new Map(bob.keys.db.kv);
  // garbage that looks like a ratchet message of no session: an error, nothing stored
  const pairwise = decodeEnvelope(a2)!.p!.slice();
  pairwise[pairwise.length - 1]! ^= 1; // a bad MAC
  const failed = await receive(bob, alice, encodeEnvelope({ e: ENVELOPE_VERSION, p: pairwise }));
  assert.match(failed.error ?? "", /InvalidMessage/);
  assert.deepEqual(new Map(bob.keys.db.kv), before);
  await opens(bob, alice, a2, "a2");
  const again = await receive(bob, alice, a2);
  assert.equal(again.content, null);
  assert.equal(again.error, undefined); // a replay, dropped silently
});

test("a message none of the sessions opens fails as before", async () => {
  const dir = new Directory();
  const [alice, bob] = await crossed(dir);
  // a stranger's session with bob that alice's device never had
  const mallory = await device(dir, "mallory");
  const m1 = await send(mallory, bob, "m1");
  await opens(bob, mallory, m1, "m1");
  const m2 = await send(mallory, bob, "m2");
  const d = await receive(bob, alice, m2); // claims to come from alice
  assert.match(d.error ?? "", /InvalidMessage/);
  await opens(bob, alice, await send(alice, bob, "a2"), "a2");
});

test("a resend puts the session aside: what the other sent in it meanwhile still opens", async () => {
  const dir = new Directory();
  const alice = await device(dir, "alice");
  const bob = await device(dir, "bob");
  await opens(bob, alice, await send(alice, bob, "a1"), "a1");
  await opens(alice, bob, await send(bob, alice, "b1"), "b1");
  const id = "alice-resent";
  await alice.encrypt(id, "@bob", utf8("lost")); // bob says he could not read it
  const b2 = await send(bob, alice, "b2"); // in flight, in the old session
  const again = await alice.resend(id, "bob", 1);
  const fresh = again!.payloads.find((p) => p.user === "bob" && p.device === 1)!;
  await opens(bob, alice, b64decode(fresh.payload), "lost"); // a new session
  await opens(alice, bob, b2, "b2"); // the old one, put aside
  await opens(bob, alice, await send(alice, bob, "a2"), "a2");
  await opens(alice, bob, await send(bob, alice, "b3"), "b3");
});

test("a resend goes only to a device that got the message", async () => {
  const dir = new Directory();
  const alice = await device(dir, "alice");
  await device(dir, "bob");
  const id = "alice-to-bob";
  await alice.encrypt(id, "@bob", utf8("for bob's first device"));
  await device(dir, "bob", undefined, 2); // bob adds a device later
  assert.equal(await alice.resend(id, "bob", 2), null);
  assert.equal(await alice.resend(id, "mallory", 1), null);
  assert.notEqual(await alice.resend(id, "bob", 1), null);
});

test(`the store keeps the ${MAX_OLD_SESSIONS} newest replaced sessions per device`, async () => {
  const keys = new KeyStore(await Db.open(`crossed-${process.pid}-${++dbs}`));
  const base = (i: number) => new Uint8Array(32).fill(i);
  for (let i = 1; i <= 7; i++) keys.archiveSession("bob", 1, base(i), utf8(`s${i}`), MAX_OLD_SESSIONS);
  keys.archiveSession("bob", 2, base(1), utf8("other device"), MAX_OLD_SESSIONS);
  const texts = () => keys.oldSessions("bob", 1).map(fromUtf8);
  assert.deepEqual(texts(), ["s7", "s6", "s5", "s4", "s3"]);
  keys.archiveSession("bob", 1, base(4), utf8("s4'"), MAX_OLD_SESSIONS); // one per base key, now newest
  assert.deepEqual(texts(), ["s4'", "s7", "s6", "s5", "s3"]);
  keys.deleteOldSession("bob", 1, base(6));
  assert.deepEqual(texts(), ["s4'", "s7", "s5", "s3"]);
  keys.forgetDevice("bob", 1);
  assert.deepEqual(texts(), []);
  assert.deepEqual(keys.oldSessions("bob", 2).map(fromUtf8), ["other device"]);
});
