/** Behaviour: skip limits, replays, tampering, transactional decrypt, encodings. */

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  CryptoError,
  DecodeError,
  DuplicateMessage,
  IdentityKeyPair,
  InvalidKey,
  InvalidMessage,
  InvalidSignature,
  KeyPair,
  MAX_SKIP,
  MAX_SKIPPED_TOTAL,
  OneTimePreKey,
  PreKeyBundle,
  PreKeyMessage,
  RatchetMessage,
  SenderKeyReceiver,
  SenderKeySender,
  Session,
  SignedPreKey,
  TooManySkipped,
  UnknownSenderKey,
  b64decode,
  b64encode,
  decodePairwise,
  decryptAttachment,
  encryptAttachment,
  fromUtf8,
  hex,
  utf8,
  verifySignedPrekey,
} from "../../src/crypto/index.js";

interface Pair {
  alice: Session;
  bob: Session;
  aliceId: IdentityKeyPair;
  bobId: IdentityKeyPair;
}

function setup(withOpk = true): Pair {
  const aliceId = IdentityKeyPair.generate();
  const bobId = IdentityKeyPair.generate();
  const spk = SignedPreKey.generate(bobId, 1);
  const opk = withOpk ? OneTimePreKey.generate(9) : null;
  const alice = Session.initiate(aliceId, PreKeyBundle.create(bobId, spk, opk));
  const [bob, pt] = Session.respond(bobId, alice.encrypt(utf8("hello")), spk, opk);
  assert.equal(fromUtf8(pt), "hello");
  return { alice, bob, aliceId, bobId };
}

/** A conversation where both sides have sent and received (no prekey messages any more). */
function established(): Pair {
  const p = setup();
  assert.equal(fromUtf8(p.alice.decrypt(p.bob.encrypt(utf8("hi")))), "hi");
  assert.equal(p.alice.awaitingReply, false);
  return p;
}

test("1,000 skipped messages decrypt; 1,001 throw TooManySkipped and change nothing", () => {
  const { alice, bob } = established();
  const lost: Uint8Array[] = [];
  for (let i = 0; i < MAX_SKIP; i++) lost.push(alice.encrypt(utf8(`m${i}`)));
  const after = alice.encrypt(utf8("after 1000"));
  assert.equal(fromUtf8(bob.decrypt(after)), "after 1000");
  assert.equal(bob.skippedCount, MAX_SKIP);
  // The skipped ones still decrypt, in any order, once.
  assert.equal(fromUtf8(bob.decrypt(lost[999]!)), "m999");
  assert.equal(fromUtf8(bob.decrypt(lost[0]!)), "m0");
  assert.throws(() => bob.decrypt(lost[0]!), DuplicateMessage);

  for (let i = 0; i < MAX_SKIP + 1; i++) alice.encrypt(utf8("lost"));
  const tooFar = alice.encrypt(utf8("too far"));
  const before = hex(bob.toBytes());
  assert.throws(() => bob.decrypt(tooFar), TooManySkipped);
  assert.equal(hex(bob.toBytes()), before, "state unchanged");
  // Still usable in both directions.
  assert.equal(fromUtf8(bob.decrypt(lost[500]!)), "m500");
  assert.equal(fromUtf8(alice.decrypt(bob.encrypt(utf8("still here")))), "still here");
});

test("1,000 skipped across a DH ratchet step (PN) work, 1,001 do not", () => {
  const { alice, bob } = established();
  for (let i = 0; i < MAX_SKIP; i++) bob.encrypt(utf8("lost"));
  bob.encrypt(utf8("lost too")); // 1001 in bob's chain, none delivered
  // Alice replies so that Bob starts a new chain with PN = 1001.
  const step = (() => {
    const a = alice.encrypt(utf8("a"));
    bob.decrypt(a);
    return bob.encrypt(utf8("new chain"));
  })();
  const before = hex(alice.toBytes());
  assert.throws(() => alice.decrypt(step), TooManySkipped);
  assert.equal(hex(alice.toBytes()), before);

  const p = established();
  for (let i = 0; i < MAX_SKIP; i++) p.bob.encrypt(utf8("lost"));
  p.bob.decrypt(p.alice.encrypt(utf8("a")));
  assert.equal(fromUtf8(p.alice.decrypt(p.bob.encrypt(utf8("new chain")))), "new chain");
  assert.equal(p.alice.skippedCount, MAX_SKIP);
});

