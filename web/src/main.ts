/** Entry point: open this device's encrypted store, then the login screen or the messenger. */

import { type DeviceSession } from "./sdk/api.js";
import { Client } from "./sdk/client.js";
import { Db } from "./sdk/db.js";
import { App } from "./ui/app.js";
import { authScreen } from "./ui/auth.js";
import { h } from "./ui/dom.js";

const theme = localStorage.getItem("taube-theme");
if (theme === "dark" || theme === "light") document.documentElement.dataset.theme = theme;

let db: Db | null = null;
let client: Client | null = null;

async function start(root: HTMLElement, error = ""): Promise<void> {
  db ??= await Db.open();
  const session = db.get<DeviceSession>("session");
  if (!session) {
    authScreen(root, async (s) => {
      // A fresh device: nothing of an earlier account may remain.
      db?.close();
      await Db.wipe();
      db = await Db.open();
      db.set("session", s);
      await db.commit();
      await start(root);
    }, error);
    return;
  }
  client = new Client(db, session);
  root.replaceChildren();
  new App(root, client, () => void logout(root));
  client.start();
}

async function logout(root: HTMLElement): Promise<void> {
  client?.close();
  client = null;
  db?.close();
  db = null;
  await Db.wipe();
  await start(root, "");
}

function blocked(root: HTMLElement, retry: () => void): void {
  root.replaceChildren(
    h(
      "div",
      { class: "auth" },
      h(
        "main",
        { class: "auth-card" },
        h("h1", {}, "Taube is open in another tab"),
        h("p", {}, "This browser is one device; it can be connected from one tab at a time."),
        h("button", { type: "button", class: "primary", onclick: retry }, "Use Taube here"),
      ),
    ),
  );
}

function boot(): void {
  const root = document.getElementById("app")!;
  const run = (): void => {
    void start(root).catch((e: unknown) => {
      console.error(e);
      root.replaceChildren(h("p", { class: "fatal", role: "alert" }, `Taube could not start: ${e instanceof Error ? e.message : e}`));
    });
  };
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (!locks) {
    run();
    return;
  }
  const acquire = (steal: boolean): void => {
    void locks.request("taube-device", steal ? { steal: true } : { ifAvailable: true }, async (lock) => {
      if (lock === null) {
        blocked(root, () => acquire(true));
        return;
      }
      run();
      await new Promise<void>(() => undefined); // hold the lock while the page lives
    }).catch(() => {
      // The lock was stolen by another tab: stop here.
      client?.close();
      blocked(root, () => acquire(true));
    });
  };
  acquire(false);
}

boot();
