# Writes package.json at the repository root, the file list `mip install github:<owner>/gatemq` reads: every
# module of core/ and ports/micropython/ at its place in the device's /lib (gatemq/...), with
# URLs relative to the repository root, where mip looks for package.json. Run it after adding or removing a module:
#   python firmware/mkpackage.py
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = (("core", "gatemq"), ("ports/micropython", "gatemq/micropython"))


def version():
    # The package's version is the core's __version__, so the two cannot drift apart.
    with open(os.path.join(ROOT, "core", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=", 1)[1].strip().strip("\"'")
    raise SystemExit("core/__init__.py has no __version__")


def package():
    urls = []
    for src, dst in SOURCES:
        for name in sorted(os.listdir(os.path.join(ROOT, src))):
            if name.endswith(".py"):
                urls.append([dst + "/" + name, src + "/" + name])
    return {"urls": urls, "deps": [], "version": version()}


if __name__ == "__main__":
    with open(os.path.join(ROOT, "package.json"), "w") as f:
        f.write(json.dumps(package(), indent=2) + "\n")
