/**
 * Cost per message (reported, not asserted): encrypt + decrypt of a 100-byte
 * message in one direction (symmetric ratchet only) and ping-pong (a DH ratchet
 * step per message), plus a group message (sign + verify).
 */

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  IdentityKeyPair,
  OneTimePreKey,
  PreKeyBundle,
  SenderKeyReceiver,
  SenderKeySender,
  Session,
  SignedPreKey,
} from "../../src/crypto/index.js";

function pair(): [Session, Session] {
  const aliceId = IdentityKeyPair.generate();
  const bobId = IdentityKeyPair.generate();
  const spk = SignedPreKey.generate(bobId, 1);
  const opk = OneTimePreKey.generate(1);
  const alice = Session.initiate(aliceId, PreKeyBundle.create(bobId, spk, opk));
  const [bob] = Session.respond(bobId, alice.encrypt(new Uint8Array(1)), spk, opk);
  alice.decrypt(bob.encrypt(new Uint8Array(1)));
  return [alice, bob];
}

function perMessage(n: number, body: () => void): number {
  for (let i = 0; i < Math.min(50, n); i++) body(); // warm-up
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) body();
  return Number(process.hrtime.bigint() - start) / 1000 / n;
}

test("cost per message (encrypt + decrypt, 100-byte plaintext)", (t) => {
  const pt = new Uint8Array(100).fill(0x61);
  const [alice, bob] = pair();
  const oneWay = perMessage(2000, () => {
    bob.decrypt(alice.encrypt(pt));
  });
  let turn = 0;
  const pingPong = perMessage(200, () => {
    if (turn++ % 2 === 0) bob.decrypt(alice.encrypt(pt));
    else alice.decrypt(bob.encrypt(pt));
  });
  const sender = SenderKeySender.generate();
  const receiver = SenderKeyReceiver.fromDistribution(sender.distribution());
  const group = perMessage(500, () => {
    receiver.decrypt(sender.encrypt(pt));
  });
  const persist = perMessage(2000, () => {
    Session.fromBytes(alice.toBytes());
  });
  t.diagnostic(`pairwise, same chain: ${oneWay.toFixed(1)} µs per encrypt+decrypt`);
  t.diagnostic(`pairwise, DH ratchet step every message: ${pingPong.toFixed(1)} µs per encrypt+decrypt`);
  t.diagnostic(`group (sender key, Ed25519 sign+verify): ${group.toFixed(1)} µs per encrypt+decrypt`);
  t.diagnostic(`session toBytes+fromBytes: ${persist.toFixed(1)} µs`);
  assert.ok(oneWay > 0 && pingPong > 0 && group > 0);
});
