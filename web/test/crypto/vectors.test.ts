/** Every value of tests/vectors/*.json, reproduced byte for byte. */

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  IdentityKeyPair,
  KeyPair,
  OneTimePreKey,
  PreKeyBundle,
  PreKeyMessage,
  SafetyNumber,
  SenderKeyDistribution,
  SenderKeyReceiver,
  SenderKeySender,
  Session,
  SignedPreKey,
  UnknownSenderKey,
  DuplicateMessage,
  accountKey,
  decodePairwise,
  decryptAttachment,
  ed25519PublicToX25519,
  ed25519SeedToX25519Private,
  encryptAttachment,
  fingerprintHalf,
  fromUtf8,
  kdfCk,
  kdfRk,
  messageKeys,
  safetyNumber,
  senderMessageKeys,
  utf8,
  x3dhInitiate,
  x3dhRespond,
} from "../../src/crypto/index.js";
import { Counter, hex, loadVector, tape, x } from "./helpers.js";

const checked = new Counter();
const eq = (actual: Uint8Array, expected: string, what: string) => {
  assert.equal(hex(actual), expected, what);
  checked.add();
};

test("keys.json: Ed25519 identity keys and their X25519 forms", () => {
  const v = loadVector("keys.json");
  assert.equal(v.cases.length, 4);
  for (const c of v.cases) {
    const seed = x(c.ed25519_seed);
    const id = IdentityKeyPair.fromSeed(seed);
    eq(id.public, c.ed25519_public, "ed25519 public");
    eq(ed25519SeedToX25519Private(seed), c.x25519_private, "x25519 private");
    eq(id.dhPrivate, c.x25519_private, "identity dh private");
    eq(id.dhPublic, c.x25519_public, "x25519 public");
    eq(ed25519PublicToX25519(id.public), c.x25519_public_from_map, "x25519 public via map");
    eq(KeyPair.fromPrivateBytes(id.dhPrivate).public, c.x25519_public, "x25519 public from private");
    eq(id.toBytes(), c.identity_key_pair_bytes, "identity bytes");
    eq(IdentityKeyPair.fromBytes(x(c.identity_key_pair_bytes)).public, c.ed25519_public, "identity from bytes");
  }
});

test("kdf.json: KDF_RK, KDF_CK, message keys, sender-key message keys", () => {
  const v = loadVector("kdf.json");
  const [rk, ck] = kdfRk(x(v.kdf_rk.root_key), x(v.kdf_rk.dh_out));
  eq(rk, v.kdf_rk.new_root_key, "new root key");
  eq(ck, v.kdf_rk.chain_key, "chain key");
  assert.equal(v.chain[0].chain_key, v.kdf_rk.chain_key);
  let chain = ck;
  for (const step of v.chain) {
    eq(chain, step.chain_key, `chain key ${step.index}`);
    const [seed, next] = kdfCk(chain);
    eq(seed, step.message_key_seed, "seed");
    eq(next, step.next_chain_key, "next chain key");
    const mk = messageKeys(seed);
    eq(mk.cipherKey, step.cipher_key, "cipher key");
    eq(mk.macKey, step.mac_key, "mac key");
    eq(mk.iv, step.iv, "iv");
    const [sk, siv] = senderMessageKeys(seed);
    eq(sk, step.sender_cipher_key, "sender cipher key");
    eq(siv, step.sender_iv, "sender iv");
    chain = next;
  }
});

test("libsignal test_chain_key_derivation known answer", () => {
  const [seed, next] = kdfCk(x("8ab72d6f4cc5ac0d387eaf463378ddb28edd07385b1cb01250c715982e7ad48f"));
  const mk = messageKeys(seed);
  eq(mk.cipherKey, "bf51e9d75e0e31031051f82a2491ffc084fa298b7793bd9db620056febf45217", "aes key");
  eq(mk.macKey, "c6c77d6a73a354337a56435e34607dfe48e3ace14e77314dc6abc172e7a7030b", "mac key");
  eq(next, "28e8f8fee54b801eef7c5cfb2f17f32c7b334485bbb70fac6ec10342a246d15d", "next chain key");
});

