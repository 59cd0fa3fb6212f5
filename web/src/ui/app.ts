/** The messenger UI: chat list, conversation, dialogs, banners. */

import { ApiError, type DeviceInfo, type GroupInfo, type StatusDocument } from "../sdk/api.js";
import type { Client, ClientEvent, Notice } from "../sdk/client.js";
import type { Attachment, MessageRef } from "../sdk/content.js";
import { UntrustedIdentity } from "../sdk/e2ee.js";
import { type Chat, EDIT_WINDOW_MS, type Row, rowContent, rowKey, rowText, tally } from "../sdk/history.js";
import { formatDuration, formatSize, normalizeHandle, parseAddress } from "../sdk/util.js";
import { ICONS, clear, dayLabel, h, hueClass, icon, initials, qrSvg, shortTime, timeOf, utcTime } from "./dom.js";

const EMOJIS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];
const PAGE = 50;
const TYPING_MS = 6000;
const MAX_NOTIFICATIONS = 50; // shown notifications remembered, to close them later
/** The chat timer's choices (seconds; 0 is off). */
const TIMERS: [string, number][] = [
  ["Off", 0],
  ["24 hours", 86400],
  ["7 days", 7 * 86400],
  ["90 days", 90 * 86400],
];
const VERDICTS: Record<string, string> = {
  degraded: "degraded performance",
  partial_outage: "partial outage",
  major_outage: "major outage",
};

/** A status document older than this says nothing about now (docs/status.md, "Dead man's switch"). */
const STATUS_STALE_MS = 5 * 60_000;

/** What the connection banner says, from the status page's answer (null: the default). */
export function statusLine(status: StatusDocument | null, now = Date.now()): { text: string; incident: number | null } | null {
  if (status === null) return null;
  const stale = status.generated_ms > 0 && now - status.generated_ms > STATUS_STALE_MS;
  const asOf = stale ? ` (status as of ${utcTime(status.generated_ms)} UTC)` : "";
  const incident = status.open[0];
  if (incident) {
    const since = incident.started_ms ? `, since ${utcTime(incident.started_ms)} UTC` : "";
    return { text: `It's not you: ${incident.title} (incident #${incident.id}${since})${asOf}`, incident: incident.id };
  }
  if (status.verdict !== "operational" && status.verdict !== "unknown") {
    return { text: `Taube has a problem: ${VERDICTS[status.verdict] ?? status.verdict.replace(/_/g, " ")}${asOf}`, incident: null };
  }
  if (stale && status.verdict === "operational") {
    // Never shown as healthy: nobody regenerates the document when every node is down.
    return { text: `Taube's status is unknown: last confirmed healthy at ${utcTime(status.generated_ms)} UTC`, incident: null };
  }
  return null;
}

function chatTitle(chat: Chat): string {
  if (chat.conv.startsWith("#")) return chat.name || "Group";
  return chat.conv.slice(1);
}

/** "today", "yesterday", "Monday", "3 March 2026": a day inside a sentence. */
function relDay(ms: number): string {
  const label = dayLabel(ms);
  return label === "Today" || label === "Yesterday" ? label.toLowerCase() : label;
}

function statusIcon(status: Row["status"]): Element | null {
  switch (status) {
    case "pending":
      return h("span", { class: "ticks pending", title: "Waiting to send", "aria-label": "Waiting to send" }, icon(ICONS.clock, "icon tick"));
    case "sent":
      return h("span", { class: "ticks sent", title: "Sent", "aria-label": "Sent" }, icon(ICONS.check, "icon tick"));
    case "delivered":
      return h("span", { class: "ticks delivered", title: "Delivered", "aria-label": "Delivered" }, icon(ICONS.doubleCheck, "icon tick"));
    case "read":
      return h("span", { class: "ticks read", title: "Read", "aria-label": "Read" }, icon(ICONS.doubleCheck, "icon tick"));
    case "failed":
      return h("span", { class: "ticks failed", title: "Not sent", "aria-label": "Not sent" }, "!");
    default:
      return null;
  }
}

export class App {
  private root: HTMLElement;
  private current: string | null = null;
  private rows: Row[] = [];
  private hasMore = false;
  private loadingOlder = false;
  private typing = new Map<string, Map<string, number>>();
  private notifications = new Map<string, Notification>(); // message key -> its notification
  private replyTo: Row | null = null;
  private search = "";
  private blobUrls = new Map<string, string>();
  private lastTypingSent = 0;
  private typingIdle: ReturnType<typeof setTimeout> | null = null;
  private noticesDismissed = new Set<string>();
  private disconnectedSince: number | null = null;
  private composerForm: HTMLFormElement | null = null;
  private blockedNotice = h("div", { class: "blocked-notice", testid: "blocked-notice", role: "status", hidden: true });

  // persistent elements
  private bannerArea = h("div", { class: "banners" });
  private chatList = h("ul", { class: "chat-list", testid: "chat-list", "aria-label": "Chats" });
  private main = h("section", { class: "conversation", "aria-label": "Conversation" });
  private messagesEl = h("div", { class: "messages", role: "log", "aria-live": "polite", "aria-label": "Messages" });
  private typingEl = h("div", { class: "typing-indicator", testid: "typing-indicator", "aria-live": "polite", hidden: true });
  private presenceEl = h("div", { class: "presence", testid: "presence" });
  private composer = h("textarea", {
    class: "composer",
    testid: "composer",
    rows: 1,
    placeholder: "Type a message",
    "aria-label": "Message",
  });
  private replyBar = h("div", { class: "reply-bar", hidden: true });
  private toastEl = h("div", { class: "toasts", role: "status", "aria-live": "polite" });
  private shell = h("div", { class: "app" });

  constructor(
    root: HTMLElement,
    private readonly client: Client,
    private readonly onLogout: () => void,
  ) {
    this.root = root;
    this.build();
    client.on((e) => this.onEvent(e));
    document.addEventListener("visibilitychange", () => this.maybeMarkRead());
    document.addEventListener("click", (ev) => {
      for (const m of document.querySelectorAll(".header-menu.open")) {
        if (!m.parentElement?.contains(ev.target as Node)) this.closeMenu(m as HTMLElement);
      }
    });
    window.addEventListener("focus", () => this.maybeMarkRead());
    setInterval(() => this.tick(), 1000);
    this.renderChats();
    this.watchContacts();
    this.updateTitle();
  }

  // ------------------------------------------------------------------ layout

