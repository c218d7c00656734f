"""Build civicmote firmware from a MicroPython source tree: `make firmware` runs this.

    .venv/bin/python tools/firmware.py [--src TARBALL|FOLDER] [--out build/firmware] [TARGET ...]

Targets (default: all three, in this order; a failing one does not stop the others):
    unix64   the unix port, agent frozen                 build/firmware/unix64/micropython
    unix32   the same, 32-bit (MICROPY_FORCE_32BIT=1)    build/firmware/unix32/micropython
    (the unix images are virtual boards: they also freeze the emulators, which a Pico W leaves out)
    pico-w   RPI_PICO_W, agent + Pico W boot.py/main.py  build/firmware/pico-w/firmware.uf2 (+ .elf)

Each image gets a catalogue beside it (IMAGE.json: board, civicmote version, MicroPython
version and source hash, size, sha256, frozen agent hash; provisioning/field/firmware_image.py).
The source: --src, else $MICROPYTHON_SRC, else micropython-1.28.0-src.tar.xz in shared/vendor/
beside the checkout (../shared/vendor/, also looked for beside the main worktree). A tarball is
unpacked once under build/firmware/src/. Builds are cached: a target whose inputs (source hash,
agent hash, manifest, boot files, this script) match its catalogue is not rebuilt; otherwise
MicroPython's own make runs, incrementally, in build/firmware/work/. A finished image is also kept
by its build key in $CIVICMOTE_FIRMWARE_CACHE (default ~/.cache/civicmote/firmware; "off" turns
it off), so a fresh checkout of the same code (CI, a second worktree) copies it instead of
building it again. Exit 0 when every target
asked for was built, 1 otherwise (each failure named on one line; its log in work/TARGET.log).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from provisioning.errors import ProvisioningError  # noqa: E402
from provisioning.field import firmware_image  # noqa: E402

TARBALL = "micropython-1.28.0-src.tar.xz"
TARGETS = ("unix64", "unix32", "pico-w")
JOBS = os.environ.get("FIRMWARE_JOBS", "2")  # the machine is shared: never more than 2
UNIX_OFF = ["MICROPY_PY_BTREE=0"]  # lib/berkeley-db-1.xx is not in the vendored tree
IMAGES = {"unix64": "micropython", "unix32": "micropython", "pico-w": "firmware.uf2"}


class BuildFailed(Exception):
    pass


def default_source():
    """The vendored tarball beside this checkout, or beside the main worktree (git's common dir)."""
    places = [ROOT.parent / "shared" / "vendor" / TARBALL]
    try:
        common = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute",
                                 "--git-common-dir"], capture_output=True, text=True, timeout=10).stdout.strip()
        if common:
            places.append(Path(common).parent.parent / "shared" / "vendor" / TARBALL)
    except OSError:
        pass
    for p in places:
        if p.exists():
            return p
    return places[0]


def source_tree(src, out):
    """(tree folder, source hash): a folder as it is, a tarball unpacked once (cached by hash)."""
    src = Path(src)
    if src.is_dir():
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        ident = head.strip() or str(src.resolve())
        return src, hashlib.sha256(("folder:" + ident).encode()).hexdigest()
    if not src.is_file():
        raise BuildFailed("MICROPYTHON_SRC %s: no such tarball or folder (see the README, 'Firmware')" % src)
    digest = firmware_image.sha256_file(src)
    dest = out / "src" / digest[:16]
    stamp = dest / ".unpacked"
    if not stamp.exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        with tarfile.open(src) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="fully_trusted")
            else:
                tar.extractall(dest)
        tops = [p for p in dest.iterdir() if p.is_dir()]
        if len(tops) != 1:
            raise BuildFailed("%s: expected one top folder, found %d" % (src, len(tops)))
        stamp.write_text(tops[0].name)
    return dest / stamp.read_text().strip(), digest


def micropython_version(tree):
    text = (tree / "py" / "mpconfig.h").read_text()
    parts = [re.search(r"#define MICROPY_VERSION_%s \(?(\d+)\)?" % k, text) for k in ("MAJOR", "MINOR", "MICRO")]
    return ".".join(m.group(1) for m in parts) if all(parts) else "unknown"


