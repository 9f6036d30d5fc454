# Replacing a file on CPython: gatemq.atomicfile's order (temporary file, fsync, rename, fsync of
# the folder) with the operating system's calls. The dashboard's overlay and admins.json,
# gatemq-passwd's users file and gatemq-certs' PKI files all go through write().
import os

from gatemq import atomicfile


class _Fs:
    def __init__(self, mode):
        self.mode = mode

    def create(self, tmp):
        # A fresh file, so a private one is born with its mode (a leftover temporary file of a
        # crashed writer with the same name is removed first, not reused with its old mode).
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), self.mode)

    def write(self, fd, data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    fsync = staticmethod(os.fsync)
    close = staticmethod(os.close)
    rename = staticmethod(os.replace)
    remove = staticmethod(os.unlink)

    @staticmethod
    def _fsync_dir(folder):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # Windows cannot open a folder to fsync it.
    fsync_dir = None if os.name == "nt" else _fsync_dir


def write(path, data, private=False):
    """Write bytes (or UTF-8 text) to path atomically; private files are created 0600 (before
    umask), others 0644. Creates the folder when it is missing."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    return atomicfile.write(path, data, _Fs(0o600 if private else 0o644), tag=os.getpid())
