/** Small helpers shared by the SDK: ids, addresses, base64 JSON bytes. */

import { b64decode, b64encode, fromUtf8, utf8 } from "../crypto/index.js";

export { b64decode, b64encode, fromUtf8, utf8 };

const HANDLE_RE = /^[a-z0-9_][a-z0-9_.-]{1,31}$/;
const GROUP_RE = /^[0-9abcdefghjkmnpqrstvwxyz]{26}$/;

/** `@Bob ` -> `bob` (as the server normalises handles). */
export function normalizeHandle(text: string): string {
  let t = text.trim();
  if (t.startsWith("@")) t = t.slice(1);
  return t.toLowerCase();
}

export function isHandle(text: string): boolean {
  return HANDLE_RE.test(text);
}

export type Address = { kind: "user"; name: string } | { kind: "group"; name: string };

export function parseAddress(to: string): Address | null {
  if (to.startsWith("@") && HANDLE_RE.test(to.slice(1))) return { kind: "user", name: to.slice(1) };
  if (to.startsWith("#") && GROUP_RE.test(to.slice(1))) return { kind: "group", name: to.slice(1) };
  return null;
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}

let lastMs = 0;
let lastSeq = 0;

/** A UUIDv7 (RFC 9562) that grows within this page, as the Python SDK's ids do. */
export function uuid7(now: number = Date.now()): string {
  let ms = Math.max(now, lastMs);
  let seq: number;
  if (ms === lastMs) {
    seq = lastSeq + 1;
    if (seq > 0xfff) {
      ms += 1;
      seq = randomBytes(2)[0]! & 0x7f;
    }
  } else {
    seq = ((randomBytes(2)[0]! << 4) | (randomBytes(1)[0]! >> 4)) & 0x7ff;
  }
  lastMs = ms;
  lastSeq = seq;
  const b = randomBytes(16);
  const hi = Math.floor(ms / 2 ** 16);
  b[0] = (hi >>> 24) & 0xff;
  b[1] = (hi >>> 16) & 0xff;
  b[2] = (hi >>> 8) & 0xff;
  b[3] = hi & 0xff;
  b[4] = (ms >>> 8) & 0xff;
  b[5] = ms & 0xff;
  b[6] = 0x70 | ((seq >> 8) & 0x0f);
  b[7] = seq & 0xff;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function hexOf(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Exponential backoff with full jitter: U(0, min(cap, base * 2^n)) seconds. */
export function backoffDelay(attempt: number, base = 0.25, cap = 10): number {
  return Math.random() * Math.min(cap, base * 2 ** Math.min(attempt, 60));
}

/** `512 B`, `1.5 kB`, `12.3 MB`: decimal units, as the Python SDK prints them. */
export function formatSize(size: number): string {
  if (size < 1000) return `${size} B`;
  let value = size;
  let unit = "kB";
  for (const u of ["kB", "MB", "GB", "TB"]) {
    value /= 1000;
    unit = u;
    if (Math.round(value * 10) / 10 < 1000 || u === "TB") break;
  }
  return `${value.toFixed(1)} ${unit}`;
}

const DURATION_UNITS: [string, number][] = [
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

export function formatDuration(seconds: number): string {
  for (const [name, length] of DURATION_UNITS) {
    if (seconds % length === 0 && seconds >= length) {
      const count = seconds / length;
      return count === 1 ? `${count} ${name}` : `${count} ${name}s`;
    }
  }
  return `${seconds} seconds`;
}
