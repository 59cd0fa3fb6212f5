/**
 * The content format inside a message payload (docs/protocol.md section 12; a port of
 * taube.client.content). Encoding writes `type`, the type's fields, then `v`, leaving
 * out optional fields at their default. Decoding never throws: what is not understood
 * becomes {type: "unsupported"} with the reason.
 */

import { b64decode, b64encode, formatDuration, formatSize, fromUtf8, utf8 } from "./util.js";

export const FORMAT_VERSION = 1;
export const MAX_TEXT = 65536;
export const MAX_OPTIONS = 12;
export const MAX_EXPIRE_S = 366 * 24 * 3600;

export interface MessageRef {
  sender: string;
  id: string;
}

export interface Text {
  type: "text";
  text: string;
  reply_to?: MessageRef | null;
  expire_s?: number | null;
}
export interface Reaction {
  type: "reaction";
  target: MessageRef;
  emoji: string;
}
export interface Edit {
  type: "edit";
  target: MessageRef;
  text: string;
}
export interface Delete {
  type: "delete";
  target: MessageRef;
}
export interface Poll {
  type: "poll";
  question: string;
  options: string[];
  multiple?: boolean;
  expire_s?: number | null;
}
export interface Vote {
  type: "vote";
  poll: MessageRef;
  options: number[];
}
export interface Attachment {
  type: "attachment";
  blob: string;
  key: Uint8Array;
  digest: Uint8Array;
  size: number;
  name: string;
  mime: string;
  caption?: string;
  reply_to?: MessageRef | null;
  expire_s?: number | null;
}
export interface Disappearing {
  type: "disappearing";
  seconds: number;
}
export interface Unsupported {
  type: "unsupported";
  /** The type as read (`"undecryptable"` for a message that could not be decrypted). */
  wireType: string;
  v: number;
  reason: string;
}

export type KnownContent = Text | Reaction | Edit | Delete | Poll | Vote | Attachment | Disappearing;
export type AnyContent = KnownContent | Unsupported;

class Invalid extends Error {}

function refJson(r: MessageRef): Record<string, string> {
  return { sender: r.sender, id: r.id };
}

/** The content's JSON object (bytes as standard base64), as the Python SDK writes it. */
export function contentToJson(c: KnownContent): Record<string, unknown> {
  const o: Record<string, unknown> = { type: c.type };
  switch (c.type) {
    case "text":
      o.text = c.text;
      if (c.reply_to) o.reply_to = refJson(c.reply_to);
      if (c.expire_s != null) o.expire_s = c.expire_s;
      break;
    case "reaction":
      o.target = refJson(c.target);
      o.emoji = c.emoji;
      break;
    case "edit":
      o.target = refJson(c.target);
      o.text = c.text;
      break;
    case "delete":
      o.target = refJson(c.target);
      break;
    case "poll":
      o.question = c.question;
      o.options = [...c.options];
      if (c.multiple) o.multiple = true;
      if (c.expire_s != null) o.expire_s = c.expire_s;
      break;
    case "vote":
      o.poll = refJson(c.poll);
      o.options = [...c.options];
      break;
    case "attachment":
      o.blob = c.blob;
      o.key = b64encode(c.key);
      o.digest = b64encode(c.digest);
      o.size = c.size;
      o.name = c.name;
      o.mime = c.mime;
      if (c.caption) o.caption = c.caption;
      if (c.reply_to) o.reply_to = refJson(c.reply_to);
      if (c.expire_s != null) o.expire_s = c.expire_s;
      break;
    case "disappearing":
      o.seconds = c.seconds;
      break;
  }
  o.v = FORMAT_VERSION;
  return o;
}

export function encodeContent(c: KnownContent | string): Uint8Array {
  const content: KnownContent = typeof c === "string" ? { type: "text", text: c } : c;
  return utf8(JSON.stringify(contentToJson(content)));
}

const KNOWN = new Set(["text", "reaction", "edit", "delete", "poll", "vote", "attachment", "disappearing"]);

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}
function isInt(x: unknown): x is number {
  return typeof x === "number" && Number.isInteger(x);
}
function str(o: Record<string, unknown>, k: string, min: number, max: number): string {
  const v = o[k];
  if (v === undefined) throw new Invalid(`Object missing required field \`${k}\``);
  if (typeof v !== "string") throw new Invalid(`Expected \`str\` - at \`$.${k}\``);
  const n = [...v].length;
  if (n < min || n > max) throw new Invalid(`string length out of range - at \`$.${k}\``);
  return v;
}
function optStr(o: Record<string, unknown>, k: string, max: number): string {
  return o[k] === undefined ? "" : str(o, k, 0, max);
}
function ref(o: Record<string, unknown>, k: string, required: true): MessageRef;
function ref(o: Record<string, unknown>, k: string, required: false): MessageRef | null;
function ref(o: Record<string, unknown>, k: string, required: boolean): MessageRef | null {
  const v = o[k];
  if (v === undefined || (v === null && !required)) {
    if (required) throw new Invalid(`Object missing required field \`${k}\``);
    return null;
  }
  if (!isObj(v)) throw new Invalid(`Expected \`object\` - at \`$.${k}\``);
  return { sender: str(v, "sender", 1, 64), id: str(v, "id", 1, 64) };
}
function expire(o: Record<string, unknown>): number | null {
  const v = o.expire_s;
  if (v === undefined || v === null) return null;
  if (!isInt(v) || v < 1 || v > MAX_EXPIRE_S) throw new Invalid("bad `$.expire_s`");
  return v;
}
function bytesField(o: Record<string, unknown>, k: string): Uint8Array {
  const v = o[k];
  if (typeof v !== "string") throw new Invalid(`Expected base64 \`str\` - at \`$.${k}\``);
  let b: Uint8Array;
  try {
    b = b64decode(v);
  } catch {
    throw new Invalid(`Invalid base64 - at \`$.${k}\``);
  }
  if (b.length < 16 || b.length > 64) throw new Invalid(`bad length - at \`$.${k}\``);
  return b;
}