test("at most MAX_SKIPPED_TOTAL skipped keys are stored; evicted ones are duplicates", () => {
  const { alice, bob } = established();
  const first: Uint8Array[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 999; i++) {
      const m = alice.encrypt(utf8(`r${round} m${i}`));
      if (round === 0 && i < 3) first.push(m);
    }
    bob.decrypt(alice.encrypt(utf8("deliver")));
  }
  assert.equal(bob.skippedCount, MAX_SKIPPED_TOTAL);
  assert.throws(() => bob.decrypt(first[0]!), DuplicateMessage);
  const restored = Session.fromBytes(bob.toBytes());
  assert.equal(restored.skippedCount, MAX_SKIPPED_TOTAL);
  assert.equal(hex(restored.toBytes()), hex(bob.toBytes()));
});

test("a replayed message throws DuplicateMessage, also from an old chain", () => {
  const { alice, bob } = established();
  const m1 = alice.encrypt(utf8("one"));
  bob.decrypt(m1);
  assert.throws(() => bob.decrypt(m1), DuplicateMessage);
  // Advance a few DH steps; the old chain's message is still a duplicate.
  for (let i = 0; i < 3; i++) {
    alice.decrypt(bob.encrypt(utf8("b")));
    bob.decrypt(alice.encrypt(utf8("a")));
  }
  assert.throws(() => bob.decrypt(m1), DuplicateMessage);
  assert.throws(() => Session.fromBytes(bob.toBytes()).decrypt(m1), DuplicateMessage);
});

test("tampered ciphertext, header, MAC or AD throw InvalidMessage and leave the session usable", () => {
  const { alice, bob } = established();
  const wire = alice.encrypt(utf8("tamper with me"));
  assert.equal(wire[1], 0x01);
  const before = hex(bob.toBytes());
  const L = new DataView(wire.buffer, wire.byteOffset).getUint32(42);
  const positions = {
    ratchetKey: 5,
    pn: 37,
    counter: 41,
    ciphertext: 46,
    lastCiphertextBlock: 46 + L - 1,
    mac: 46 + L,
    macEnd: wire.length - 1,
  };
  for (const [what, i] of Object.entries(positions)) {
    const bad = wire.slice();
    bad[i]! ^= 0x80;
    assert.throws(() => bob.decrypt(bad), CryptoError, what);
    assert.equal(hex(bob.toBytes()), before, `state unchanged after ${what}`);
  }
  // Type-level garbage.
  assert.throws(() => bob.decrypt(wire.subarray(0, wire.length - 1)), DecodeError);
  assert.throws(() => bob.decrypt(new Uint8Array([...wire, 0])), DecodeError);
  const wrongVersion = wire.slice();
  wrongVersion[0] = 2;
  assert.throws(() => bob.decrypt(wrongVersion), DecodeError);
  // Not a multiple of 16 (length field and content changed together).
  assert.throws(() => bob.decrypt(new Uint8Array(10)), DecodeError);
  assert.equal(hex(bob.toBytes()), before);
  // The genuine message still decrypts, once.
  assert.equal(fromUtf8(bob.decrypt(wire)), "tamper with me");
  assert.throws(() => bob.decrypt(wire), DuplicateMessage);
  assert.equal(fromUtf8(alice.decrypt(bob.encrypt(utf8("ok")))), "ok");
});

test("a forged message with a new ratchet key changes nothing (transactional DH step)", () => {
  const { alice, bob } = established();
  const wire = decodePairwise(alice.encrypt(utf8("x")));
  assert.ok(wire instanceof RatchetMessage);
  const forged = new RatchetMessage(KeyPair.generate().public, 0, 0, wire.ciphertext, wire.mac);
  const before = hex(bob.toBytes());
  assert.throws(() => bob.decrypt(forged.toBytes()), InvalidMessage);
  assert.equal(hex(bob.toBytes()), before);
  // Low-order ratchet key: InvalidMessage, not a crash.
  const lowOrder = new RatchetMessage(new Uint8Array(32), 0, 0, wire.ciphertext, wire.mac);
  assert.throws(() => bob.decrypt(lowOrder.toBytes()), InvalidMessage);
  assert.equal(hex(bob.toBytes()), before);
  assert.equal(fromUtf8(bob.decrypt(wire.toBytes())), "x");
});

