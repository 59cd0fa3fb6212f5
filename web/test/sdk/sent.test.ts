/**
 * What the browser client sent is kept for resend requests (docs/e2ee.md section 9)
 * only as long as it may be: a disappearing message until it disappears, the rest
 * for 7 days; our edits and deletes change it; a resend cannot bring back a deleted
 * message; an expired one leaves the chat list. Offline: the key store and history
 * over fake-indexeddb.
 * Run with `npm run test:sdk`.
 */
import "fake-indexeddb/auto";
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { utf8 } from "../../src/crypto/index.js";
import { Db } from "../../src/sdk/db.js";
import { unsupported } from "../../src/sdk/content.js";
import { History, rowKey } from "../../src/sdk/history.js";
import { KeyStore } from "../../src/sdk/keystore.js";

const WEEK_MS = 7 * 24 * 3600 * 1000;

test("sent content is forgotten when it disappears, the rest after its week", async () => {
  const name = `sent-${process.pid}`;
  const keys = new KeyStore(await Db.open(name));
  keys.saveSent("plain", "@bob", utf8("kept a week"));
  keys.saveSent("short", "@bob", utf8("disappearing"), 5_000);
  keys.saveSent("later", "@bob", utf8("disappearing later"), 9_000);
  await keys.db.commit();
  assert.equal(keys.nextSentDue(), 5_000);

  const again = new KeyStore(await Db.open(name)); // deadlines survive a reload
  assert.equal(again.nextSentDue(), 5_000);
  assert.equal(again.forgetSent(0, 5_000), 1);
  assert.equal(again.sent("short"), null);
  assert.deepEqual(again.sent("later")?.content, utf8("disappearing later"));
  assert.equal(again.nextSentDue(), 9_000);

  const now = Date.now();
  assert.equal(again.forgetSent(now - WEEK_MS, now), 1); // "later" is due by now too
  assert.ok(again.sent("plain") !== null); // sent just now: its week has not passed
  assert.equal(again.forgetSent(now + 1, 0), 1);
  assert.equal(again.sent("plain"), null);
  assert.equal(again.nextSentDue(), null);
});

test("our edit replaces the copy a resend sends, our delete forgets it", async () => {
  const keys = new KeyStore(await Db.open(`sent-revise-${process.pid}`));
  keys.saveSent("m1", "@bob", utf8("original"));
  keys.saveSent("m2", "@bob", utf8("delete me"));
  keys.replaceSent("m1", utf8("edited"));
  keys.forgetSentId("m2");
  assert.deepEqual(keys.sent("m1"), { to: "@bob", content: utf8("edited") });
  assert.equal(keys.sent("m2"), null);
  keys.replaceSent("m3", utf8("never sent")); // nothing to replace: nothing appears
  assert.equal(keys.sent("m3"), null);
  // Encrypted again for a new device list: the devices change, our edit stays.
  keys.saveSent("m1", "@bob", utf8("original"), null, ["bob.1", "bob.2"]);
  assert.deepEqual(keys.sent("m1"), { to: "@bob", content: utf8("edited") });
  assert.deepEqual([...keys.sentDevices("m1")], ["bob.1", "bob.2"]);
});

test("a resend cannot bring back a message deleted for everyone", async () => {
  const db = await Db.open(`sent-history-${process.pid}`);
  const history = new History(db, "bob");
  const base = { conv: "@alice", sender: "alice", device: 1, id: "01-m" };
  await history.record({ ...base, t: 1_000, content: unsupported("undecryptable", 0, "could not decrypt") });
  const target = { sender: "alice", id: "01-m" };
  await history.record({ ...base, id: "02-d", t: 2_000, content: { type: "delete", target } });
  assert.equal((await history.get(rowKey("alice", "01-m")))?.deleted, true);
  const resent = await history.record({ ...base, t: 3_000, content: { type: "text", text: "secret" } });
  assert.equal(resent, null);
  const row = await history.get(rowKey("alice", "01-m"));
  assert.equal(row?.deleted, true);
  assert.equal(row?.text, undefined);
  assert.notEqual(history.chat("@alice").lastText, "secret");
});

test("an expired message leaves the chat list's preview, whichever purge finds it", async () => {
  const db = await Db.open(`sent-expiry-${process.pid}`);
  const history = new History(db, "bob");
  const now = Date.now();
  const recorded = await history.record({
    conv: "@alice", sender: "alice", device: 1, id: "01-x", t: now - 5_000,
    content: { type: "text", text: "gleich weg", expire_s: 1 },
  });
  assert.equal(history.chat("@alice").lastText, "gleich weg");
  const gone = await history.purgeExpired(recorded!.rows, now); // the app's own tick
  assert.equal(gone.length, 1);
  assert.equal(history.chat("@alice").lastText, "");
});

test("a resend keeps the time its message was sent, so it disappears with the others' copies", async () => {
  const db = await Db.open(`sent-resend-time-${process.pid}`);
  const history = new History(db, "bob");
  const base = { conv: "@alice", sender: "alice", device: 1, id: "01-r" };
  await history.record({ ...base, t: 1_000, content: unsupported("undecryptable", 0, "could not decrypt") });
  await history.record({ ...base, t: 61_000, content: { type: "text", text: "readable", expire_s: 30 } });
  const row = await history.get(rowKey("alice", "01-r"));
  assert.equal(row?.t, 1_000);
  assert.equal(row?.expiresAt, 31_000);
});
