/**
 * The TypeScript SDK against a real server and the Python CLI (both ways, 1:1 and
 * groups, end to end encrypted). Needs TAUBE_TEST_SERVER (a running server's URL)
 * and TAUBE_CLI (the `taube` executable); skipped otherwise. Run with
 * `npm run test:sdk` (node --experimental-websocket on Node 20).
 */
import "fake-indexeddb/auto";
import { strict as assert } from "node:assert";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Api } from "../../src/sdk/api.js";
import { Client, type ClientEvent } from "../../src/sdk/client.js";
import { Db } from "../../src/sdk/db.js";
import type { Row } from "../../src/sdk/history.js";
import { rowText } from "../../src/sdk/history.js";
import { decodeContent } from "../../src/sdk/content.js";

const server = process.env.TAUBE_TEST_SERVER ?? "";
const cli = process.env.TAUBE_CLI ?? "";
const skip = !server || !cli;

function taube(profile: string, args: string[], input?: string): string {
  return execFileSync(cli, ["--server", server, "--profile", profile, ...args], {
    input,
    encoding: "utf8",
    timeout: 60_000,
  });
}

function listen(profile: string, count: number): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(cli, ["--server", server, "--profile", profile, "listen", "--json", "--count", String(count), "--timeout", "30"]);
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => process.stderr.write(d));
    p.on("exit", (code) => {
      const lines = out.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
      if (code === 0) resolve(lines);
      else reject(new Error(`listen exited ${code}: ${out}`));
    });
  });
}

function waitFor(client: Client, pred: (e: ClientEvent) => boolean, ms = 20_000): Promise<ClientEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error("timed out"));
    }, ms);
    const off = client.on((e) => {
      if (pred(e)) {
        clearTimeout(timer);
        off();
        resolve(e);
      }
    });
  });
}

function incoming(client: Client, text: string): Promise<ClientEvent> {
  return waitFor(client, (e) => e.type === "incoming" && rowText(e.row) === text);
}

/** Fresh accounts: alice on the Python CLI (her profile folder), bob on the browser
 * SDK (its client, started and connected). */
async function aliceOnTheCliBobInTheBrowser(): Promise<{ alice: string; bob: string; aliceProfile: string; client: Client }> {
  const tag = Math.random().toString(36).slice(2, 8);
  const alice = `alice${tag}`;
  const bob = `bob${tag}`;
  const aliceProfile = mkdtempSync(join(tmpdir(), "taube-alice-"));
  taube(aliceProfile, ["register", alice, "--password-stdin"], "correct horse battery\n");
  const session = await new Api(null, server).register(bob, "another long password", "node test");
  const db = await Db.open(`taube-${tag}`);
  db.set("session", session);
  await db.commit();
  const client = new Client(db, session, server);
  const connected = waitFor(client, (e) => e.type === "connected");
  if (process.env.DEBUG_SDK) client.on((e) => console.error("event", JSON.stringify(e).slice(0, 300)));
  client.start();
  await connected;
  return { alice, bob, aliceProfile, client };
}

test("browser SDK and Python CLI chat both ways, 1:1 and in a group", { skip }, async () => {
  const { alice, bob, aliceProfile, client } = await aliceOnTheCliBobInTheBrowser();
  await new Promise((r) => setTimeout(r, 300)); // keys uploaded after ready

  // browser -> CLI
  const listening = listen(aliceProfile, 1);
  await new Promise((r) => setTimeout(r, 1500));
  const id = await client.send(`@${alice}`, "hello from the browser");
  const got = await listening;
  assert.equal(got[0]?.text, "hello from the browser");
  assert.equal(got[0]?.id, id);
  assert.equal(got[0]?.encrypted, true);
  for (let i = 0; i < 100; i++) {
    const row = await client.history.get(`${bob}/${id}`);
    if (row?.status === "delivered" || row?.status === "read") break;
    if (i === 99) assert.fail(`no delivered receipt: ${row?.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  // CLI -> browser
  const inc = incoming(client, "hello from the CLI");
  taube(aliceProfile, ["send", `@${bob}`, "hello from the CLI"]);
  await inc;

  // group created on the CLI; both ways
  const group = taube(aliceProfile, ["group", "create", "Fam", `@${bob}`]).trim();
  const inGroup = incoming(client, "group hello from the CLI");
  taube(aliceProfile, ["send", `#${group}`, "group hello from the CLI"]);
  await inGroup;
  const listening2 = listen(aliceProfile, 1);
  await new Promise((r) => setTimeout(r, 1500));
  await client.send(`#${group}`, "group hello from the browser");
  const got2 = await listening2;
  assert.equal(got2.find((g) => g.type === "message")?.text, "group hello from the browser", JSON.stringify(got2));

  // reply and reaction from the CLI arrive as such
  const react = waitFor(client, (e) => e.type === "rows" && e.rows.some((r: Row) => r.id === id && r.reactions[alice]?.emoji === "👍"));
  taube(aliceProfile, ["react", id, "👍"]);
  await react;
  client.close();
});

/** Poll `check` every 100 ms until it holds (or fail after `ms`). */
async function until(check: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); ) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("the browser SDK keeps what it sent only as long as the others see it", { skip }, async () => {
  const { alice, bob, client } = await aliceOnTheCliBobInTheBrowser();
  // Stored by the server: gone from the outbox (edits and deletes have no row of their own).
  const sent = (id: string) => until(() => !client.pending().some((e) => e.id === id), `${id} sent`);
  const copy = (id: string): string | null => {
    const kept = client.e2ee.sentCopy(id);
    if (kept === null) return null;
    const c = decodeContent(kept);
    return c.type === "text" ? c.text : c.type;
  };
  const to = `@${alice}`;
  try {
    // A message with its own timer, and our edit of it: both copies go when it does.
    const short = await client.send(to, { type: "text", text: "gleich weg", expire_s: 4 });
    const edit = await client.send(to, { type: "edit", target: { sender: bob, id: short }, text: "gleich weg, anders" });
    await sent(short);
    await sent(edit);
    assert.equal(copy(short), "gleich weg, anders");
    await until(() => copy(short) === null && copy(edit) === null, "the disappeared message's copies forgotten", 10_000);

    // Edited and deleted for everyone: a resend would send the edit, or nothing.
    const kept = await client.send(to, "original");
    const gone = await client.send(to, "delete me");
    await sent(kept);
    await sent(gone);
    const change = await client.send(to, { type: "edit", target: { sender: bob, id: kept }, text: "edited" });
    const del = await client.send(to, { type: "delete", target: { sender: bob, id: gone } });
    await sent(change);
    await sent(del);
    assert.equal(copy(kept), "edited");
    assert.equal(copy(gone), null);
    assert.equal(await client.e2ee.resend(gone, alice, 1), null);
  } finally {
    client.close(); // also when an assertion fails: an open client keeps node running
  }
});