test("prekey messages: tampered header fails, later prekey messages of the run decrypt", () => {
  const aliceId = IdentityKeyPair.generate();
  const bobId = IdentityKeyPair.generate();
  const spk = SignedPreKey.generate(bobId, 3);
  const opk = OneTimePreKey.generate(77);
  const alice = Session.initiate(aliceId, PreKeyBundle.create(bobId, spk, opk));
  const m0 = alice.encrypt(utf8("m0"));
  const m1 = alice.encrypt(utf8("m1"));
  assert.equal(m0[1], 0x02);
  const msg = PreKeyMessage.fromBytes(m0);
  assert.equal(msg.signedPrekeyId, 3);
  assert.equal(msg.oneTimePrekeyId, 77);
  // Another identity or base key in the header: the inner MAC (over SK/AD) fails.
  const otherIdentity = new PreKeyMessage(
    IdentityKeyPair.generate().public,
    msg.baseKey,
    3,
    77,
    msg.message,
  ).toBytes();
  assert.throws(() => Session.respond(bobId, otherIdentity, spk, opk), InvalidMessage);
  const otherBase = new PreKeyMessage(msg.identityKey, KeyPair.generate().public, 3, 77, msg.message);
  assert.throws(() => Session.respond(bobId, otherBase, spk, opk), InvalidMessage);
  // Wrong prekeys named.
  assert.throws(() => Session.respond(bobId, m0, spk, null), InvalidMessage);
  assert.throws(() => Session.respond(bobId, m0, SignedPreKey.generate(bobId, 4), opk), InvalidMessage);
  const [bob, pt] = Session.respond(bobId, m0, spk, opk);
  assert.equal(fromUtf8(pt), "m0");
  const m1msg = PreKeyMessage.fromBytes(m1);
  assert.ok(bob.matches(m1msg));
  assert.ok(!bob.matches(otherBase));
  assert.throws(() => bob.decrypt(otherBase.toBytes()), InvalidMessage);
  assert.equal(fromUtf8(bob.decrypt(m1)), "m1");
  assert.ok(alice.awaitingReply);
  alice.decrypt(bob.encrypt(utf8("reply")));
  assert.ok(!alice.awaitingReply);
  assert.equal(alice.encrypt(utf8("plain"))[1], 0x01);
  // Without a one-time prekey (three DHs).
  const p = setup(false);
  assert.equal(fromUtf8(p.bob.decrypt(p.alice.encrypt(utf8("3dh")))), "3dh");
});

test("bundles with a bad signature are refused before any DH", () => {
  const bobId = IdentityKeyPair.generate();
  const spk = SignedPreKey.generate(bobId, 5);
  const good = PreKeyBundle.create(bobId, spk);
  good.verify();
  verifySignedPrekey(bobId.public, 5, spk.public, spk.signature);
  assert.throws(() => verifySignedPrekey(bobId.public, 6, spk.public, spk.signature), InvalidSignature);
  const sig = spk.signature.slice();
  sig[10]! ^= 1;
  const bad = new PreKeyBundle({ ...good, signedPrekeySignature: sig, oneTimePrekeyId: null, oneTimePrekey: null });
  assert.throws(() => bad.verify(), InvalidSignature);
  let drew = 0;
  const counting = (n: number) => {
    drew++;
    return new Uint8Array(n).fill(7);
  };
  assert.throws(() => Session.initiate(IdentityKeyPair.generate(), bad, counting), InvalidSignature);
  assert.equal(drew, 1, "only the base key was drawn; no DH happened");
  const relabelled = new PreKeyBundle({ ...good, signedPrekeyId: 6, oneTimePrekeyId: null, oneTimePrekey: null });
  assert.throws(() => relabelled.verify(), InvalidSignature);
  // Canonical bundle encoding.
  const bytes = good.toBytes();
  assert.equal(bytes.length, 171);
  assert.equal(hex(PreKeyBundle.fromBytes(bytes).toBytes()), hex(bytes));
  const badFlag = bytes.slice();
  badFlag[134] = 2;
  assert.throws(() => PreKeyBundle.fromBytes(badFlag), DecodeError);
  const nonZeroFiller = bytes.slice();
  nonZeroFiller[170] = 1;
  assert.throws(() => PreKeyBundle.fromBytes(nonZeroFiller), DecodeError);
});