test("x3dh.json: both runs, every key, DH, SK, AD and encoding", () => {
  const v = loadVector("x3dh.json");
  assert.equal(v.cases.length, 2);
  for (const c of v.cases) {
    // Regenerate everything from the random tape, exactly as the generator did.
    const rnd = tape(c.random_tape);
    const alice = IdentityKeyPair.generate(rnd);
    const bob = IdentityKeyPair.generate(rnd);
    const spk = SignedPreKey.generate(bob, 7, { createdMs: 1_700_000_000_000, random: rnd });
    const withOpk = c.one_time_prekey_id !== null;
    const opk = withOpk ? OneTimePreKey.generate(42, rnd) : null;
    const ephemeral = KeyPair.generate(rnd);
    assert.equal(rnd.remaining(), 0, "tape fully consumed");

    eq(alice.seed, c.alice_identity_seed, "alice seed");
    eq(alice.public, c.alice_identity_public, "alice public");
    eq(bob.seed, c.bob_identity_seed, "bob seed");
    eq(bob.public, c.bob_identity_public, "bob public");
    assert.equal(spk.keyId, c.signed_prekey_id);
    eq(spk.keyPair.private, c.signed_prekey_private, "spk private");
    eq(spk.public, c.signed_prekey_public, "spk public");
    eq(spk.signature, c.signed_prekey_signature, "spk signature");
    eq(spk.toBytes(), c.signed_prekey_bytes, "spk bytes");
    const spk2 = SignedPreKey.fromBytes(x(c.signed_prekey_bytes));
    eq(spk2.toBytes(), c.signed_prekey_bytes, "spk round trip");
    assert.equal(spk2.createdMs, 1_700_000_000_000);
    if (opk) {
      assert.equal(opk.keyId, c.one_time_prekey_id);
      eq(opk.keyPair.private, c.one_time_prekey_private, "opk private");
      eq(opk.public, c.one_time_prekey_public, "opk public");
      eq(opk.toBytes(), c.one_time_prekey_bytes, "opk bytes");
      eq(OneTimePreKey.fromBytes(x(c.one_time_prekey_bytes)).toBytes(), c.one_time_prekey_bytes, "opk round trip");
    } else {
      assert.equal(c.one_time_prekey_bytes, null);
    }
    const bundle = PreKeyBundle.create(bob, spk, opk);
    eq(bundle.toBytes(), c.bundle, "bundle");
    const decoded = PreKeyBundle.fromBytes(x(c.bundle));
    eq(decoded.toBytes(), c.bundle, "bundle round trip");
    decoded.verify();
    eq(ephemeral.private, c.ephemeral_private, "ephemeral private");
    eq(ephemeral.public, c.ephemeral_public, "ephemeral public");

    eq(alice.dh(spk.public), c.dh1, "DH1");
    const bobDh = ed25519PublicToX25519(bob.public);
    eq(ephemeral.dh(bobDh), c.dh2, "DH2");
    eq(ephemeral.dh(spk.public), c.dh3, "DH3");
    if (opk) eq(ephemeral.dh(opk.public), c.dh4, "DH4");
    else assert.equal(c.dh4, undefined);
    // Responder side of each DH.
    eq(spk.keyPair.dh(ed25519PublicToX25519(alice.public)), c.dh1, "DH1 (bob)");
    eq(bob.dh(ephemeral.public), c.dh2, "DH2 (bob)");

    const result = x3dhInitiate(alice, decoded, ephemeral);
    eq(result.sharedSecret, c.shared_secret, "SK (alice)");
    eq(result.associatedData, c.associated_data, "AD (alice)");
    const [sk, ad] = x3dhRespond(bob, spk2, opk, alice.public, ephemeral.public);
    eq(sk, c.shared_secret, "SK (bob)");
    eq(ad, c.associated_data, "AD (bob)");
  }
});

