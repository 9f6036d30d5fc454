# Writing PKI files: every write goes to a fresh temporary file in the target directory and is
# renamed into place, so a crash never leaves half a key, and a private key is born with mode
# 0600 (an existing file's wider mode is never inherited, as it would be with O_TRUNC).
import os

from .errors import CertsError


def write(path, data, private=False, overwrite=True):
    """Write bytes to path atomically; private files are created 0600 (before umask)."""
    if not overwrite and os.path.exists(path):
        raise CertsError("%s already exists; refusing to overwrite it" % path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, ".%s.tmp%d" % (os.path.basename(path), os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CertsError("%s not found: %s" % (what, path))
    except OSError as e:
        raise CertsError("cannot read %s %s: %s" % (what, path, e.strerror))