function decodeKnown(type: string, o: Record<string, unknown>): KnownContent {
  switch (type) {
    case "text":
      return { type, text: str(o, "text", 0, MAX_TEXT), reply_to: ref(o, "reply_to", false), expire_s: expire(o) };
    case "reaction":
      return { type, target: ref(o, "target", true), emoji: str(o, "emoji", 0, 32) };
    case "edit":
      return { type, target: ref(o, "target", true), text: str(o, "text", 0, MAX_TEXT) };
    case "delete":
      return { type, target: ref(o, "target", true) };
    case "poll": {
      const question = str(o, "question", 1, 300);
      const opts = o.options;
      if (!Array.isArray(opts)) throw new Invalid("Object missing required field `options`");
      if (opts.length < 2 || opts.length > MAX_OPTIONS) throw new Invalid("bad number of options");
      const options = opts.map((x) => {
        if (typeof x !== "string" || x.length < 1 || [...x].length > 100) throw new Invalid("bad option");
        return x;
      });
      const multiple = o.multiple === undefined ? false : o.multiple;
      if (typeof multiple !== "boolean") throw new Invalid("bad `$.multiple`");
      return { type, question, options, multiple, expire_s: expire(o) };
    }
    case "vote": {
      const poll = ref(o, "poll", true);
      const opts = o.options;
      if (!Array.isArray(opts) || opts.length > MAX_OPTIONS) throw new Invalid("bad `$.options`");
      const options = opts.map((x) => {
        if (!isInt(x) || x < 0 || x >= MAX_OPTIONS) throw new Invalid("bad vote index");
        return x;
      });
      return { type, poll, options };
    }
    case "attachment": {
      const blob = o.blob;
      if (typeof blob !== "string" || !/^[0-9a-f]{64}$/.test(blob)) throw new Invalid("bad `$.blob`");
      const size = o.size;
      if (!isInt(size) || size < 0) throw new Invalid("bad `$.size`");
      return {
        type,
        blob,
        key: bytesField(o, "key"),
        digest: bytesField(o, "digest"),
        size,
        name: str(o, "name", 0, 255),
        mime: str(o, "mime", 0, 255),
        caption: optStr(o, "caption", MAX_TEXT),
        reply_to: ref(o, "reply_to", false),
        expire_s: expire(o),
      };
    }
    case "disappearing": {
      const s = o.seconds;
      if (!isInt(s) || s < 0 || s > MAX_EXPIRE_S) throw new Invalid("bad `$.seconds`");
      return { type, seconds: s };
    }
  }
  throw new Invalid("unknown content type");
}

export function unsupported(wireType: string, v: number, reason: string): Unsupported {
  return { type: "unsupported", wireType, v, reason };
}

export function decodeContent(payload: Uint8Array): AnyContent {
  let o: unknown;
  try {
    o = JSON.parse(fromUtf8(payload));
  } catch {
    return unsupported("", 0, "not a content object");
  }
  if (!isObj(o)) return unsupported("", 0, "not a content object");
  const v = o.v === undefined ? 0 : o.v;
  const type = o.type === undefined ? "" : o.type;
  if (!isInt(v) || typeof v === "boolean" || typeof type !== "string") {
    return unsupported("", 0, "not a content object");
  }
  if (v !== FORMAT_VERSION) return unsupported(type, v, "unsupported format version");
  if (!KNOWN.has(type)) return unsupported(type, v, "unknown content type");
  try {
    return decodeKnown(type, o);
  } catch (e) {
    return unsupported(type, v, e instanceof Error ? e.message : String(e));
  }
}

/** One line to show for a content (chat list, notifications), or null. */
export function contentText(c: AnyContent): string | null {
  switch (c.type) {
    case "text":
      return c.text;
    case "reaction":
      return c.emoji === "" ? "removed a reaction" : `reacted ${c.emoji}`;
    case "edit":
      return `edited: ${c.text}`;
    case "delete":
      return "deleted a message";
    case "poll":
      return `📊 ${c.question}`;
    case "vote":
      return c.options.length === 0 ? "retracted a vote" : "voted";
    case "attachment": {
      const line = `📎 ${c.name} (${formatSize(c.size)})`;
      return c.caption ? `${line} ${c.caption}` : line;
    }
    case "disappearing":
      return c.seconds === 0
        ? "turned off disappearing messages"
        : `turned on disappearing messages: ${formatDuration(c.seconds)}`;
    case "unsupported":
      return null;
  }
}

/** A JSON-safe copy for storage (bytes as base64), and back. */
export function contentToStored(c: AnyContent): unknown {
  if (c.type === "unsupported") return c;
  return contentToJson(c);
}
export function contentFromStored(x: unknown): AnyContent {
  if (isObj(x) && x.type === "unsupported") return x as unknown as Unsupported;
  return decodeContent(utf8(JSON.stringify(x)));
}