test("sender keys: tampered signature, unknown key id, replay, skip limits, transactional", () => {
  const sender = SenderKeySender.generate();
  const receiver = SenderKeyReceiver.fromDistribution(sender.distribution().toBytes());
  const m0 = sender.encrypt(utf8("g0"));
  for (const i of [0, 9, 14, m0.length - 1]) {
    const bad = m0.slice();
    bad[i]! ^= 0x40;
    const before = hex(receiver.toBytes());
    assert.throws(() => receiver.decrypt(bad), CryptoError);
    assert.equal(hex(receiver.toBytes()), before);
  }
  const sigBad = m0.slice();
  sigBad[m0.length - 5]! ^= 1;
  assert.throws(() => receiver.decrypt(sigBad), InvalidSignature);
  // A member who knows the chain key but not the signing key cannot forge.
  const other = SenderKeySender.generate();
  assert.throws(() => receiver.decrypt(other.encrypt(utf8("x"))), UnknownSenderKey);
  assert.equal(fromUtf8(receiver.decrypt(m0)), "g0");
  assert.throws(() => receiver.decrypt(m0), DuplicateMessage);

  const lost: Uint8Array[] = [];
  for (let i = 0; i < MAX_SKIP; i++) lost.push(sender.encrypt(utf8(`s${i}`)));
  assert.equal(fromUtf8(receiver.decrypt(sender.encrypt(utf8("after")))), "after");
  assert.equal(receiver.skippedCount, MAX_SKIP);
  assert.equal(fromUtf8(receiver.decrypt(lost[321]!)), "s321");
  for (let i = 0; i < MAX_SKIP + 1; i++) sender.encrypt(utf8("lost"));
  const before = hex(receiver.toBytes());
  assert.throws(() => receiver.decrypt(sender.encrypt(utf8("too far"))), TooManySkipped);
  assert.equal(hex(receiver.toBytes()), before);
  const restored = SenderKeyReceiver.fromBytes(receiver.toBytes());
  assert.equal(hex(restored.toBytes()), before);
  assert.equal(fromUtf8(restored.decrypt(lost[322]!)), "s322");
  const sRestored = SenderKeySender.fromBytes(sender.toBytes());
  assert.equal(hex(sRestored.toBytes()), hex(sender.toBytes()));
  assert.equal(hex(sRestored.distribution().toBytes()), hex(sender.distribution().toBytes()));
});

test("attachments: tampering, truncation, extension and wrong keys are rejected", () => {
  const pt = new Uint8Array(3 * 65536 + 10).map((_, i) => (i * 7) & 0xff);
  const enc = encryptAttachment(pt);
  assert.equal(hex(decryptAttachment(enc.ciphertext, enc.key, enc.digest)), hex(pt));
  const bad = enc.ciphertext.slice();
  bad[100]! ^= 1;
  assert.throws(() => decryptAttachment(bad, enc.key, enc.digest), InvalidMessage);
  const wrongKey = enc.key.slice();
  wrongKey[0]! ^= 1;
  assert.throws(() => decryptAttachment(enc.ciphertext, wrongKey, enc.digest), InvalidMessage);
  assert.throws(() => decryptAttachment(enc.ciphertext, enc.key.subarray(1), enc.digest), InvalidMessage);
  assert.throws(() => encryptAttachment(pt, { key: new Uint8Array(16) }), InvalidKey);
  const empty = encryptAttachment(new Uint8Array(0));
  assert.equal(empty.ciphertext.length, 18);
  assert.equal(decryptAttachment(empty.ciphertext, empty.key, empty.digest).length, 0);
});

