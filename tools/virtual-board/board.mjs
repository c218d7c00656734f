// A virtual MicroPython board: the official WebAssembly port speaking MicroPython's REPL
// protocols on stdin/stdout exactly as a board does on its USB serial port.
//
//   node board.mjs --flash DIR [--capacity BYTES] [--heap BYTES] [--mpy N] [--version X.Y.Z] [--uid HEX]
//
// provisioning/field/virtual_board.py puts this behind a pseudo-terminal, so mpremote, pyserial and
// our deploy code talk to it unchanged. What it does, as a board would:
// - power on: run boot.py, then main.py, then the friendly REPL (the port's own, with its banner);
// - Ctrl-A: raw REPL ("raw REPL; CTRL-B to exit\r\n>"); code, Ctrl-D -> "OK", output, "\x04",
//   error text, "\x04", ">"; Ctrl-B back to the friendly REPL; Ctrl-C clears the line;
// - raw-paste mode: Ctrl-E 'A' Ctrl-A -> "R\x01" + window size (u16 LE), "\x01" after each
//   window consumed, Ctrl-D at the end acknowledged with "\x04";
// - Ctrl-D on an empty line (either REPL): soft reset = a fresh interpreter, files kept,
//   "MPY: soft reboot\r\n", boot.py (and main.py from the friendly REPL);
// - machine.reset(): hard reset (fresh interpreter, back to the friendly REPL);
//   machine.unique_id() is --uid (hex).
// Its flash is the host folder DIR: loaded into the interpreter's filesystem at every
// (re)start and written back after every command, so files survive resets and the host sees
// them. --capacity makes writes beyond it fail with ENOSPC (and os.statvfs agrees).
// --mpy / --version fake an older firmware (sys.implementation._mpy / .version).
// os.urandom comes from the host CSPRNG, as in tools/mpy-node/run.mjs.
// Not like a board: Ctrl-C cannot interrupt code that is running (the port runs synchronously).
import { createRequire } from "node:module";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomFillSync } from "node:crypto";

const require = createRequire(import.meta.url);
const PORT = require.resolve("../mpy-node/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
const { loadMicroPython } = await import(PORT);

const CTRL_A = 1, CTRL_B = 2, CTRL_C = 3, CTRL_D = 4, CTRL_E = 5;
const PASTE_WINDOW = 256; // MICROPY_REPL_STDIN_BUFFER_MAX on real ports
const HIDDEN = new Set(["dev", "proc"]); // Emscripten's own folders: not part of the flash

const opts = { uid: "7662", flash: null, capacity: 2 * 1024 * 1024, heap: 2 * 1024 * 1024, mpy: null, version: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i], v = argv[++i];
  if (a === "--flash") opts.flash = v;
  else if (a === "--capacity") opts.capacity = parseInt(v, 10);
  else if (a === "--heap") opts.heap = parseInt(v, 10);
  else if (a === "--mpy") opts.mpy = parseInt(v, 10);
  else if (a === "--version") opts.version = v;
  else if (a === "--uid") opts.uid = v;
  else { process.stderr.write(`board.mjs: unknown option ${a}\n`); process.exit(2); }
}
if (!opts.flash) { process.stderr.write("board.mjs: --flash DIR is required\n"); process.exit(2); }
mkdirSync(opts.flash, { recursive: true });

// ---- output: cooked like a board's UART (\n -> \r\n), buffered per command ----------------
let outBuf = [];
let lastByte = 0;
function emitByte(b) {
  if (b === 10 && lastByte !== 13) outBuf.push(13);
  outBuf.push(b);
  lastByte = b;
  if (outBuf.length >= 4096) flush();
}
function emit(s) { for (const b of Buffer.from(s, "latin1")) emitByte(b); }
function emitText(s) { for (const b of Buffer.from(s, "utf8")) emitByte(b); }
function flush() {
  if (outBuf.length) { process.stdout.write(Buffer.from(outBuf)); outBuf = []; }
}

// ---- flash: the host folder <-> the interpreter's MEMFS root ------------------------------
let mp = null;
let snapshot = new Map(); // flash path -> Buffer as last written to the host
let hardResetRequested = false;

