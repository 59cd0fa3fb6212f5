// Bundle the web client into src/taube/web/static/ (served by the Python server).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "taube", "web", "static");
mkdirSync(out, { recursive: true });

await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  minify: true,
  keepNames: true,
  sourcemap: true,
  format: "iife",
  target: ["chrome110", "firefox115", "safari16"],
  outfile: join(out, "app.js"),
  logLevel: "warning",
  legalComments: "linked",
});
for (const file of readdirSync(join(here, "public"))) {
  copyFileSync(join(here, "public", file), join(out, file));
}
console.log(`built ${out}`);
