// Runs Python on the official MicroPython WebAssembly port under Node.js.
//
//   node run.mjs [--heap BYTES] [--map HOSTDIR=MPDIR]... [--cwd MPDIR] [--] SCRIPT...
//
// Each --map copies a host folder (recursively) into the interpreter's in-memory
// filesystem. Each SCRIPT is a file run by its own runPython() call in one interpreter,
// so a later script sees what an earlier one left (and a gc.collect() there is not
// confused by stale pointers on the stack of the call that did the work).
// os.urandom is supplied from the host's CSPRNG (the port has none).
// Exit status: 0 all scripts ran, 1 a script raised (traceback on stderr), 2 usage.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { randomFillSync } from "node:crypto";

const args = process.argv.slice(2);
let heap = 8 * 1024 * 1024;
const maps = [];
const scripts = [];
let cwd = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--heap") heap = parseInt(args[++i], 10);
  else if (a === "--map") maps.push(args[++i].split("="));
  else if (a === "--cwd") cwd = args[++i];
  else if (a === "--") { scripts.push(...args.slice(i + 1)); break; }
  else if (a.startsWith("--")) { console.error(`run.mjs: unknown option ${a}`); process.exit(2); }
  else scripts.push(a);
}
if (scripts.length === 0) { console.error("run.mjs: no script given"); process.exit(2); }

let out = "";
const mp = await loadMicroPython({
  heapsize: heap,
  linebuffer: false,
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
});

function mkdirs(path) {
  let cur = "";
  for (const part of path.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}
function copyTree(host, target) {
  mkdirs(target);
  for (const name of readdirSync(host)) {
    if (name === "__pycache__" || name.startsWith(".")) continue;
    const h = join(host, name);
    const t = target + "/" + name;
    if (statSync(h).isDirectory()) copyTree(h, t);
    else mp.FS.writeFile(t, readFileSync(h));
  }
}
for (const [host, target] of maps) copyTree(host, target);
if (cwd) mkdirs(cwd);

mp.registerJsModule("_hostrandom", {
  fill: (n) => { const b = new Uint8Array(n); randomFillSync(b); return b; },
});
mp.runPython(`
import os, _hostrandom
def _urandom(n):
    return bytes(_hostrandom.fill(n))
os.urandom = _urandom
del _urandom
` + (cwd ? `os.chdir(${JSON.stringify(cwd)})\n` : ""));

for (const s of scripts) {
  try {
    mp.runPython(readFileSync(s, "utf8"));
  } catch (e) {
    // The Python traceback has already gone to stderr through sys.print_exception.
    process.stderr.write(`\nrun.mjs: ${s} raised: ${e && e.message ? e.message : e}\n`);
    process.exit(1);
  }
}
process.exit(0);
