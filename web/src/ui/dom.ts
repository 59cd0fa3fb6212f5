/** Tiny DOM helpers: elements built with the DOM API (no HTML strings, no inline styles). */

import qrcode from "qrcode-generator";

type Attrs = Record<string, string | number | boolean | null | undefined | ((ev: Event) => void)>;
export type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === "function") {
      el.addEventListener(k.replace(/^on/, "").toLowerCase(), v as EventListener);
    } else if (k === "class") {
      el.className = String(v);
    } else if (k === "testid") {
      el.dataset.testid = String(v);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

const SVG = "http://www.w3.org/2000/svg";

/** An icon from SVG path data (24x24 viewBox), aria-hidden. */
export function icon(paths: string[], cls = "icon"): SVGSVGElement {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", cls);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  for (const d of paths) {
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", d);
    svg.append(p);
  }
  return svg;
}

export const ICONS = {
  check: ["M4 12.5l4.5 4.5L19 6.5"],
  doubleCheck: ["M1.5 12.5L6 17 16.5 6.5", "M8.5 15.5L10 17 20.5 6.5"],
  clock: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M12 7v5l3.5 2"],
  send: ["M3 20.5L21 12 3 3.5l2.5 7.5L14 12l-8.5 1z"],
  attach: ["M16.5 6.5l-8 8a2.1 2.1 0 0 0 3 3l8.5-8.5a4 4 0 0 0-5.7-5.7L5.6 11.9a6 6 0 0 0 8.5 8.5L20 14.5"],
  poll: ["M5 20V10", "M12 20V4", "M19 20v-7"],
  back: ["M15 5l-7 7 7 7"],
  plus: ["M12 5v14", "M5 12h14"],
  group: ["M9 11a3.5 3.5 0 1 0 0-7a3.5 3.5 0 0 0 0 7z", "M2.5 20c0-3.6 2.9-6 6.5-6s6.5 2.4 6.5 6", "M16 4.5a3.5 3.5 0 0 1 0 6.5", "M18 14c2.2.6 3.5 2.8 3.5 6"],
  moon: ["M20 14.5A8.5 8.5 0 0 1 9.5 4a8.5 8.5 0 1 0 10.5 10.5z"],
  bell: ["M6 16V11a6 6 0 0 1 12 0v5l2 2H4z", "M10 20a2 2 0 0 0 4 0"],
  more: ["M5 12h.01", "M12 12h.01", "M19 12h.01"],
  info: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M12 11v6", "M12 7.5v.01"],
  shield: ["M12 3l8 3v6c0 4.5-3.4 8.3-8 9-4.6-.7-8-4.5-8-9V6z", "M8.5 12l2.5 2.5 4.5-5"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  reply: ["M10 9V5l-7 7 7 7v-4.1c5 0 8.5 1.6 11 5.1-1-5-4-10-11-11z"],
  smile: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M8.5 14.5c1.8 2 5.2 2 7 0", "M9 9.5h.01", "M15 9.5h.01"],
  edit: ["M4 20h4L19 9l-4-4L4 16z", "M13.5 6.5l4 4"],
  trash: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13"],
  link: ["M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1", "M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1"],
  logout: ["M15 4h4v16h-4", "M10 8l-4 4 4 4", "M6 12h10"],
  search: ["M11 4a7 7 0 1 0 0 14a7 7 0 1 0 0-14z", "M20 20l-4-4"],
  file: ["M6 3h8l4 4v14H6z", "M14 3v4h4"],
  lock: ["M6 11h12v10H6z", "M8.5 11V8a3.5 3.5 0 0 1 7 0v3"],
  devices: ["M3 6h13v9H3z", "M1.5 18h16", "M18 8h4.5v12H18z", "M20.25 17.5v.01"],
  timer: ["M12 5.5a7.5 7.5 0 1 0 0 15a7.5 7.5 0 1 0 0-15z", "M12 9v4l2.5 1.5", "M9.5 2.5h5", "M12 2.5v3"],
  block: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z", "M5.6 5.6l12.8 12.8"],
};

/** `HH:MM` in UTC. */
export function utcTime(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/** A QR code drawn as an SVG element through the DOM (bytes or text). */
export function qrSvg(data: string | Uint8Array, label: string): SVGSVGElement {
  const qr = qrcode(0, "M");
  const text = typeof data === "string" ? unescape(encodeURIComponent(data)) : String.fromCharCode(...data);
  qr.addData(text, "Byte");
  qr.make();
  const n = qr.getModuleCount();
  const margin = 2;
  const size = n + margin * 2;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("class", "qr");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  const bg = document.createElementNS(SVG, "rect");
  bg.setAttribute("width", String(size));
  bg.setAttribute("height", String(size));
  bg.setAttribute("class", "qr-bg");
  svg.append(bg);
  let d = "";
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) d += `M${c + margin} ${r + margin}h1v1h-1z`;
    }
  }
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  path.setAttribute("class", "qr-fg");
  svg.append(path);
  return svg;
}

export function timeOf(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

export function dayLabel(ms: number, now = Date.now()): string {
  const d = new Date(ms);
  const today = new Date(now);
  const startOf = (x: Date) => new Date(x.getFullYear(), x.getMonth(), x.getDate()).getTime();
  const diff = Math.round((startOf(today) - startOf(d)) / 86400000);
  if (diff === 0) return "Today";
  if (diff === 1) return "Yesterday";
  if (diff < 7) return d.toLocaleDateString(undefined, { weekday: "long" });
  return d.toLocaleDateString(undefined, { day: "numeric", month: "long", year: "numeric" });
}

export function shortTime(ms: number, now = Date.now()): string {
  const label = dayLabel(ms, now);
  if (label === "Today") return timeOf(ms);
  if (label === "Yesterday") return "Yesterday";
  const d = new Date(ms);
  if (now - ms < 7 * 86400000) return d.toLocaleDateString(undefined, { weekday: "short" });
  return d.toLocaleDateString(undefined, { day: "2-digit", month: "2-digit", year: "2-digit" });
}

export function initials(name: string): string {
  const clean = name.replace(/^[@#]/, "").trim();
  const parts = clean.split(/[\s._-]+/).filter(Boolean);
  const first = parts[0]?.[0] ?? "?";
  const second = parts.length > 1 ? (parts[1]?.[0] ?? "") : (clean[1] ?? "");
  return (first + second).toUpperCase();
}

/** A stable hue class (0-7) for an avatar. */
export function hueClass(name: string): string {
  let x = 0;
  for (const ch of name) x = (x * 31 + ch.charCodeAt(0)) >>> 0;
  return `hue-${x % 8}`;
}