  private build(): void {
    clear(this.root);
    const me = this.client.handle;
    const header = h(
      "header",
      { class: "side-header" },
      h("div", { class: `avatar ${hueClass(me)}`, "aria-hidden": "true" }, initials(me)),
      h("div", { class: "me" }, h("strong", {}, `@${me}`), h("span", { class: "muted small" }, `device ${this.client.device}`)),
      h(
        "div",
        { class: "side-actions" },
        this.iconButton(ICONS.plus, "New chat", "new-chat", () => this.newChatDialog()),
        this.iconButton(ICONS.group, "New group", "new-group", () => this.newGroupDialog()),
        this.iconButton(ICONS.moon, "Switch light or dark theme", "theme-toggle", () => this.toggleTheme()),
        this.iconButton(ICONS.bell, "Turn on notifications", "notifications-button", () => void this.askNotifications()),
        this.iconButton(ICONS.devices, "Devices", "devices-button", () => void this.devicesDialog()),
        this.iconButton(ICONS.link, "Link a device", "link-device", () => this.approveLinkDialog()),
        this.iconButton(ICONS.logout, "Log out", "logout", () => void this.logout()),
      ),
    );
    const searchInput = h("input", {
      type: "search",
      class: "search",
      placeholder: "Search chats",
      "aria-label": "Search chats",
      testid: "chat-search",
      oninput: (ev: Event) => {
        this.search = (ev.target as HTMLInputElement).value.trim().toLowerCase();
        this.renderChats();
      },
    });
    const sidebar = h(
      "aside",
      { class: "sidebar", "aria-label": "Chat list" },
      header,
      h("div", { class: "search-wrap" }, icon(ICONS.search, "icon search-icon"), searchInput),
      this.chatList,
    );
    this.renderEmptyMain();
    this.shell.append(sidebar, this.main);
    this.root.append(this.bannerArea, this.shell, this.toastEl);
    this.renderBanners();

    this.composer.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        void this.sendComposer();
      } else if (ev.key === "Escape" && this.replyTo) {
        this.setReply(null);
      }
    });
    this.composer.addEventListener("input", () => {
      this.autosize();
      this.onComposing();
    });
    this.messagesEl.addEventListener("scroll", () => {
      if (this.messagesEl.scrollTop < 120) void this.loadOlder();
    });
  }

  private iconButton(paths: string[], label: string, testid: string, onclick: () => void, cls = "icon-button"): HTMLButtonElement {
    return h("button", { type: "button", class: cls, "aria-label": label, title: label, testid, onclick }, icon(paths));
  }

  private renderEmptyMain(): void {
    clear(this.main);
    this.shell.classList.remove("chat-open");
    this.main.append(
      h(
        "div",
        { class: "empty-main" },
        icon(ICONS.lock, "icon big-icon"),
        h("h2", {}, "Taube for the web"),
        h("p", { class: "muted" }, "Pick a chat or start a new one. Your messages are end-to-end encrypted."),
      ),
    );
  }

  // ------------------------------------------------------------------ events

  private onEvent(e: ClientEvent): void {
    switch (e.type) {
      case "connected":
        this.disconnectedSince = null;
        this.renderBanners();
        this.watchContacts();
        this.maybeMarkRead();
        void this.client.refreshGroups().catch(() => undefined);
        break;
      case "disconnected":
        if (this.disconnectedSince === null) this.disconnectedSince = Date.now();
        this.renderBanners();
        break;
      case "rows":
        this.unnotify(e.rows.filter((r) => r.deleted).map((r) => r.k));
        if (e.conv === this.current) {
          this.applyRows(e.rows, e.added);
          // A chat timer set by anyone shows in the header at once.
          if (e.added?.kind === "system" && e.added.sender !== "") this.renderHeader();
        }
        break;
      case "chats":
        this.renderChats();
        this.updateTitle();
        if (!this.client.connected && this.disconnectedSince !== null) this.renderBanners();
        break;
      case "typing": {
        const conv = e.conv;
        const m = this.typing.get(conv) ?? new Map<string, number>();
        if (e.active) m.set(e.user, Date.now() + TYPING_MS);
        else m.delete(e.user);
        this.typing.set(conv, m);
        this.renderTyping();
        this.renderChats();
        break;
      }
      case "presence":
        if (this.current === `@${e.user}`) this.renderPresence();
        break;
      case "notice":
        this.renderBanners();
        break;
      case "security":
        this.toast(`@${e.user}'s security code changed.`);
        break;
      case "sendFailed":
        this.toast(`Could not send: ${e.message}`, true);
        break;
      case "incoming":
        this.typing.get(e.row.c)?.delete(e.row.sender);
        this.renderTyping();
        this.notify(e.row);
        if (e.row.c === this.current) this.maybeMarkRead();
        break;
      case "group":
        if (e.conv === this.current) this.renderHeader();
        void this.client
          .group(e.conv)
          .then(() => {
            if (e.conv === this.current) this.renderHeader();
          })
          .catch(() => undefined);
        break;
      case "blocks":
        if (this.current?.startsWith("@")) {
          this.renderHeader();
          this.renderComposerState();
        }
        break;
      case "expired": {
        this.unnotify(e.rows.map((r) => r.k));
        const gone = new Set(e.rows.filter((r) => r.c === this.current).map((r) => r.k));
        if (gone.size > 0) {
          this.rows = this.rows.filter((r) => !gone.has(r.k));
          for (const k of gone) this.messagesEl.querySelector(`[data-k="${CSS.escape(k)}"]`)?.remove();
        }
        break;
      }
      case "status":
        this.renderBanners();
        break;
      case "fatal":
        this.toast(e.message, true);
        this.onLogout();
        break;
    }
  }

  private tick(): void {
    const now = Date.now();
    let changed = false;
    for (const m of this.typing.values()) {
      for (const [u, until] of m) {
        if (until < now) {
          m.delete(u);
          changed = true;
        }
      }
    }
    if (changed) {
      this.renderTyping();
      this.renderChats();
    }
    if (this.current) {
      const expired = this.rows.filter((r) => r.expiresAt != null && r.expiresAt <= now);
      if (expired.length > 0) {
        void this.client.history.purgeExpired(expired);
        this.unnotify(expired.map((r) => r.k));
        this.rows = this.rows.filter((r) => !expired.includes(r));
        for (const r of expired) this.messagesEl.querySelector(`[data-k="${CSS.escape(r.k)}"]`)?.remove();
      }
    }
  }

  // ------------------------------------------------------------------ banners

  private renderBanners(): void {
    clear(this.bannerArea);
    for (const n of this.client.notices.values()) {
      if (this.noticesDismissed.has(n.id)) continue;
      this.bannerArea.append(this.noticeBanner(n));
    }
    if (!this.client.connected && this.disconnectedSince !== null) {
      const waiting = this.client.pending().length;
      const line = statusLine(this.client.status);
      this.bannerArea.append(
        h(
          "div",
          {
            class: line ? "banner connection known" : "banner connection",
            testid: "connection-banner",
            role: "status",
            "data-incident": line?.incident ?? null,
            "data-verdict": this.client.status?.verdict ?? null,
          },
          h("span", { class: "connection-text" }, line ? `${line.text}. Reconnecting…` : "Can't reach the server. Reconnecting…"),
          waiting > 0 ? h("span", { class: "small" }, ` ${waiting} message${waiting === 1 ? "" : "s"} waiting to be sent.`) : " Messages you write will be sent when it's back.",
        ),
      );
    }
  }

  private noticeBanner(n: Notice): HTMLElement {
    return h(
      "div",
      {
        class: `banner notice level-${n.level}`,
        testid: "banner",
        "data-level": n.level,
        "data-signed": n.signed ? "true" : "false",
        role: n.level === "outage" ? "alert" : "status",
      },
      h("span", { class: "banner-text", title: n.signed ? "Signed by the service's status key" : null }, n.text),
      n.signed
        ? null
        : h(
            "span",
            { class: "notice-unverified small", testid: "notice-unverified", title: "This notice carries no signature of the service's status key" },
            "Unverified",
          ),
      h(
        "button",
        {
          type: "button",
          class: "icon-button small",
          "aria-label": "Dismiss notice",
          testid: "banner-dismiss",
          onclick: () => {
            this.noticesDismissed.add(n.id);
            this.renderBanners();
          },
        },
        icon(ICONS.close),
      ),
    );
  }

  private toast(text: string, alert = false): void {
    const t = h("div", { class: alert ? "toast alert" : "toast", role: alert ? "alert" : "status" }, text);
    this.toastEl.append(t);
    setTimeout(() => t.remove(), 5000);
  }

  // ------------------------------------------------------------------ chat list

  private renderChats(): void {
    const chats = this.client.history.chats().filter((c) => {
      if (!this.search) return true;
      return `${chatTitle(c)} ${c.conv} ${c.lastText}`.toLowerCase().includes(this.search);
    });
    clear(this.chatList);
    if (chats.length === 0) {
      this.chatList.append(h("li", { class: "empty-list muted" }, this.search ? "No chats found." : "No chats yet. Start one with +."));
      return;
    }
    for (const chat of chats) this.chatList.append(this.chatItem(chat));
  }

  private chatItem(chat: Chat): HTMLElement {
    const title = chatTitle(chat);
    const typers = [...(this.typing.get(chat.conv)?.keys() ?? [])];
    let preview: Node;
    if (typers.length > 0) {
      preview = h("span", { class: "typing-text" }, chat.conv.startsWith("#") ? `@${typers[0]} is typing…` : "typing…");
    } else {
      const draft = chat.draft && chat.conv !== this.current ? chat.draft : "";
      preview = draft
        ? h("span", {}, h("span", { class: "draft-mark" }, "Draft: "), draft)
        : h(
            "span",
            {},
            chat.lastMine ? "You: " : chat.conv.startsWith("#") && chat.lastSender ? `@${chat.lastSender}: ` : "",
            chat.lastText,
          );
    }
    const unread = chat.unread > 0 ? h("span", { class: "unread-badge", testid: "unread-badge", "aria-label": `${chat.unread} unread` }, String(chat.unread)) : null;
    const button = h(
      "button",
      {
        type: "button",
        class: chat.conv === this.current ? "chat-item active" : "chat-item",
        testid: "chat-item",
        "data-conversation": chat.conv,
        "aria-current": chat.conv === this.current ? "true" : null,
        "aria-label": `${chat.conv.startsWith("#") ? "Group" : "Chat with"} ${title}${chat.unread ? `, ${chat.unread} unread` : ""}`,
        onclick: () => void this.openChat(chat.conv),
      },
      h("div", { class: `avatar ${hueClass(chat.conv)}`, "aria-hidden": "true" }, chat.conv.startsWith("#") ? icon(ICONS.group) : initials(title)),
      h(
        "div",
        { class: "chat-body" },
        h("div", { class: "chat-top" }, h("span", { class: "chat-name" }, chat.conv.startsWith("#") ? title : `@${title}`), h("span", { class: chat.unread ? "chat-time unread" : "chat-time" }, chat.lastT ? shortTime(chat.lastT) : "")),
        h("div", { class: "chat-bottom" }, h("span", { class: "chat-preview" }, preview), unread),
      ),
    );
    return h("li", {}, button);
  }

  private updateTitle(): void {
    const total = this.client.history.chats().reduce((n, c) => n + c.unread, 0);
    document.title = total > 0 ? `(${total}) Taube` : "Taube";
  }

  private watchContacts(): void {
    const users = this.client.history
      .chats()
      .map((c) => c.conv)
      .filter((c) => c.startsWith("@"))
      .map((c) => c.slice(1));
    if (this.current?.startsWith("@")) users.push(this.current.slice(1));
    this.client.watch(users);
  }

  // ------------------------------------------------------------------ conversation

  async openChat(conv: string): Promise<void> {
    // Everything up to the first await is synchronous, so the composer is never
    // shown with another chat's text.
    if (this.current && this.current !== conv) void this.client.saveDraft(this.current, this.composer.value);
    this.current = conv;
    this.rows = [];
    this.replyTo = null;
    this.shell.classList.add("chat-open");
    const chat = this.client.history.chat(conv);
    clear(this.main);
    const header = h("header", { class: "conv-header" });
    const fileInput = h("input", {
      type: "file",
      multiple: true,
      class: "visually-hidden",
      id: "attach-input",
      testid: "attach-input",
      "aria-label": "Attach files",
      onchange: (ev: Event) => {
        const input = ev.target as HTMLInputElement;
        const files = [...(input.files ?? [])];
        input.value = "";
        void this.sendFiles(files);
      },
    });
    const attachLabel = h("label", { for: "attach-input", class: "icon-button", title: "Attach a file", "aria-label": "Attach a file", tabindex: "0" }, icon(ICONS.attach));
    attachLabel.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        fileInput.click();
      }
    });
    const form = h(
      "form",
      {
        class: "composer-row",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          void this.sendComposer();
        },
      },
      attachLabel,
      fileInput,
      this.iconButton(ICONS.poll, "Create a poll", "poll-button", () => this.pollDialog()),
      this.composer,
      h("button", { type: "submit", class: "send-button", "aria-label": "Send", title: "Send", testid: "send-button" }, icon(ICONS.send)),
    );
    this.composerForm = form;
    this.main.append(header, this.messagesEl, this.typingEl, h("div", { class: "composer-area" }, this.replyBar, form, this.blockedNotice));
    this.composer.value = chat.draft ?? "";
    this.autosize();
    this.setReply(null);
    this.renderHeader();
    this.renderComposerState();
    this.renderTyping();
    clear(this.messagesEl);
    this.renderChats();
    this.watchContacts();
    await this.client.openChat(conv, this.client.groups.get(conv)?.name);
    if (this.current !== conv) return;
    const rows = await this.client.history.page(conv, null, PAGE);
    if (this.current !== conv) return;
    // Rows that arrived while the page loaded are kept.
    const known = new Set(rows.map((r) => r.k));
    this.rows = [...rows, ...this.rows.filter((r) => !known.has(r.k))].sort((a, b) => a.t - b.t || (a.k < b.k ? -1 : 1));
    this.hasMore = rows.length >= PAGE;
    this.renderMessages();
    this.scrollToBottom();
    this.maybeMarkRead();
    if (window.matchMedia("(min-width: 701px)").matches) this.composer.focus();
  }

  private closeChat(): void {
    if (this.current) void this.client.saveDraft(this.current, this.composer.value);
    this.current = null;
    this.renderEmptyMain();
    this.renderChats();
  }

  private renderHeader(): void {
    const conv = this.current;
    if (!conv) return;
    const header = this.main.querySelector(".conv-header");
    if (!header) return;
    clear(header);
    const chat = this.client.history.chat(conv);
    const title = chatTitle(chat);
    const isGroup = conv.startsWith("#");
    const user = isGroup ? null : conv.slice(1);
    const blocked = user !== null && this.client.isBlocked(user);
    const timer = this.client.history.disappearing(conv);
    header.append(
      this.iconButton(ICONS.back, "Back to chats", "back-button", () => this.closeChat(), "icon-button back"),
      h("div", { class: `avatar ${hueClass(conv)}`, "aria-hidden": "true" }, isGroup ? icon(ICONS.group) : initials(title)),
      h(
        "div",
        { class: "conv-title" },
        h(
          "h2",
          {},
          isGroup ? title : `@${title}`,
          timer
            ? h("span", { class: "timer-badge", testid: "disappearing-badge", title: `Disappearing messages: ${formatDuration(timer)}`, "data-seconds": timer }, icon(ICONS.timer, "icon tiny"), ` ${formatDuration(timer)}`)
            : null,
          blocked ? h("span", { class: "badge blocked-badge" }, "blocked") : null,
        ),
        this.presenceEl,
      ),
      h(
        "div",
        { class: "conv-actions" },
        isGroup
          ? this.iconButton(ICONS.info, "Group info", "group-info", () => void this.groupInfoDialog())
          : this.iconButton(ICONS.shield, "Safety number", "safety-button", () => void this.safetyDialog(conv.slice(1))),
        this.headerMenu(conv, user, blocked),
      ),
    );
    this.renderPresence();
  }

  /** The "⋯" menu of a chat's header: disappearing messages, block or unblock. */
  private headerMenu(conv: string, user: string | null, blocked: boolean): HTMLElement {
    const items = h("div", { class: "header-menu", role: "menu", "aria-label": "Chat options", hidden: true });
    const wrap = h("div", { class: "header-menu-wrap" });
    const toggle = h(
      "button",
      {
        type: "button",
        class: "icon-button",
        testid: "chat-menu",
        "aria-label": "Chat options",
        title: "Chat options",
        "aria-haspopup": "menu",
        "aria-expanded": "false",
        onclick: () => {
          if (items.classList.contains("open")) this.closeMenu(items);
          else {
            items.hidden = false;
            items.classList.add("open");
            toggle.setAttribute("aria-expanded", "true");
            (items.querySelector("button") as HTMLButtonElement | null)?.focus();
          }
        },
      },
      icon(ICONS.more),
    );
    const item = (label: string, testid: string, paths: string[], run: () => void, cls = "menu-item"): HTMLButtonElement =>
      h("button", { type: "button", class: cls, role: "menuitem", testid, onclick: () => {
        this.closeMenu(items);
        run();
      } }, icon(paths, "icon tiny"), ` ${label}`);
    const timer = this.client.history.disappearing(conv);
    items.append(
      item(timer ? `Disappearing messages: ${formatDuration(timer)}` : "Disappearing messages", "disappearing-button", ICONS.timer, () => this.disappearingDialog()),
    );
    if (user !== null && user !== this.client.handle) {
      items.append(
        item(blocked ? `Unblock @${user}` : `Block @${user}`, "block-button", ICONS.block, () => void this.toggleBlock(user), blocked ? "menu-item" : "menu-item danger"),
      );
    }
    items.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        this.closeMenu(items);
        toggle.focus();
      }
    });
    wrap.append(toggle, items);
    return wrap;
  }

  private closeMenu(menu: HTMLElement): void {
    menu.classList.remove("open");
    menu.hidden = true;
    menu.parentElement?.querySelector('[aria-expanded="true"]')?.setAttribute("aria-expanded", "false");
  }

  /** A blocked 1:1 chat shows a notice instead of the composer. */
  private renderComposerState(): void {
    const conv = this.current;
    if (!conv || !this.composerForm) return;
    const user = conv.startsWith("@") ? conv.slice(1) : null;
    const blocked = user !== null && this.client.isBlocked(user);
    this.composerForm.hidden = blocked;
    this.blockedNotice.hidden = !blocked;
    clear(this.blockedNotice);
    if (blocked) {
      this.setReply(null);
      this.blockedNotice.append(
        h("span", {}, `You blocked @${user}. Unblock to send.`),
        h("button", { type: "button", class: "small", testid: "unblock-button", onclick: () => void this.toggleBlock(user) }, "Unblock"),
      );
    }
  }

  private async toggleBlock(user: string): Promise<void> {
    const blocked = this.client.isBlocked(user);
    try {
      // The chat shows it (a system line, and the notice instead of the composer).
      if (blocked) await this.client.unblock(user);
      else await this.client.block(user);
    } catch (e) {
      this.toast(`Could not ${blocked ? "unblock" : "block"} @${user}: ${e instanceof Error ? e.message : e}`, true);
    }
  }

  private renderPresence(): void {
    const conv = this.current;
    if (!conv) return;
    clear(this.presenceEl);
    if (conv.startsWith("#")) {
      const g = this.client.groups.get(conv);
      const chat = this.client.history.chat(conv);
      this.presenceEl.textContent = chat.left
        ? "You are no longer a member"
        : g
          ? g.members.map((m) => (m.handle === this.client.handle ? "you" : `@${m.handle}`)).join(", ")
          : "";
      return;
    }
    const p = this.client.presence.get(conv.slice(1));
    if (!p) return;
    if (p.online) this.presenceEl.textContent = "online";
    else if (p.lastSeen) this.presenceEl.textContent = `last seen ${dayLabel(p.lastSeen).toLowerCase()} at ${timeOf(p.lastSeen)}`;
  }

  private renderTyping(): void {
    const conv = this.current;
    const users = conv ? [...(this.typing.get(conv)?.keys() ?? [])] : [];
    if (users.length === 0) {
      this.typingEl.hidden = true;
      this.typingEl.textContent = "";
      return;
    }
    this.typingEl.hidden = false;
    clear(this.typingEl);
    this.typingEl.append(
      h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")),
      conv?.startsWith("#") ? `${users.map((u) => `@${u}`).join(", ")} ${users.length === 1 ? "is" : "are"} typing…` : "typing…",
    );
  }

  private renderMessages(): void {
    clear(this.messagesEl);
    if (this.hasMore) this.messagesEl.append(h("div", { class: "load-more muted small" }, "Scroll up for older messages"));
    else this.messagesEl.append(h("div", { class: "e2ee-note small" }, icon(ICONS.lock, "icon tiny"), " Messages are end-to-end encrypted. No one outside this chat, not even the server, can read them."));
    let lastDay = "";
    for (const row of this.rows) {
      const day = dayLabel(row.t);
      if (day !== lastDay) {
        this.messagesEl.append(h("div", { class: "day-separator", role: "separator" }, h("span", {}, day)));
        lastDay = day;
      }
      this.messagesEl.append(this.messageEl(row));
    }
  }

  private applyRows(rows: Row[], added?: Row): void {
    const nearBottom = this.messagesEl.scrollHeight - this.messagesEl.scrollTop - this.messagesEl.clientHeight < 150;
    for (const row of rows) {
      const i = this.rows.findIndex((r) => r.k === row.k);
      if (i >= 0) this.rows[i] = row;
      else this.rows.push(row);
    }
    this.rows.sort((a, b) => a.t - b.t || (a.k < b.k ? -1 : 1));
    // Small updates replace one bubble; anything else re-renders the list.
    if (!added && rows.length === 1) {
      const old = this.messagesEl.querySelector(`[data-k="${CSS.escape(rows[0]!.k)}"]`);
      if (old) {
        old.replaceWith(this.messageEl(rows[0]!));
        return;
      }
    }
    this.renderMessages();
    if (nearBottom || added?.mine) this.scrollToBottom();
  }

  private async loadOlder(): Promise<void> {
    if (!this.hasMore || this.loadingOlder || !this.current || this.rows.length === 0) return;
    this.loadingOlder = true;
    const conv = this.current;
    try {
      const older = await this.client.history.page(conv, this.rows[0]!, PAGE);
      if (this.current !== conv) return;
      this.hasMore = older.length >= PAGE;
      const before = this.messagesEl.scrollHeight - this.messagesEl.scrollTop;
      const known = new Set(this.rows.map((r) => r.k));
      this.rows = [...older.filter((r) => !known.has(r.k)), ...this.rows];
      this.renderMessages();
      this.messagesEl.scrollTop = this.messagesEl.scrollHeight - before;
    } finally {
      this.loadingOlder = false;
    }
  }

  private scrollToBottom(): void {
    this.messagesEl.scrollTop = this.messagesEl.scrollHeight;
  }

  private messageEl(row: Row): HTMLElement {
    if (row.kind === "system") {
      const isSecurity = row.sender === "" && /security code changed/.test(row.text ?? "");
      return h(
        "div",
        { class: "system-line", testid: "system-line", "data-k": row.k, role: isSecurity ? null : "note" },
        isSecurity
          ? h("button", { type: "button", class: "link-button", onclick: () => void this.safetyDialog(row.c.slice(1)) }, icon(ICONS.shield, "icon tiny"), ` ${rowText(row)}`)
          : h("span", {}, row.sender ? `${row.mine ? "You" : `@${row.sender}`} ${rowText(row)}` : rowText(row)),
      );
    }
    const conv = row.c;
    const isGroup = conv.startsWith("#");
    const content = row.deleted ? null : rowContent(row);
    const bubble = h("div", { class: "bubble" });
    if (isGroup && !row.mine) bubble.append(h("div", { class: `sender ${hueClass(row.sender)}` }, `@${row.sender}`));
    const replyRef = content && (content.type === "text" || content.type === "attachment") ? content.reply_to : null;
    if (replyRef) bubble.append(this.quoteEl(replyRef));
    if (row.deleted) {
      bubble.append(h("div", { class: "deleted-text", testid: "deleted-text" }, "🚫 This message was deleted"));
    } else if (content?.type === "attachment") {
      bubble.append(this.attachmentEl(row, content));
    } else if (content?.type === "poll") {
      bubble.append(this.pollEl(row));
    } else if (content?.type === "unsupported") {
      bubble.append(h("div", { class: "message-text unsupported", testid: "message-text" }, rowText(row)));
    } else {
      bubble.append(h("div", { class: "message-text", testid: "message-text", dir: "auto" }, rowText(row)));
    }
    const meta = h(
      "div",
      { class: "meta" },
      row.expiresAt
        ? h("span", { class: "expiry-mark", testid: "expiry-mark", title: `Disappears ${new Date(row.expiresAt).toLocaleString()}`, "aria-label": "Disappearing message" }, icon(ICONS.timer, "icon tiny"))
        : null,
      row.editedAt ? h("span", { class: "edited-mark", testid: "edited-mark" }, "edited") : null,
      h("time", { datetime: new Date(row.t).toISOString(), title: new Date(row.t).toLocaleString() }, timeOf(row.t)),
      row.mine ? statusIcon(row.status) : null,
    );
    bubble.append(meta);
    const reactions = this.reactionsEl(row);
    const actions = this.actionsEl(row);
    const queued = row.mine && row.status === "pending" ? row.queuedDuring : undefined;
    const wrap = h(
      "div",
      {
        class: `message ${row.mine ? "mine" : "theirs"}`,
        testid: "message",
        "data-k": row.k,
        "data-id": row.id,
        "data-sender": row.sender,
        "data-status": row.mine ? (row.status ?? "sent") : null,
        "data-expires-at": row.expiresAt ?? null,
        "data-queued-during": queued ?? null,
        title: queued ? `queued during incident #${queued}` : null,
      },
      h("div", { class: "bubble-row" }, bubble, actions),
      reactions,
    );
    if (row.status === "failed" && row.error) wrap.append(h("div", { class: "fail-note small" }, `Not sent: ${row.error}`));
    return wrap;
  }

  private quoteEl(ref: MessageRef): HTMLElement {
    const q = h("button", { type: "button", class: "reply-quote", testid: "reply-quote", "aria-label": "Quoted message" }, h("span", { class: "quote-sender" }, ref.sender === this.client.handle ? "You" : `@${ref.sender}`), h("span", { class: "quote-text" }, "…"));
    void this.client.history.get(rowKey(ref.sender, ref.id)).then((target) => {
      const text = q.querySelector(".quote-text");
      if (text) text.textContent = target ? rowText(target).slice(0, 200) : "Message not available";
    });
    q.addEventListener("click", () => {
      const el = this.messagesEl.querySelector(`[data-k="${CSS.escape(rowKey(ref.sender, ref.id))}"]`);
      if (el) {
        el.scrollIntoView({ block: "center", behavior: "smooth" });
        el.classList.add("flash");
        setTimeout(() => el.classList.remove("flash"), 1200);
      }
    });
    return q;
  }

  private reactionsEl(row: Row): HTMLElement | null {
    const by = new Map<string, string[]>();
    for (const [user, r] of Object.entries(row.reactions)) {
      if (!r.emoji) continue;
      by.set(r.emoji, [...(by.get(r.emoji) ?? []), user]);
    }
    if (by.size === 0) return null;
    const el = h("div", { class: "reactions" });
    for (const [emoji, users] of by) {
      const mine = users.includes(this.client.handle);
      el.append(
        h(
          "button",
          {
            type: "button",
            class: mine ? "reaction mine" : "reaction",
            testid: "reaction",
            "data-emoji": emoji,
            title: users.map((u) => `@${u}`).join(", "),
            "aria-label": `${emoji} ${users.length}${mine ? ", including you" : ""}`,
            onclick: () => void this.react(row, mine ? "" : emoji),
          },
          `${emoji} ${users.length}`,
        ),
      );
    }
    return el;
  }

  private actionsEl(row: Row): HTMLElement {
    const canEdit = row.mine && !row.deleted && row.kind === "text" && Date.now() - row.t < EDIT_WINDOW_MS;
    const canDelete = !row.deleted && (row.mine || (row.c.startsWith("#") && this.isAdmin(row.c)));
    const menu = h("div", { class: "actions", role: "toolbar", "aria-label": "Message actions" });
    const picker = h("div", { class: "emoji-picker", hidden: true, role: "group", "aria-label": "Choose a reaction" });
    for (const e of EMOJIS) {
      picker.append(
        h("button", { type: "button", class: "emoji-choice", "data-emoji": e, "aria-label": `React with ${e}`, onclick: () => {
          picker.hidden = true;
          void this.react(row, e);
        } }, e),
      );
    }
    const toggle = h("button", {
      type: "button",
      class: "icon-button small menu-toggle",
      testid: "message-menu",
      "aria-label": "Message options",
      "aria-expanded": "false",
      onclick: () => {
        const open = !menu.classList.contains("open");
        menu.classList.toggle("open", open);
        toggle.setAttribute("aria-expanded", String(open));
      },
    }, icon(ICONS.more));
    const items = h(
      "div",
      { class: "action-items" },
      !row.deleted ? this.iconButton(ICONS.reply, "Reply", "reply-button", () => this.setReply(row), "icon-button small") : null,
      !row.deleted ? this.iconButton(ICONS.smile, "React", "react-button", () => {
        picker.hidden = !picker.hidden;
        (picker.querySelector("button") as HTMLButtonElement | null)?.focus();
      }, "icon-button small") : null,
      canEdit ? this.iconButton(ICONS.edit, "Edit", "edit-button", () => this.editDialog(row), "icon-button small") : null,
      canDelete ? this.iconButton(ICONS.trash, "Delete for everyone", "delete-button", () => void this.deleteRow(row), "icon-button small") : null,
    );
    menu.append(toggle, items, picker);
    menu.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") {
        picker.hidden = true;
        menu.classList.remove("open");
      }
    });
    return menu;
  }

  private isAdmin(conv: string): boolean {
    return this.client.groups.get(conv)?.members.some((m) => m.handle === this.client.handle && m.admin) ?? false;
  }

  private attachmentEl(row: Row, a: Attachment): HTMLElement {
    const box = h("div", { class: "attachment" });
    if (a.mime.startsWith("image/") && a.size <= 20_000_000) {
      const img = h("img", { class: "attachment-image", testid: "attachment-image", alt: a.name || "image", "data-state": "loading" });
      const frame = h("button", { type: "button", class: "image-frame", "aria-label": `Open image ${a.name}`, onclick: () => this.openImage(img) }, img);
      box.append(frame);
      void this.blobUrl(row, a)
        .then((url) => {
          img.src = url;
          img.dataset.state = "ready";
        })
        .catch(() => {
          img.dataset.state = "error";
          img.alt = "Image could not be loaded";
        });
    }
    const link = h(
      "a",
      {
        href: "#",
        class: "attachment-file",
        testid: "attachment-file",
        download: a.name || "file",
        onclick: async (ev: Event) => {
          const el = ev.currentTarget as HTMLAnchorElement;
          if (el.dataset.ready === "1") return;
          ev.preventDefault();
          try {
            el.href = await this.blobUrl(row, a);
            el.dataset.ready = "1";
            el.click();
          } catch (e) {
            this.toast(`Download failed: ${e instanceof Error ? e.message : e}`, true);
          }
        },
      },
      icon(ICONS.file, "icon"),
      h("span", { class: "file-name" }, a.name || "file"),
      h("span", { class: "file-size muted small" }, formatSize(a.size)),
    );
    box.append(link);
    if (a.caption) box.append(h("div", { class: "message-text", testid: "message-text", dir: "auto" }, a.caption));
    return box;
  }

  private async blobUrl(row: Row, a: Attachment): Promise<string> {
    const cached = this.blobUrls.get(row.k);
    if (cached) return cached;
    const data = await this.client.download(a);
    const url = URL.createObjectURL(new Blob([data as BlobPart], { type: a.mime || "application/octet-stream" }));
    this.blobUrls.set(row.k, url);
    return url;
  }

  private openImage(img: HTMLImageElement): void {
    if (!img.src) return;
    const dlg = this.dialog("Image", (d) => [h("img", { src: img.src, alt: img.alt, class: "full-image" }), h("div", { class: "dialog-actions" }, h("button", { type: "button", onclick: () => d.close() }, "Close"))]);
    dlg.classList.add("image-dialog");
  }

  private pollEl(row: Row): HTMLElement {
    const poll = this.client.history.pollOf(row)!;
    const t = tally(row, this.client.handle)!;
    const total = t.voters.reduce((set, vs) => {
      for (const v of vs) set.add(v);
      return set;
    }, new Set<string>()).size;
    const el = h("div", { class: "poll", testid: "poll", role: "group", "aria-label": `Poll: ${poll.question}` }, h("div", { class: "poll-question" }, "📊 ", poll.question), h("div", { class: "muted small" }, poll.multiple ? "Choose one or more" : "Choose one"));
    poll.options.forEach((opt, i) => {
      const count = t.counts[i] ?? 0;
      const chosen = t.mine.includes(i);
      const bar = h("span", { class: "poll-bar" });
      bar.style.width = `${total ? Math.round((count / total) * 100) : 0}%`;
      el.append(
        h(
          "button",
          {
            type: "button",
            class: chosen ? "poll-option chosen" : "poll-option",
            testid: "poll-option",
            "data-index": i,
            "aria-pressed": chosen ? "true" : "false",
            title: t.voters[i]?.map((u) => `@${u}`).join(", ") ?? "",
            onclick: () => {
              let next: number[];
              if (poll.multiple) next = chosen ? t.mine.filter((x) => x !== i) : [...t.mine, i].sort((a, b) => a - b);
              else next = chosen ? [] : [i];
              void this.client.vote(row.c, { sender: row.sender, id: row.id }, next).catch((e: unknown) => this.sendError(e));
            },
          },
          h("span", { class: "poll-check", "aria-hidden": "true" }, chosen ? "✓" : ""),
          h("span", { class: "poll-label" }, opt),
          h("span", { class: "poll-count", testid: "poll-count" }, String(count)),
          bar,
        ),
      );
    });
    return el;
  }

  // ------------------------------------------------------------------ actions

  private setReply(row: Row | null): void {
    this.replyTo = row;
    clear(this.replyBar);
    if (!row) {
      this.replyBar.hidden = true;
      return;
    }
    this.replyBar.hidden = false;
    this.replyBar.append(
      h("div", { class: "reply-preview" }, h("strong", {}, row.mine ? "You" : `@${row.sender}`), h("span", {}, rowText(row).slice(0, 200))),
      this.iconButton(ICONS.close, "Cancel reply", "cancel-reply", () => this.setReply(null), "icon-button small"),
    );
    this.composer.focus();
  }

  private async sendComposer(): Promise<void> {
    const conv = this.current;
    const text = this.composer.value;
    if (!conv || text.trim() === "") return;
    const reply = this.replyTo;
    this.composer.value = "";
    this.autosize();
    this.setReply(null);
    this.stopTyping();
    try {
      if (reply) await this.client.reply(conv, text, { sender: reply.sender, id: reply.id });
      else await this.client.send(conv, text);
      await this.client.saveDraft(conv, "");
    } catch (e) {
      this.composer.value = text;
      this.sendError(e);
    }
  }

  private sendError(e: unknown): void {
    if (e instanceof UntrustedIdentity) {
      this.toast(`${e.message}.`, true);
      void this.safetyDialog(e.user);
    } else {
      this.toast(e instanceof Error ? e.message : String(e), true);
    }
  }

  private async react(row: Row, emoji: string): Promise<void> {
    try {
      await this.client.react(row.c, { sender: row.sender, id: row.id }, emoji);
    } catch (e) {
      this.sendError(e);
    }
  }

  private async deleteRow(row: Row): Promise<void> {
    try {
      await this.client.deleteForEveryone(row.c, { sender: row.sender, id: row.id });
    } catch (e) {
      this.sendError(e);
    }
  }

  private async sendFiles(files: File[]): Promise<void> {
    const conv = this.current;
    if (!conv) return;
    for (const f of files) {
      const note = h("div", { class: "toast", role: "status" }, `Encrypting and uploading ${f.name}…`);
      this.toastEl.append(note);
      try {
        const data = new Uint8Array(await f.arrayBuffer());
        await this.client.sendFile(conv, data, f.name, f.type, {
          replyTo: this.replyTo ? { sender: this.replyTo.sender, id: this.replyTo.id } : null,
          progress: (done, total) => {
            note.textContent = `Uploading ${f.name}: ${Math.round((done / total) * 100)}%`;
          },
        });
        this.setReply(null);
      } catch (e) {
        if (e instanceof ApiError && e.code === "network") this.toast(`The server cannot be reached: ${f.name} was not sent.`, true);
        else this.sendError(e);
      } finally {
        note.remove();
      }
    }
  }

  private onComposing(): void {
    const conv = this.current;
    if (!conv) return;
    const now = Date.now();
    if (this.composer.value.trim() !== "" && now - this.lastTypingSent > 3000) {
      this.client.typing(conv, true);
      this.lastTypingSent = now;
    }
    if (this.typingIdle) clearTimeout(this.typingIdle);
    this.typingIdle = setTimeout(() => this.stopTyping(), 5000);
  }

  private stopTyping(): void {
    if (this.typingIdle) clearTimeout(this.typingIdle);
    this.typingIdle = null;
    if (this.current && this.lastTypingSent) this.client.typing(this.current, false);
    this.lastTypingSent = 0;
  }

  private autosize(): void {
    this.composer.style.height = "auto";
    this.composer.style.height = `${Math.min(this.composer.scrollHeight, 160)}px`;
  }

  private maybeMarkRead(): void {
    if (!this.current || document.visibilityState !== "visible") return;
    const chat = this.client.history.chat(this.current);
    if (chat.unread === 0 && Object.keys(chat.toRead).length === 0) return;
    void this.client.markChatRead(this.current).then(() => this.updateTitle());
  }

  private notify(row: Row): void {
    this.updateTitle();
    if (!document.hidden || typeof Notification === "undefined" || Notification.permission !== "granted") return;
    const chat = this.client.history.chat(row.c);
    const title = row.c.startsWith("#") ? `${chatTitle(chat)}: @${row.sender}` : `@${row.sender}`;
    const n = new Notification(title, { body: rowText(row).slice(0, 200), tag: row.c });
    n.onclick = () => {
      window.focus();
      void this.openChat(row.c);
      n.close();
    };
    // Kept so that it can be taken back: its text must not outlive the message
    // (deleted for everyone, or disappeared), as it would in the system's list.
    this.notifications.set(row.k, n);
    n.onclose = () => {
      if (this.notifications.get(row.k) === n) this.notifications.delete(row.k);
    };
    if (this.notifications.size > MAX_NOTIFICATIONS) {
      const oldest = this.notifications.keys().next().value;
      if (oldest !== undefined) this.notifications.delete(oldest);
    }
  }

  /** Close the notification of each of these messages, if one is showing. */
  private unnotify(keys: Iterable<string>): void {
    for (const k of keys) {
      this.notifications.get(k)?.close();
      this.notifications.delete(k);
    }
  }

  private async askNotifications(): Promise<void> {
    if (typeof Notification === "undefined") {
      this.toast("This browser does not support notifications.");
      return;
    }
    const result = await Notification.requestPermission();
    this.toast(result === "granted" ? "Notifications are on for messages that arrive while Taube is in the background." : "Notifications stay off.");
  }

  private toggleTheme(): void {
    const rootEl = document.documentElement;
    const dark = rootEl.dataset.theme ? rootEl.dataset.theme === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
    const next = dark ? "light" : "dark";
    rootEl.dataset.theme = next;
    localStorage.setItem("taube-theme", next);
  }

  private async logout(): Promise<void> {
    await this.client.logout();
    this.onLogout();
  }

  // ------------------------------------------------------------------ dialogs

  private dialog(title: string, body: (d: HTMLDialogElement) => Node[]): HTMLDialogElement {
    const d = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" });
    d.append(
      h("div", { class: "dialog-head" }, h("h2", { id: "dialog-title" }, title), h("button", { type: "button", class: "icon-button small", "aria-label": "Close", onclick: () => d.close() }, icon(ICONS.close))),
      ...body(d),
    );
    // The composer behind a modal dialog takes no input until it closes.
    this.composer.disabled = true;
    d.addEventListener("close", () => {
      d.remove();
      if (!document.querySelector("dialog[open]")) this.composer.disabled = false;
    });
    document.body.append(d);
    d.showModal();
    (d.querySelector("input, textarea, .dialog-actions button.primary") as HTMLElement | null)?.focus();
    return d;
  }

  private formDialog(
    title: string,
    fields: Node[],
    submitLabel: string,
    submitTestid: string,
    onSubmit: (d: HTMLDialogElement) => Promise<void>,
  ): HTMLDialogElement {
    const error = h("p", { class: "form-error", role: "alert" });
    return this.dialog(title, (d) => {
      const submit = h("button", { type: "submit", class: "primary", testid: submitTestid }, submitLabel);
      const form = h(
        "form",
        {
          class: "stack",
          onsubmit: async (ev: Event) => {
            ev.preventDefault();
            error.textContent = "";
            submit.disabled = true;
            try {
              await onSubmit(d);
              d.close();
            } catch (e) {
              error.textContent = e instanceof Error ? e.message : String(e);
            } finally {
              submit.disabled = false;
            }
          },
        },
        ...fields,
        error,
        h("div", { class: "dialog-actions" }, h("button", { type: "button", onclick: () => d.close() }, "Cancel"), submit),
      );
      return [form];
    });
  }

  private newChatDialog(): void {
    const input = h("input", { id: "new-chat-handle", testid: "new-chat-handle", placeholder: "@handle", autocapitalize: "none", spellcheck: "false", required: true });
    this.formDialog("New chat", [h("label", { for: "new-chat-handle" }, "Who do you want to write to?"), input], "Start chat", "new-chat-submit", async () => {
      const handle = normalizeHandle(input.value);
      if (handle === this.client.handle) {
        await this.openChat(`@${handle}`);
        return;
      }
      try {
        await this.client.api.user(handle);
      } catch (e) {
        if (e instanceof ApiError && e.code === "user.not_found") throw new Error(`No user @${handle}.`);
        throw e;
      }
      await this.openChat(`@${handle}`);
    });
  }

  private newGroupDialog(): void {
    const name = h("input", { id: "new-group-name", testid: "new-group-name", required: true, maxlength: 100 });
    const members = h("input", { id: "new-group-members", testid: "new-group-members", placeholder: "@bob, @carol", autocapitalize: "none", spellcheck: "false" });
    this.formDialog(
      "New group",
      [h("label", { for: "new-group-name" }, "Group name"), name, h("label", { for: "new-group-members" }, "Members (comma-separated handles)"), members],
      "Create group",
      "new-group-submit",
      async () => {
        const handles = members.value.split(/[,\s]+/).map(normalizeHandle).filter(Boolean);
        try {
          const g = await this.client.createGroup(name.value.trim(), handles);
          await this.openChat(g.address);
        } catch (e) {
          if (e instanceof ApiError && e.code === "user.not_found") {
            const missing = (e.details.handles as string[] | undefined)?.map((x) => `@${x}`).join(", ");
            throw new Error(`Unknown: ${missing ?? "a member"}.`);
          }
          throw e;
        }
      },
    );
  }

  private pollDialog(): void {
    const conv = this.current;
    if (!conv) return;
    const question = h("input", { id: "poll-question", testid: "poll-question", required: true, maxlength: 300 });
    const options = h("textarea", { id: "poll-options", testid: "poll-options", rows: 4, required: true, placeholder: "One option per line" });
    const multiple = h("input", { type: "checkbox", id: "poll-multiple", testid: "poll-multiple" });
    this.formDialog(
      "New poll",
      [
        h("label", { for: "poll-question" }, "Question"),
        question,
        h("label", { for: "poll-options" }, "Options (one per line, 2 to 12)"),
        options,
        h("label", { class: "check" }, multiple, " Allow several answers"),
      ],
      "Send poll",
      "poll-submit",
      async () => {
        const opts = options.value.split("\n").map((x) => x.trim()).filter(Boolean);
        if (opts.length < 2 || opts.length > 12) throw new Error("A poll needs 2 to 12 options.");
        await this.client.poll(conv, question.value.trim(), opts, multiple.checked).catch((e: unknown) => {
          if (e instanceof UntrustedIdentity) this.sendError(e);
          throw e;
        });
      },
    );
  }

  private editDialog(row: Row): void {
    const input = h("textarea", { id: "edit-input", testid: "edit-input", rows: 3, required: true });
    input.value = rowText(row);
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        input.form?.requestSubmit();
      }
    });
    this.formDialog("Edit message", [h("label", { for: "edit-input" }, "New text"), input], "Save", "edit-submit", async () => {
      await this.client.edit(row.c, { sender: row.sender, id: row.id }, input.value);
    });
  }

  private disappearingDialog(): void {
    const conv = this.current;
    if (!conv) return;
    const now = this.client.history.disappearing(conv);
    const error = h("p", { class: "form-error", role: "alert" });
    this.dialog("Disappearing messages", (d) => {
      const list = h("div", { class: "timer-options", role: "radiogroup", "aria-label": "Message timer" });
      for (const [label, seconds] of TIMERS) {
        list.append(
          h(
            "button",
            {
              type: "button",
              class: seconds === now ? "timer-option chosen" : "timer-option",
              role: "radio",
              "aria-checked": seconds === now ? "true" : "false",
              testid: "disappearing-option",
              "data-seconds": seconds,
              onclick: async () => {
                if (seconds === now) {
                  d.close();
                  return;
                }
                try {
                  await this.client.setDisappearing(conv, seconds);
                  d.close();
                  this.renderHeader();
                } catch (e) {
                  error.textContent = e instanceof Error ? e.message : String(e);
                }
              },
            },
            h("span", { class: "poll-check", "aria-hidden": "true" }, seconds === now ? "✓" : ""),
            h("span", {}, label),
          ),
        );
      }
      return [
        h("p", { class: "muted" }, "New messages in this chat disappear for everyone after the time you choose. Messages sent before stay."),
        list,
        error,
        h("div", { class: "dialog-actions" }, h("button", { type: "button", onclick: () => d.close() }, "Close")),
      ];
    });
  }

  private async devicesDialog(): Promise<void> {
    const list = h("ul", { class: "members devices", testid: "devices-list", "aria-label": "Devices" });
    const error = h("p", { class: "form-error", role: "alert" });
    const load = async (): Promise<void> => {
      let devices: DeviceInfo[];
      try {
        devices = await this.client.api.devices();
      } catch (e) {
        error.textContent = `Cannot load the devices: ${e instanceof Error ? e.message : e}`;
        return;
      }
      error.textContent = "";
      clear(list);
      for (const dev of devices) list.append(this.deviceItem(dev, load, error));
    };
    this.dialog("Devices", (d) => [
      h("p", { class: "muted" }, `The devices logged in to @${this.client.handle}. Log out any you do not know.`),
      list,
      error,
      h("div", { class: "dialog-actions" }, h("button", { type: "button", onclick: () => d.close() }, "Close")),
    ]);
    await load();
  }

  private deviceItem(dev: DeviceInfo, reload: () => Promise<void>, error: HTMLElement): HTMLElement {
    const current = dev.current || dev.id === this.client.device;
    const name = dev.name || `Device ${dev.id}`;
    const seen = current
      ? "active now"
      : dev.last_active_ms
        ? `last seen ${relDay(dev.last_active_ms)} at ${timeOf(dev.last_active_ms)}`
        : "never used";
    const actions = h("div", { class: "device-actions" });
    const item = h(
      "li",
      { class: current ? "member device current" : "member device", testid: "device-item", "data-device": dev.id, "data-current": current ? "true" : null },
      h("div", { class: `avatar small ${hueClass(`${dev.id}`)}`, "aria-hidden": "true" }, icon(ICONS.devices)),
      h(
        "div",
        { class: "member-name" },
        h("div", {}, h("strong", {}, name), ` · device ${dev.id} `, current ? h("span", { class: "badge", testid: "this-device" }, "this browser") : null),
        h("div", { class: "muted small" }, `added ${relDay(dev.created_ms)} · ${seen}`),
      ),
      actions,
    );
    const plain = (): void => {
      clear(actions);
      actions.append(
        current
          ? h("button", { type: "button", class: "small danger", testid: "device-logout", onclick: () => void this.logout() }, "Log out")
          : h("button", { type: "button", class: "small danger", testid: "revoke-device", "aria-label": `Log out ${name} (device ${dev.id})`, onclick: confirm }, "Log out"),
      );
    };
    const confirm = (): void => {
      clear(actions);
      actions.append(
        h("span", { class: "small" }, "Log it out? "),
        h("button", { type: "button", class: "small", onclick: plain }, "Cancel"),
        h("button", {
          type: "button",
          class: "small danger",
          testid: "confirm-revoke",
          onclick: async () => {
            try {
              await this.client.api.revokeDevice(dev.id);
              this.toast(`${name} (device ${dev.id}) is logged out.`);
              await reload();
            } catch (e) {
              error.textContent = e instanceof Error ? e.message : String(e);
              plain();
            }
          },
        }, "Log out"),
      );
    };
    plain();
    return item;
  }

  private approveLinkDialog(): void {
    const input = h("input", { id: "approve-link-code", testid: "approve-link-code", placeholder: "K7QM-2XPA", autocapitalize: "characters", spellcheck: "false", required: true });
    this.formDialog(
      "Link a device",
      [
        h("p", {}, "On the new device, open Taube and choose “Link device”. Enter the code it shows to log it in to your account."),
        h("label", { for: "approve-link-code" }, "Code"),
        input,
      ],
      "Approve",
      "approve-link-submit",
      async () => {
        try {
          const r = await this.client.api.approveLink(input.value.replace(/^taube-link:/i, ""));
          this.toast(`Linked device ${r.device} to @${r.handle}.`);
        } catch (e) {
          if (e instanceof ApiError && e.status === 404) throw new Error("No such code, or it expired.");
          throw e;
        }
      },
    );
  }

  private async safetyDialog(user: string): Promise<void> {
    let result;
    try {
      result = await this.client.e2ee.safetyNumber(user);
    } catch (e) {
      this.toast(`Cannot load the safety number: ${e instanceof Error ? e.message : e}`, true);
      return;
    }
    const { number, verified } = result;
    const digits = number.digits;
    const groups = digits.match(/.{5}/g) ?? [];
    const status = h("p", { class: verified ? "verified" : "muted", role: "status" }, verified ? "✓ Verified" : "Not verified yet");
    this.dialog(`Safety number with @${user}`, (d) => [
      h("p", { class: "muted" }, `Compare these numbers with @${user} in person or on a call, or scan their code. If they match, your chat is secure.`),
      h("div", { class: "safety-number", testid: "safety-number", "data-digits": digits, "aria-label": `Safety number ${groups.join(" ")}` }, ...groups.map((g) => h("span", {}, g))),
      qrSvg(number.scannable, "Safety number QR code"),
      status,
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", onclick: () => d.close() }, "Close"),
        h("button", {
          type: "button",
          class: "primary",
          testid: "verify-button",
          onclick: async () => {
            await this.client.e2ee.verify(user);
            status.textContent = "✓ Verified";
            status.className = "verified";
            this.toast(`@${user} is verified.`);
          },
        }, verified ? "Verify again" : "Mark as verified"),
      ),
    ]);
  }

  private async groupInfoDialog(): Promise<void> {
    const conv = this.current;
    if (!conv) return;
    let g: GroupInfo;
    try {
      g = await this.client.group(conv);
    } catch (e) {
      this.toast(e instanceof ApiError && e.code === "group.not_member" ? "You are no longer a member of this group." : String(e instanceof Error ? e.message : e), true);
      return;
    }
    const me = this.client.handle;
    const admin = g.members.some((m) => m.handle === me && m.admin);
    const error = h("p", { class: "form-error", role: "alert" });
    const run = async (d: HTMLDialogElement, fn: () => Promise<unknown>) => {
      try {
        await fn();
        d.close();
        await this.client.refreshGroups().catch(() => undefined);
        this.renderHeader();
        void this.groupInfoDialog();
      } catch (e) {
        error.textContent = e instanceof Error ? e.message : String(e);
      }
    };
    this.dialog(g.name, (d) => {
      const list = h("ul", { class: "members", "aria-label": "Members" });
      for (const m of g.members) {
        list.append(
          h(
            "li",
            { class: "member", "data-handle": m.handle },
            h("div", { class: `avatar small ${hueClass(`@${m.handle}`)}`, "aria-hidden": "true" }, initials(m.handle)),
            h("span", { class: "member-name" }, m.handle === me ? "You" : `@${m.handle}`),
            m.admin ? h("span", { class: "badge" }, "admin") : null,
            admin && m.handle !== me && !m.admin
              ? h("button", { type: "button", class: "small", "aria-label": `Make @${m.handle} admin`, onclick: () => void run(d, () => this.client.api.promote(conv, [m.handle])) }, "Make admin")
              : null,
            admin && m.handle !== me
              ? h("button", { type: "button", class: "small danger", "aria-label": `Remove @${m.handle}`, testid: "remove-member", onclick: () => void run(d, () => this.client.api.removeMember(conv, m.handle)) }, "Remove")
              : null,
          ),
        );
      }
      const out: Node[] = [h("h3", {}, `${g.members.length} members`), list];
      if (admin) {
        const add = h("input", { id: "add-members", testid: "add-members", placeholder: "@dave, @erin", autocapitalize: "none" });
        const rename = h("input", { id: "rename-group", testid: "rename-group", maxlength: 100 });
        rename.value = g.name;
        out.push(
          h("form", { class: "inline-form", onsubmit: (ev: Event) => {
            ev.preventDefault();
            const handles = add.value.split(/[,\s]+/).map(normalizeHandle).filter(Boolean);
            if (handles.length) void run(d, () => this.client.api.addMembers(conv, handles));
          } }, h("label", { for: "add-members" }, "Add members"), add, h("button", { type: "submit", testid: "add-members-submit" }, "Add")),
          h("form", { class: "inline-form", onsubmit: (ev: Event) => {
            ev.preventDefault();
            if (rename.value.trim()) void run(d, () => this.client.api.renameGroup(conv, rename.value.trim()));
          } }, h("label", { for: "rename-group" }, "Group name"), rename, h("button", { type: "submit", testid: "rename-submit" }, "Rename")),
        );
      }
      out.push(
        error,
        h("div", { class: "dialog-actions" },
          h("button", { type: "button", class: "danger", testid: "leave-group", onclick: async () => {
            try {
              await this.client.api.removeMember(conv, me);
              d.close();
              this.toast(`You left ${g.name}.`);
            } catch (e) {
              error.textContent = e instanceof Error ? e.message : String(e);
            }
          } }, "Leave group"),
          h("button", { type: "button", onclick: () => d.close() }, "Close"),
        ),
      );
      return out;
    });
  }
}

export function isAddress(text: string): boolean {
  return parseAddress(text) !== null;
}