def write_manifest(gen, target, board, digest=None):
    """A top-level manifest per target: boards/manifest.py with that port's options."""
    gen.mkdir(parents=True, exist_ok=True)
    (gen / (firmware_image.MODULE + ".py")).write_text(
        firmware_image.stamp_source(board, digest, boot_frozen=target == "pico-w"))
    opts = {"stamp_dir": str(gen)}
    if target.startswith("unix"):
        opts["port_manifest"] = "$(PORT_DIR)/variants/manifest.py"
        opts["emulators"] = True  # a virtual board: the tests' emulated chips come frozen too
    else:
        opts["port_manifest"] = "$(BOARD_DIR)/manifest.py"  # the stock Pico W: network, BLE, asyncio
        opts["boot_dir"] = str(ROOT / "boards" / "pico-w")
    args = "".join(", %s=%r" % kv for kv in sorted(opts.items()))
    path = gen / "manifest.py"
    path.write_text("# generated by tools/firmware.py for %s\ninclude(%r%s)\n"
                    % (target, str(ROOT / "boards" / "manifest.py"), args))
    return path


def build_key(target, src_hash, digest):
    h = hashlib.sha256()
    h.update(("%s\0%s\0%s\0" % (target, src_hash, digest)).encode())
    for p in (ROOT / "boards" / "manifest.py", ROOT / "boards" / "pico-w" / "boot.py",
              ROOT / "boards" / "pico-w" / "main.py", Path(__file__), ROOT / "pyproject.toml"):
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_root():
    """Where finished images are kept across checkouts, or None when the cache is off."""
    where = os.environ.get("CIVICMOTE_FIRMWARE_CACHE", "")
    if where.lower() == "off":
        return None
    return Path(where) if where else Path.home() / ".cache" / "civicmote" / "firmware"


def from_cache(key, dest):
    """Copy a cached build (image, ELF, catalogue) into dest; True when there was one."""
    root = cache_root()
    kept = root / key if root else None
    if kept is None or not (kept / "complete").exists():
        return False
    dest.mkdir(parents=True, exist_ok=True)
    for f in kept.iterdir():
        if f.name != "complete":
            shutil.copy2(f, str(dest / f.name) + ".tmp")
            os.replace(str(dest / f.name) + ".tmp", dest / f.name)
    return True


def to_cache(key, files):
    """Keep a finished build by its key: written beside, then renamed in whole."""
    root = cache_root()
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / (key + ".tmp%d" % os.getpid())
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in files:
            shutil.copy2(f, tmp / f.name)
        (tmp / "complete").write_text("")
        shutil.rmtree(root / key, ignore_errors=True)
        os.replace(tmp, root / key)
    except OSError as e:  # a cache that cannot be written costs the next checkout a build, nothing more
        print("civicmote firmware: cache not written (%s)" % e, file=sys.stderr)


def run(cmd, log, env=None, cwd=None):
    with open(log, "a") as f:
        f.write("$ %s\n" % " ".join(str(c) for c in cmd))
        f.flush()
        p = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                           stdin=subprocess.DEVNULL)
    if p.returncode:
        raise BuildFailed("%s failed (exit %d); see %s" % (" ".join(str(c) for c in cmd[:3]), p.returncode, log))


def build_mpy_cross(tree, log):
    """mpy-cross first, on its own: the ports' makefiles would build it with their BUILD folder."""
    if not (tree / "mpy-cross" / "build" / "mpy-cross").exists():
        run(["make", "-C", tree / "mpy-cross", "-j" + JOBS], log)


def build_unix(tree, work, manifest, bits, log):
    build = work / ("unix%d" % bits)
    build_mpy_cross(tree, log)
    cmd = ["make", "-C", tree / "ports" / "unix", "-j" + JOBS, "VARIANT=standard", "BUILD=%s" % build,
           "FROZEN_MANIFEST=%s" % manifest] + UNIX_OFF
    if bits == 32:
        cmd += ["MICROPY_FORCE_32BIT=1", "MICROPY_PY_FFI=0"]  # Debian's libffi-dev is 64-bit only
    run(cmd, log)
    return build / "micropython", None


def build_picotool(tree, work, log):
    """picotool, the host tool pico-sdk runs on the ELF, from the tree (no network to fetch it)."""
    prefix = work / "picotool"
    if (prefix / "picotool" / "picotool").exists():
        return prefix
    bdir = work / "picotool-build"
    run(["cmake", "-S", tree / "lib" / "picotool", "-B", bdir, "-DPICO_SDK_PATH=%s" % (tree / "lib" / "pico-sdk"),
         "-DPICOTOOL_NO_LIBUSB=1", "-DPICOTOOL_FLAT_INSTALL=1", "-DCMAKE_INSTALL_PREFIX=%s" % prefix], log)
    run(["cmake", "--build", bdir, "-j", JOBS], log)
    run(["cmake", "--install", bdir], log)
    return prefix