/** Replays ratchet.json; with `persist`, every session goes through toBytes/fromBytes before each step. */
function replayRatchet(persist: boolean): number {
  const v = loadVector("ratchet.json");
  const aliceId = IdentityKeyPair.fromSeed(x(v.alice_identity_seed));
  const bobId = IdentityKeyPair.fromSeed(x(v.bob_identity_seed));
  const spk = SignedPreKey.fromBytes(x(v.signed_prekey_bytes));
  const opk = OneTimePreKey.fromBytes(x(v.one_time_prekey_bytes));
  eq(spk.toBytes(), v.signed_prekey_bytes, "spk round trip");
  eq(opk.toBytes(), v.one_time_prekey_bytes, "opk round trip");
  const bundle = PreKeyBundle.fromBytes(x(v.bundle));
  eq(PreKeyBundle.create(bobId, spk, opk).toBytes(), v.bundle, "bundle");
  const aliceTape = tape(v.alice_random_tape);
  const bobTape = tape(v.bob_random_tape);
  let alice = Session.initiate(aliceId, bundle, aliceTape);
  let bob: Session | null = null;
  const sent: string[] = [];
  let steps = 0;
  const roundTrip = (s: Session, rnd: typeof aliceTape): Session => {
    const bytes = s.toBytes();
    const back = Session.fromBytes(bytes, rnd);
    assert.equal(hex(back.toBytes()), hex(bytes), "session round trip");
    return back;
  };
  for (const step of v.steps) {
    if (persist) {
      alice = roundTrip(alice, aliceTape);
      if (bob) bob = roundTrip(bob, bobTape);
    }
    const session: Session | null = step.actor === "alice" ? alice : bob;
    if (step.action === "send") {
      assert.ok(session, "sender has a session");
      const wire: Uint8Array = session.encrypt(utf8(step.plaintext));
      eq(wire, step.wire, `wire of "${step.plaintext}"`);
      assert.equal(wire[1] === 0x02 ? "prekey" : "ratchet", step.kind);
      assert.equal(session.awaitingReply, step.kind === "prekey");
      // The decoder and encoder agree on every wire message.
      eq(decodePairwise(wire).toBytes(), step.wire, "decode/encode");
      sent.push(step.wire);
    } else {
      const wire = x(sent[step.index]!);
      let plaintext: Uint8Array;
      if (step.actor === "bob" && bob === null) {
        const msg = decodePairwise(wire);
        assert.ok(msg instanceof PreKeyMessage);
        [bob, plaintext] = Session.respond(bobId, msg, spk, opk, bobTape);
        assert.equal(hex(bob.remoteIdentity), hex(aliceId.public));
        assert.equal(hex(bob.localIdentity), hex(bobId.public));
        assert.ok(bob.matches(msg));
      } else {
        assert.ok(session);
        plaintext = session.decrypt(wire);
      }
      assert.equal(fromUtf8(plaintext), step.plaintext);
      checked.add();
      // Every message decrypts once: a replay is a duplicate and changes nothing.
      const receiver = step.actor === "alice" ? alice : bob!;
      const before = hex(receiver.toBytes());
      assert.throws(() => receiver.decrypt(wire), DuplicateMessage);
      assert.equal(hex(receiver.toBytes()), before);
    }
    steps++;
  }
  assert.equal(aliceTape.remaining(), 0, "alice tape consumed");
  assert.equal(bobTape.remaining(), 0, "bob tape consumed");
  assert.equal(hex(alice.remoteIdentity), hex(bobId.public));
  assert.equal(alice.awaitingReply, false);
  return steps;
}

test("ratchet.json: the conversation, every wire message byte for byte", () => {
  assert.ok(replayRatchet(false) > 20);
});

test("ratchet.json: the same conversation with persistence before every step", () => {
  assert.ok(replayRatchet(true) > 20);
});