test("attachments: truncating or reordering chunks fails even with the right digest", async () => {
  const { sha256 } = await import("@noble/hashes/sha2.js");
  const pt = new Uint8Array(2 * 65536 + 5).fill(3);
  const enc = encryptAttachment(pt);
  const truncated = enc.ciphertext.subarray(0, 2 + 2 * 65552);
  assert.throws(() => decryptAttachment(truncated, enc.key, sha256(truncated)), InvalidMessage);
  const swapped = enc.ciphertext.slice();
  swapped.set(enc.ciphertext.subarray(2 + 65552, 2 + 2 * 65552), 2);
  swapped.set(enc.ciphertext.subarray(2, 2 + 65552), 2 + 65552);
  assert.throws(() => decryptAttachment(swapped, enc.key, sha256(swapped)), InvalidMessage);
  const short = enc.ciphertext.subarray(0, 2 + 65552 + 10);
  assert.throws(() => decryptAttachment(short, enc.key, sha256(short)), DecodeError);
});

test("persisted keys round-trip and decoders are strict", () => {
  const id = IdentityKeyPair.generate();
  assert.equal(hex(IdentityKeyPair.fromBytes(id.toBytes()).public), hex(id.public));
  const spk = SignedPreKey.generate(id, 0xffffffff, { createdMs: 2 ** 40 + 12345 });
  const spk2 = SignedPreKey.fromBytes(spk.toBytes());
  assert.equal(spk2.createdMs, 2 ** 40 + 12345);
  assert.equal(spk2.keyId, 0xffffffff);
  assert.equal(hex(spk2.toBytes()), hex(spk.toBytes()));
  const opk = OneTimePreKey.generate(12);
  assert.equal(hex(OneTimePreKey.fromBytes(opk.toBytes()).public), hex(opk.public));
  assert.throws(() => IdentityKeyPair.fromBytes(opk.toBytes()), DecodeError);
  assert.throws(() => IdentityKeyPair.fromBytes(id.toBytes().subarray(0, 20)), DecodeError);
  assert.throws(() => SignedPreKey.generate(id, -1), CryptoError);
  // Sessions: both ends, before and after a reply.
  const { alice, bob } = setup();
  for (const s of [alice, bob]) {
    const b = s.toBytes();
    assert.equal(b[0], 1);
    assert.equal(b[1], 0x43);
    assert.equal(hex(Session.fromBytes(b).toBytes()), hex(b));
    const trailing = new Uint8Array([...b, 0]);
    assert.throws(() => Session.fromBytes(trailing), DecodeError);
  }
  const a2 = Session.fromBytes(alice.toBytes());
  const b2 = Session.fromBytes(bob.toBytes());
  assert.equal(fromUtf8(b2.decrypt(a2.encrypt(utf8("after restore")))), "after restore");
  assert.equal(fromUtf8(a2.decrypt(b2.encrypt(utf8("and back")))), "and back");
  assert.equal(hex(a2.remoteIdentity), hex(b2.localIdentity));
});

test("base64 is standard, padded and strict (as msgspec encodes bytes)", () => {
  const cases: [number[], string][] = [
    [[], ""],
    [[0xff], "/w=="],
    [[0xfb, 0xff], "+/8="],
    [[1, 2, 3], "AQID"],
  ];
  for (const [bytes, text] of cases) {
    assert.equal(b64encode(new Uint8Array(bytes)), text);
    assert.deepEqual([...b64decode(text)], bytes);
  }
  const big = new Uint8Array(200000).map((_, i) => i & 0xff);
  assert.equal(hex(b64decode(b64encode(big))), hex(big));
  assert.equal(b64encode(big), Buffer.from(big).toString("base64"));
  for (const bad of ["/w", "/w=", "-_8=", "AQID\n", "/x==", "A==="]) {
    assert.throws(() => b64decode(bad), DecodeError, bad);
  }
});

test("random sources must return the requested size", () => {
  assert.throws(() => KeyPair.generate(() => new Uint8Array(31)), CryptoError);
});
