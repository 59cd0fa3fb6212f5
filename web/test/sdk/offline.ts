// Ad-hoc check (not part of npm test): outbox while the server is down, then in order on reconnect.
import "fake-indexeddb/auto";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Api } from "../../src/sdk/api.js";
import { Client } from "../../src/sdk/client.js";
import { Db } from "../../src/sdk/db.js";

const server = "http://127.0.0.1:8098";
const cli = "/work/main/.venv/bin/python";
const env = { ...process.env, PYTHONPATH: "/tmp/taube-head/src" };
const taube = (profile: string, args: string[], input?: string) =>
  execFileSync(cli, ["-m", "taube.cli.main", "--server", server, "--profile", profile, ...args], { input, encoding: "utf8", env });
const tag = Math.random().toString(36).slice(2, 7);
const alice = mkdtempSync(join(tmpdir(), "alice-"));
taube(alice, ["register", `alice${tag}`, "--password-stdin"], "correct horse battery\n");
const s = await new Api(null, server).register(`bob${tag}`, "correct horse battery", "node");
const db = await Db.open(`off-${tag}`);
db.set("session", s);
await db.commit();
let client = new Client(db, s, server);
client.start();
await new Promise((r) => setTimeout(r, 1500));
await client.send(`@alice${tag}`, "before");
await new Promise((r) => setTimeout(r, 1000));
process.kill(Number(readFileSync("/tmp/webdev2.pid", "utf8")));
await new Promise((r) => setTimeout(r, 1500));
for (const t of ["one", "two", "three"]) await client.send(`@alice${tag}`, t);
console.log("connected:", client.connected, "pending:", client.pending().map((e) => e.id.slice(-4)));
// a "reload": a new client on the same store
client.close();
client = new Client(db, s, server);
console.log("pending after reopen:", client.pending().length);
client.start();
const srv = spawn(cli, ["-m", "taube.cli.main", "serve", "--port", "8098", "--data", "/tmp/webdev2"], { env, cwd: "/tmp/taube-head", detached: true, stdio: "ignore" });
srv.unref();
writeFileSync("/tmp/webdev2.pid", String(srv.pid));
for (let i = 0; i < 100 && client.pending().length > 0; i++) await new Promise((r) => setTimeout(r, 200));
console.log("pending after restart:", client.pending().length);
const out = execFileSync(cli, ["-m", "taube.cli.main", "--server", server, "--profile", alice, "listen", "--json", "--count", "4", "--timeout", "20"], { encoding: "utf8", env });
console.log(out.split("\n").filter(Boolean).map((l) => JSON.parse(l).text));
client.close();
process.exit(0);
