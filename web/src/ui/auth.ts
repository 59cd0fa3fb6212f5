/** The first screen: create an account, log in, or link this browser as a new device. */

import { Api, ApiError, type DeviceSession } from "../sdk/api.js";
import { deviceName } from "../sdk/client.js";
import { normalizeHandle } from "../sdk/util.js";
import { ICONS, clear, h, icon, qrSvg } from "./dom.js";

type Mode = "register" | "login" | "link";

export function authScreen(root: HTMLElement, onSession: (s: DeviceSession) => Promise<void>, initialError = ""): void {
  const api = new Api();
  let mode: Mode = "register";
  let linkAbort: AbortController | null = null;

  const card = h("main", { class: "auth-card", "aria-labelledby": "auth-title" });
  const wrap = h(
    "div",
    { class: "auth" },
    h("div", { class: "auth-brand" }, icon(ICONS.lock, "icon brand-icon"), h("span", {}, "Taube")),
    card,
    h("p", { class: "auth-foot" }, "Messages are end-to-end encrypted. Keys stay on this device."),
  );
  clear(root);
  root.append(wrap);

  const error = h("p", { class: "form-error", role: "alert" }, initialError);

  function tabs(): HTMLElement {
    const tab = (m: Mode, label: string, testid: string) =>
      h(
        "button",
        {
          type: "button",
          class: m === mode ? "tab active" : "tab",
          "aria-pressed": m === mode ? "true" : "false",
          testid,
          onclick: () => {
            mode = m;
            render();
          },
        },
        label,
      );
    return h(
      "div",
      { class: "tabs", role: "group", "aria-label": "How to sign in" },
      tab("register", "Create account", "show-register"),
      tab("login", "Log in", "show-login"),
      tab("link", "Link device", "show-link"),
    );
  }

  function explain(e: unknown): string {
    if (e instanceof ApiError) {
      switch (e.code) {
        case "account.handle_taken":
          return "That handle is already taken.";
        case "account.invalid_handle":
          return "Handles are 2-32 characters: a-z, 0-9, _ . -";
        case "account.weak_password":
          return "The password needs at least 8 characters.";
        case "auth.bad_credentials":
          return "Wrong handle or password.";
        case "network":
          return "The server cannot be reached. Try again in a moment.";
        default:
          return e.message;
      }
    }
    return e instanceof Error ? e.message : String(e);
  }

  function credentialsForm(kind: "register" | "login"): HTMLElement {
    const handle = h("input", {
      id: `${kind}-handle`,
      testid: `${kind}-handle`,
      autocomplete: "username",
      autocapitalize: "none",
      spellcheck: "false",
      required: true,
      placeholder: "e.g. alice",
    });
    const password = h("input", {
      id: `${kind}-password`,
      testid: `${kind}-password`,
      type: "password",
      autocomplete: kind === "register" ? "new-password" : "current-password",
      required: true,
      minlength: kind === "register" ? 8 : null,
    });
    const submit = h("button", { type: "submit", class: "primary wide", testid: `${kind}-submit` }, kind === "register" ? "Create account" : "Log in");
    const form = h(
      "form",
      {
        class: "stack",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          error.textContent = "";
          submit.disabled = true;
          try {
            const name = normalizeHandle(handle.value);
            const s =
              kind === "register"
                ? await api.register(name, password.value, deviceName())
                : await api.login(name, password.value, deviceName());
            await onSession(s);
          } catch (e) {
            error.textContent = explain(e);
            submit.disabled = false;
          }
        },
      },
      h("label", { for: handle.id }, "Handle"),
      handle,
      h("label", { for: password.id }, "Password"),
      password,
      kind === "register" ? h("p", { class: "hint" }, "At least 8 characters. Your handle is how people find you.") : null,
      error,
      submit,
    );
    queueMicrotask(() => handle.focus());
    return form;
  }

  function linkPanel(): HTMLElement {
    const panel = h("div", { class: "stack link-panel", "aria-live": "polite" }, h("p", {}, "Preparing a link code…"));
    linkAbort?.abort();
    const abort = new AbortController();
    linkAbort = abort;
    void (async () => {
      try {
        const link = await api.startLink(deviceName());
        if (abort.signal.aborted) return;
        clear(panel);
        panel.append(
          h("p", {}, "On a device where you are logged in, approve this browser:"),
          h("ol", { class: "steps" }, h("li", {}, "Taube on the web: menu → Link a device, enter the code"), h("li", {}, "or on the command line: taube link CODE")),
          h("div", { class: "link-code", testid: "link-code", "aria-label": "Link code" }, link.code),
          qrSvg(`taube-link:${link.code}`, `QR code for link code ${link.code}`),
          h("p", { class: "hint" }, "Waiting for approval…"),
        );
        while (!abort.signal.aborted) {
          let state;
          try {
            state = await api.pollLink(link.id, link.secret);
          } catch (e) {
            if (e instanceof ApiError && e.code === "network") {
              await new Promise((r) => setTimeout(r, 2000));
              continue;
            }
            throw e;
          }
          if (abort.signal.aborted) return;
          if (state.status === "approved" && state.token && state.handle && state.device) {
            await onSession({ handle: state.handle, device: state.device, token: state.token });
            return;
          }
          if (state.status === "expired") {
            clear(panel);
            panel.append(
              h("p", {}, "The code expired."),
              h("button", { type: "button", class: "primary", onclick: () => render() }, "Get a new code"),
            );
            return;
          }
        }
      } catch (e) {
        if (abort.signal.aborted) return;
        clear(panel);
        panel.append(h("p", { class: "form-error", role: "alert" }, explain(e)), h("button", { type: "button", onclick: () => render() }, "Try again"));
      }
    })();
    return panel;
  }

  function render(): void {
    if (mode !== "link") linkAbort?.abort();
    clear(card);
    error.textContent = error.textContent && mode !== "link" ? error.textContent : "";
    card.append(
      h("h1", { id: "auth-title" }, mode === "register" ? "Create your account" : mode === "login" ? "Welcome back" : "Link this browser"),
      tabs(),
      mode === "link" ? linkPanel() : credentialsForm(mode),
    );
  }
  render();
}
