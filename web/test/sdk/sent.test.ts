/**
 * What the browser client sent is kept for resend requests (docs/e2ee.md section 9)
 * only as long as it may be: a disappearing message until it disappears, the rest
 * for 7 days. Offline: the key store over fake-indexeddb, read back after a reopen.
 * Run with `npm run test:sdk`.
 */
import "fake-indexeddb/auto";
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { utf8 } from "../../src/crypto/index.js";
import { Db } from "../../src/sdk/db.js";
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