def build_pico_w(tree, work, manifest, log):
    env = dict(os.environ, PICOTOOL_FETCH_FROM_GIT_PATH=str(build_picotool(tree, work, log)))
    build = work / "pico-w"
    build_mpy_cross(tree, log)
    run(["make", "-C", tree / "ports" / "rp2", "-j" + JOBS, "BOARD=RPI_PICO_W", "BUILD=%s" % build,
         "FROZEN_MANIFEST=%s" % manifest], log, env=env)
    return build / "firmware.uf2", build / "firmware.elf"


def build_target(target, tree, src, src_hash, out, force=False):
    dest = out / target
    image = dest / IMAGES[target]
    digest = firmware_image.agent_hash()  # once: the stamp, the catalogue and the cache key agree
    key = build_key(target, src_hash, digest)
    try:
        old = firmware_image.read_catalogue(image) if image.exists() else None
    except ProvisioningError:  # a damaged catalogue: build again
        old = None
    if old and old.get("build_key") == key and not force:
        return old, True
    if not force and from_cache(key, dest):
        doc = firmware_image.read_catalogue(image)
        if doc and doc.get("build_key") == key:
            return doc, True
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    log = work / (target + ".log")
    log.write_text("")
    manifest = write_manifest(out / "gen" / target, target, target, digest)
    if target == "pico-w":
        built, elf = build_pico_w(tree, work, manifest, log)
    else:
        built, elf = build_unix(tree, work, manifest, 32 if target == "unix32" else 64, log)
    dest.mkdir(parents=True, exist_ok=True)
    for src_path, dst in ((built, image), (elf, dest / elf.name if elf else None)):
        if src_path:  # beside, then renamed in: a running interpreter keeps its old file
            shutil.copy2(src_path, str(dst) + ".tmp")
            os.replace(str(dst) + ".tmp", dst)
    doc = {"board": target, "port": "rp2" if target == "pico-w" else "unix",
           "civicmote_version": firmware_image.civicmote_version(),
           "micropython_version": micropython_version(tree), "micropython_source": str(src),
           "micropython_source_sha256": src_hash, "image": image.name, "size": image.stat().st_size,
           "sha256": firmware_image.sha256_file(image), "agent_sha256": digest,
           "frozen_modules": ["agent/" + f for f in firmware_image.frozen_agent_files(
               emulators=target != "pico-w")]
           + [firmware_image.MODULE + ".py"] + (["boot.py", "main.py"] if target == "pico-w" else []),
           "build_key": key}
    if elf:
        doc["elf"] = elf.name
    Path(str(image) + ".json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    to_cache(key, [image, Path(str(image) + ".json")] + ([dest / elf.name] if elf else []))
    return doc, False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", metavar="TARGET", help="one of %s (default: all)" % ", ".join(TARGETS))
    ap.add_argument("--src", default=os.environ.get("MICROPYTHON_SRC") or None)
    ap.add_argument("--out", default=str(ROOT / "build" / "firmware"))
    ap.add_argument("--force", action="store_true", help="rebuild even when the catalogue matches")
    args = ap.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        print("civicmote firmware: unknown target %s (one of %s)" % (unknown[0], ", ".join(TARGETS)), file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    src = Path(args.src) if args.src else default_source()
    try:
        tree, src_hash = source_tree(src, out)
    except (BuildFailed, OSError, tarfile.TarError) as e:
        print("civicmote firmware: %s" % e, file=sys.stderr)
        return 1
    failed = 0
    for target in args.targets or TARGETS:
        t0 = time.monotonic()
        try:
            doc, cached = build_target(target, tree, src, src_hash, out, args.force)
        except (BuildFailed, OSError) as e:
            failed += 1
            print("civicmote firmware: %s: %s" % (target, e), file=sys.stderr)
            continue
        print("%-7s %s %d bytes sha256 %s... (%s, %.1f s)" % (
            target, out / target / doc["image"], doc["size"], doc["sha256"][:12],
            "cached" if cached else "built", time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