function walk(dir, files, dirs) {
  for (const name of mp.FS.readdir(dir)) {
    if (name === "." || name === "..") continue;
    if (dir === "/" && HIDDEN.has(name)) continue;
    const p = dir === "/" ? "/" + name : dir + "/" + name;
    if (mp.FS.isDir(mp.FS.stat(p).mode)) { dirs.push(p); walk(p, files, dirs); }
    else files.push(p);
  }
}
function usedBytes() {
  const files = [];
  walk("/", files, []);
  let n = 0;
  for (const p of files) n += mp.FS.stat(p).size;
  return n;
}
function loadFlash() {
  for (const d of ["/tmp", "/home/web_user", "/home"]) { try { mp.FS.rmdir(d); } catch (e) { /* absent */ } }
  snapshot = new Map();
  const copy = (host, target) => {
    for (const name of readdirSync(host)) {
      if (target === "" && HIDDEN.has(name)) continue;
      const h = join(host, name), t = target + "/" + name;
      if (statSync(h).isDirectory()) { mp.FS.mkdir(t); copy(h, t); }
      else { const data = readFileSync(h); mp.FS.writeFile(t, data); snapshot.set(t, data); }
    }
  };
  copy(opts.flash, "");
}
function syncFlash() {
  const files = [], dirs = [];
  walk("/", files, dirs);
  const seen = new Set();
  for (const d of dirs) mkdirSync(join(opts.flash, d), { recursive: true });
  for (const p of files) {
    seen.add(p);
    const data = Buffer.from(mp.FS.readFile(p));
    const old = snapshot.get(p);
    if (!old || !old.equals(data)) { writeFileSync(join(opts.flash, p), data); snapshot.set(p, data); }
  }
  for (const p of [...snapshot.keys()]) {
    if (!seen.has(p)) { rmSync(join(opts.flash, p), { force: true }); snapshot.delete(p); }
  }
  const keep = new Set(dirs);
  const prune = (host, rel) => {
    for (const name of readdirSync(host)) {
      const h = join(host, name), r = rel + "/" + name;
      if (statSync(h).isDirectory()) {
        prune(h, r);
        if (!keep.has(r)) rmSync(h, { recursive: true, force: true });
      }
    }
  };
  prune(opts.flash, "");
}

// ---- the interpreter ----------------------------------------------------------------------
async function boot() {
  mp = await loadMicroPython({
    heapsize: opts.heap,
    linebuffer: false,
    stdout: (b) => { for (const x of b) emitByte(x); },
    stderr: (b) => { for (const x of b) emitByte(x); },
  });
  loadFlash();
  const FS = mp.FS;
  const write = FS.write;
  FS.write = function (stream, buffer, offset, length, position, canOwn) {
    const pos = position === undefined || position === null ? stream.position : position;
    const grow = FS.isFile(stream.node.mode) ? Math.max(0, pos + length - (stream.node.usedBytes || 0)) : 0;
    if (grow > 0 && usedBytes() + grow > opts.capacity) throw new FS.ErrnoError(51 /* ENOSPC in Emscripten */);
    return write.call(FS, stream, buffer, offset, length, position, canOwn);
  };
  mp.registerJsModule("_hostrandom", {
    fill: (n) => { const b = new Uint8Array(n); randomFillSync(b); return b; },
  });
  mp.registerJsModule("_vboard", { used: () => usedBytes(), capacity: () => opts.capacity });
  mp.registerJsModule("machine", {
    reset: () => { hardResetRequested = true; throw new Error("machine.reset()"); },
    soft_reset: () => { softResetRequested = true; throw new Error("machine.soft_reset()"); },
    unique_id: () => new Uint8Array(Buffer.from(opts.uid, "hex")),
  });
  let fake = "";
  if (opts.mpy !== null || opts.version !== null) {
    const ver = opts.version ? "(" + opts.version.split(".").map(Number).join(", ") + ", '')" : "_i.version";
    fake = `
class _Impl:
    pass
_f = _Impl()
_f.name = _i.name
_f.version = ${ver}
_f._mpy = ${opts.mpy !== null ? opts.mpy : "_i._mpy"}
_f._machine = _i._machine
_s = _Impl()
for _k in dir(sys):
    if not _k.startswith("__"):
        setattr(_s, _k, getattr(sys, _k))
_s.implementation = _f
sys.modules["sys"] = _s
del _Impl, _f, _s, _k
`;
  }
  mp.runPython(`
import os, sys, _hostrandom, _vboard
def _urandom(n, _hostrandom=_hostrandom):
    return bytes(_hostrandom.fill(n))
os.urandom = _urandom
_listdir, _ilistdir = os.listdir, os.ilistdir
def _shown(path, name, os=os):
    return not (name in ("dev", "proc") and (path == "/" or (path in ("", ".") and os.getcwd() == "/")))
def _vb_listdir(path="", _listdir=_listdir, _shown=_shown):
    return [n for n in (_listdir(path) if path else _listdir()) if _shown(path, n)]
def _vb_ilistdir(path="", _ilistdir=_ilistdir, _shown=_shown, os=os):
    out = []
    for e in (_ilistdir(path) if path else _ilistdir()):
        if _shown(path, e[0]):
            if e[1] == 0x8000:  # a file: give its size, as a board's littlefs does
                e = (e[0], e[1], 0, os.stat((path.rstrip("/") + "/" if path else "") + e[0])[6])
            out.append(e)
    return iter(out)
def _vb_statvfs(path, _vboard=_vboard):
    cap = _vboard.capacity() // 4096
    free = cap - (_vboard.used() + 4095) // 4096
    return (4096, 4096, cap, max(0, free), max(0, free), 0, 0, 0, 0, 255)
os.listdir, os.ilistdir, os.statvfs = _vb_listdir, _vb_ilistdir, _vb_statvfs
_i = sys.implementation
${fake}
del _urandom, _vb_listdir, _vb_ilistdir, _vb_statvfs, _i, _hostrandom, _vboard, _shown, _listdir, _ilistdir
`);
}

