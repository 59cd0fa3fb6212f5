/**
 * Typed errors of the cryptography core (mirror of taube/crypto/errors.py).
 *
 * Every failure raises a subclass of {@link CryptoError}; backend exceptions of
 * noble are translated in primitives.ts. A failed decrypt never changes the
 * session or sender-key state that raised it.
 */

export class CryptoError extends Error {
  constructor(message?: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The message failed authentication or does not belong to this session. */
export class InvalidMessage extends CryptoError {}

/** Bytes are not a valid canonical encoding (short, trailing bytes, wrong version/type). */
export class DecodeError extends InvalidMessage {}

/** A public key is malformed or of low order (the X25519 shared secret would be zero). */
export class InvalidKey extends CryptoError {}

/** An Ed25519 signature does not verify (signed prekey, sender-key message). */
export class InvalidSignature extends CryptoError {}

/** The message key was already used (a replay) or was discarded (evicted). */
export class DuplicateMessage extends CryptoError {}

/** The message would require skipping more than MAX_SKIP message keys in one chain. */
export class TooManySkipped extends CryptoError {}

/** A group message names a sender key id this receiver state does not hold. */
export class UnknownSenderKey extends CryptoError {}
