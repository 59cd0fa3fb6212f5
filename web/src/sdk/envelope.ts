/** The end-to-end envelope in each per-device payload (docs/e2ee.md 8.1; port of taube.client.envelope). */

import { b64decode, b64encode, fromUtf8, utf8 } from "./util.js";

export const ENVELOPE_VERSION = 1;

export interface Envelope {
  e: number;
  p?: Uint8Array;
  g?: Uint8Array;
  r?: string;
  rd?: number;
  x?: boolean;
}
export interface Inner {
  c?: Uint8Array;
  k?: Uint8Array;
  kg?: string;
  o?: string;
}

export function encodeEnvelope(env: Envelope): Uint8Array {
  const o: Record<string, unknown> = { e: env.e };
  if (env.p) o.p = b64encode(env.p);
  if (env.g) o.g = b64encode(env.g);
  if (env.r !== undefined) o.r = env.r;
  if (env.rd !== undefined) o.rd = env.rd;
  if (env.x) o.x = true;
  return utf8(JSON.stringify(o));
}

export function encodeInner(inner: Inner): Uint8Array {
  const o: Record<string, unknown> = {};
  if (inner.c) o.c = b64encode(inner.c);
  if (inner.k) o.k = b64encode(inner.k);
  if (inner.kg !== undefined) o.kg = inner.kg;
  if (inner.o !== undefined) o.o = inner.o;
  return utf8(JSON.stringify(o));
}

export const NOTHING_FOR_YOU = encodeEnvelope({ e: ENVELOPE_VERSION, x: true });

function parse(bytes: Uint8Array): Record<string, unknown> | null {
  try {
    const o: unknown = JSON.parse(fromUtf8(bytes));
    return typeof o === "object" && o !== null && !Array.isArray(o) ? (o as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function optBytes(o: Record<string, unknown>, k: string): Uint8Array | undefined | null {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") return null;
  try {
    return b64decode(v);
  } catch {
    return null;
  }
}

/** The envelope in a payload, or null if it is not one (of a version we know). */
export function decodeEnvelope(payload: Uint8Array): Envelope | null {
  if (payload.length === 0 || payload[0] !== 0x7b) return null;
  const o = parse(payload);
  if (o === null || typeof o.e !== "number" || !Number.isInteger(o.e)) return null;
  const p = optBytes(o, "p");
  const g = optBytes(o, "g");
  if (p === null || g === null) return null;
  if (o.r !== undefined && o.r !== null && typeof o.r !== "string") return null;
  if (o.rd !== undefined && o.rd !== null && !Number.isInteger(o.rd)) return null;
  if (o.x !== undefined && typeof o.x !== "boolean") return null;
  if (o.e !== ENVELOPE_VERSION) return null;
  const env: Envelope = { e: o.e };
  if (p) env.p = p;
  if (g) env.g = g;
  if (typeof o.r === "string") env.r = o.r;
  if (typeof o.rd === "number") env.rd = o.rd;
  if (o.x === true) env.x = true;
  return env;
}

export function decodeInner(plaintext: Uint8Array): Inner | null {
  const o = parse(plaintext);
  if (o === null) return null;
  const c = optBytes(o, "c");
  const k = optBytes(o, "k");
  if (c === null || k === null) return null;
  const inner: Inner = {};
  if (c) inner.c = c;
  if (k) inner.k = k;
  if (typeof o.kg === "string") inner.kg = o.kg;
  if (typeof o.o === "string") inner.o = o.o;
  return inner;
}
