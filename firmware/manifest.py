# Freezes gatemq (the core and the MicroPython port) into an ESP32 or RP2 firmware build, on top
# of the board's own manifest (which brings asyncio and the network stack):
#
#   cd micropython/ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/gatemq/firmware/manifest.py
#
#   cd micropython/ports/rp2
#   make BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/gatemq/firmware/manifest.py
#
# The build runs this file with the current directory set to firmware/. The sources live in
# core/ and ports/micropython/, not in a folder named gatemq/, so they are first staged in the
# device's layout (build/freeze/gatemq/...) and frozen from there: `import gatemq.micropython`
# then resolves to the frozen package and its bytecode stays in flash.
import os
import shutil

_ROOT = os.path.abspath("..")
_STAGE = os.path.join(_ROOT, "build", "freeze")


def _stage():
    pkg = os.path.join(_STAGE, "gatemq")
    if os.path.isdir(pkg):
        shutil.rmtree(pkg)
    for src, dst in (("core", pkg), (os.path.join("ports", "micropython"), os.path.join(pkg, "micropython"))):
        os.makedirs(dst)
        for name in sorted(os.listdir(os.path.join(_ROOT, src))):
            if name.endswith(".py"):
                shutil.copyfile(os.path.join(_ROOT, src, name), os.path.join(dst, name))


_stage()

_board = "$(BOARD_DIR)/manifest.py"
try:
    include(_board)
except Exception:
    include("$(PORT_DIR)/boards/manifest.py")

package("gatemq", base_path=_STAGE)