test("sender_keys.json: distributions, signed messages, out of order, late joiner, rotation", () => {
  const v = loadVector("sender_keys.json");
  const rnd = tape(v.random_tape);
  const sender = SenderKeySender.generate(rnd);
  eq(sender.distribution().toBytes(), v.distribution, "distribution");
  const first = SenderKeyDistribution.fromBytes(x(v.distribution));
  eq(first.toBytes(), v.distribution, "distribution round trip");
  for (const m of v.messages) {
    if (m.iteration === 4) eq(sender.distribution().toBytes(), v.distribution_after_4, "distribution after 4");
    assert.equal(sender.iteration, m.iteration);
    eq(sender.encrypt(utf8(m.plaintext)), m.wire, `group message ${m.iteration}`);
    eq(SenderKeySender.fromBytes(sender.toBytes()).toBytes(), hex(sender.toBytes()), "sender round trip");
  }
  const receiver = SenderKeyReceiver.fromDistribution(x(v.distribution));
  assert.equal(receiver.keyId, first.keyId);
  for (const i of v.receive_order) {
    const m = v.messages[i];
    assert.equal(fromUtf8(receiver.decrypt(x(m.wire))), m.plaintext);
    checked.add();
    const again = SenderKeyReceiver.fromBytes(receiver.toBytes());
    assert.equal(hex(again.toBytes()), hex(receiver.toBytes()));
  }
  for (const m of v.messages) assert.throws(() => receiver.decrypt(x(m.wire)), DuplicateMessage);
  // The late joiner reads iteration 4 only.
  const late = SenderKeyReceiver.fromDistribution(SenderKeyDistribution.fromBytes(x(v.distribution_after_4)));
  assert.equal(fromUtf8(late.decrypt(x(v.messages[4].wire))), "after join");
  checked.add();
  for (const m of v.messages.slice(0, 4)) assert.throws(() => late.decrypt(x(m.wire)), DuplicateMessage);
  // Rotation: a new key id; old receivers do not know it.
  const rotated = SenderKeySender.generate(rnd);
  assert.equal(rnd.remaining(), 0, "tape consumed");
  eq(rotated.distribution().toBytes(), v.rotated_distribution, "rotated distribution");
  eq(rotated.encrypt(utf8(v.rotated_message.plaintext)), v.rotated_message.wire, "rotated message");
  assert.throws(() => receiver.decrypt(x(v.rotated_message.wire)), UnknownSenderKey);
  const rotatedReceiver = SenderKeyReceiver.fromDistribution(x(v.rotated_distribution));
  assert.equal(fromUtf8(rotatedReceiver.decrypt(x(v.rotated_message.wire))), v.rotated_message.plaintext);
  checked.add();
});

test("safety_numbers.json: libsignal's known answer and the multi-device case", () => {
  const v = loadVector("safety_numbers.json");
  const s = v.signal_known_answer;
  const a = fingerprintHalf(x(s.alice_key), s.alice_id);
  const b = fingerprintHalf(x(s.bob_key), utf8(s.bob_id));
  eq(a, s.alice_fingerprint, "alice fingerprint");
  eq(b, s.bob_fingerprint, "bob fingerprint");
  assert.equal(new SafetyNumber(a, b).digits, s.digits);
  assert.equal(new SafetyNumber(b, a).digits, "300354477692869396892869876765458257569162576843440918079131");
  checked.add(2);
  const m = v.multi_device;
  const aliceKeys = m.alice_device_keys.map(x);
  const bobKeys = m.bob_device_keys.map(x);
  eq(accountKey(aliceKeys), m.alice_account_key, "account key");
  eq(accountKey([...aliceKeys].reverse()), m.alice_account_key, "account key is order independent");
  const mine = safetyNumber(m.alice_id, aliceKeys, m.bob_id, bobKeys);
  const theirs = safetyNumber(m.bob_id, bobKeys, m.alice_id, aliceKeys);
  assert.equal(mine.digits, m.digits);
  assert.equal(theirs.digits, m.digits);
  assert.equal(mine.formatted(), m.formatted);
  checked.add(3);
  eq(mine.scannable, m.alice_scannable, "alice scannable");
  eq(theirs.scannable, m.bob_scannable, "bob scannable");
  assert.ok(mine.matchesScanned(theirs.scannable));
  assert.ok(theirs.matchesScanned(mine.scannable));
  assert.ok(!mine.matchesScanned(mine.scannable));
});

test("attachments.json: digests and ciphertexts, decrypt every case", () => {
  const v = loadVector("attachments.json");
  for (const c of v.cases) {
    const pt = new Uint8Array(c.plaintext_length);
    for (let i = 0; i < pt.length; i++) pt[i] = i % 251;
    const enc = encryptAttachment(pt, { key: x(c.key) });
    assert.equal(enc.ciphertext.length, c.ciphertext_length);
    eq(enc.digest, c.digest, `digest (${c.plaintext_length})`);
    eq(enc.key, c.key, "key");
    if (c.ciphertext !== null) eq(enc.ciphertext, c.ciphertext, `ciphertext (${c.plaintext_length})`);
    const back = decryptAttachment(enc.ciphertext, x(c.key), x(c.digest));
    assert.equal(hex(back), hex(pt));
    checked.add();
    // The random key is drawn from the injected source.
    const rndKey = encryptAttachment(pt, { random: tape([c.key]) });
    assert.equal(hex(rndKey.digest), c.digest);
  }
});

test("summary: every vector value was compared", (t) => {
  t.diagnostic(`vector values checked: ${checked.n}`);
  assert.ok(checked.n >= 200, `only ${checked.n} values checked`);
});