function runFile(name) {
  try { mp.FS.stat("/" + name); } catch (e) { return; }
  execute(new TextDecoder().decode(mp.FS.readFile("/" + name)), false);
}

// Emscripten numbers errors its own way (WASI); a board uses the Linux numbers and names,
// which is what mpremote and our host code read in a traceback.
const ERRNO = { 2: [13, "EACCES"], 8: [9, "EBADF"], 20: [17, "EEXIST"], 28: [22, "EINVAL"], 29: [5, "EIO"],
  31: [21, "EISDIR"], 43: [19, "ENODEV"], 44: [2, "ENOENT"], 51: [28, "ENOSPC"], 54: [20, "ENOTDIR"],
  55: [39, "ENOTEMPTY"], 63: [1, "EPERM"] };
function boardErrno(text) {
  return text.replace(/OSError: (\d+)(\r?\n?)$/, (m, n, nl) => {
    const e = ERRNO[n];
    return e ? `OSError: [Errno ${e[0]}] ${e[1]}${nl}` : m;
  });
}

// Run source in __main__; returns the error text ("" when it ran cleanly).
function execute(src, captureError) {
  let err = "";
  try {
    mp.runPython(src);
  } catch (e) {
    err = boardErrno(e && e.message ? e.message : String(e));
    if (!err.endsWith("\n")) err += "\n";
  }
  if (hardResetRequested || softResetRequested) return "";
  if (err && !captureError) { emitText(err); return ""; }
  return err;
}

// ---- the REPL state machine ---------------------------------------------------------------
let mode = "friendly"; // friendly | raw | paste
let line = [];
let paste = [];
let pasteCount = 0;
let softResetRequested = false;

async function start(soft) {
  if (mp) syncFlash();
  if (soft) emit("MPY: soft reboot\r\n");
  hardResetRequested = softResetRequested = false;
  await boot();
  runFile("boot.py");
  if (mode === "friendly") runFile("main.py");
  if (await resetIfRequested()) return;
  syncFlash();
  if (mode === "friendly") mp.replInit();
  else emit("raw REPL; CTRL-B to exit\r\n>");
  flush();
}

async function resetIfRequested() {
  if (hardResetRequested) { mode = "friendly"; await start(false); return true; }
  if (softResetRequested) { await start(true); return true; }
  return false;
}

async function rawExec(src) {
  const err = execute(src, true);
  if (await resetIfRequested()) return;
  emit("\x04");
  emitText(err);
  emit("\x04>");
  syncFlash();
}

async function onByte(c) {
  if (mode === "friendly") {
    if (c === CTRL_A) {
      mode = "raw";
      line = [];
      emit("\r\nraw REPL; CTRL-B to exit\r\n>");
      return;
    }
    const ret = mp.replProcessChar(c);
    if (ret !== 0 || hardResetRequested || softResetRequested) {
      if (!(await resetIfRequested())) await start(true);
      return;
    }
    if (c === 13) syncFlash();
    return;
  }
  if (mode === "paste") {
    if (c === CTRL_D || c === CTRL_C) {
      emit("\x04"); // acknowledge the end of the data
      mode = "raw";
      const src = Buffer.from(paste).toString("utf8");
      paste = [];
      if (c === CTRL_C) { emit("\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04>"); return; }
      await rawExec(src);
      return;
    }
    paste.push(c);
    if (++pasteCount === PASTE_WINDOW) { pasteCount = 0; emit("\x01"); }
    return;
  }
  // raw REPL
  if (c === CTRL_A) {
    if (line.length === 2 && line[0] === CTRL_E) {
      const supported = line[1] === 0x41; // 'A'
      line = [];
      emit(supported ? "R\x01" : "R\x00");
      if (supported) {
        emit(String.fromCharCode(PASTE_WINDOW & 0xff, PASTE_WINDOW >> 8));
        mode = "paste";
        paste = [];
        pasteCount = 0;
      } else emit(">");
      return;
    }
    line = [];
    emit("raw REPL; CTRL-B to exit\r\n>");
  } else if (c === CTRL_B) {
    line = [];
    mode = "friendly";
    emit("\r\n");
    mp.replInit();
  } else if (c === CTRL_C) {
    line = [];
  } else if (c === CTRL_D) {
    emit("OK");
    if (line.length === 0) {
      emit("\r\n");
      await start(true);
      return;
    }
    const src = Buffer.from(line).toString("utf8");
    line = [];
    await rawExec(src);
  } else {
    line.push(c);
  }
}

const queue = [];
let pumping = false;
async function pump() {
  if (pumping) return;
  pumping = true;
  try {
    while (queue.length) {
      const chunk = queue.shift();
      for (const c of chunk) await onByte(c);
      flush();
    }
  } finally {
    pumping = false;
  }
}

await start(false);
process.stdin.on("data", (chunk) => { queue.push(chunk); pump(); });
process.stdin.on("end", () => { try { syncFlash(); } finally { process.exit(0); } });
