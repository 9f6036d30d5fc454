# micropython -m gatemq.micropython --config FILE
import sys

# MICROPYPATH replaces the default search path, dropping the frozen modules (asyncio among them)
# of the unix port: put them back, after the shipped .mpy files.
if ".frozen" not in sys.path:
    sys.path.append(".frozen")

from . import cli  # noqa: E402

sys.exit(cli.main(sys.argv[1:]))
