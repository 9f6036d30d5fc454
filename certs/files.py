# Writing PKI files: every write goes to a fresh temporary file in the target directory, is
# fsynced and renamed into place (gatemq.atomicfile through the CPython port's primitives), so a
# crash never leaves half a key, and a private key is born with mode 0600 (an existing file's
# wider mode is never inherited, as it would be with O_TRUNC).
import os

from gatemq.cpython.files import write as _write

from .errors import CertsError


def write(path, data, private=False, overwrite=True):
    """Write bytes to path atomically; private files are created 0600 (before umask)."""
    if not overwrite and os.path.exists(path):
        raise CertsError("%s already exists; refusing to overwrite it" % path)
    return _write(path, data, private)


def read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CertsError("%s not found: %s" % (what, path))
    except OSError as e:
        raise CertsError("cannot read %s %s: %s" % (what, path, e.strerror))
