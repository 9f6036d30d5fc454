# Files on MicroPython: reading, the folder of a path, and replacing a file atomically through
# gatemq.atomicfile with the primitives a board has (no os.fsync: flush; no folder fsync).
import os
import time

from gatemq import atomicfile

# Some boards count time from 2000: stamps are given in epoch seconds since 1970, as the wall clock.
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


def read_text(path):
    with open(path) as f:
        return f.read()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def dirname(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else ("/" if i == 0 else "")


def stamp(path):
    # -> (mtime in epoch seconds, size), what gatemq.leafpolicy compares; OSError when missing.
    st = os.stat(path)
    return (st[8] + _EPOCH, st[6])


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class _Fs:
    fsync_dir = None

    def create(self, tmp):
        return open(tmp, "wb")

    def write(self, f, data):
        f.write(data)

    def fsync(self, f):
        f.flush()

    def close(self, f):
        f.close()

    def rename(self, tmp, path):
        try:
            os.rename(tmp, path)
        except OSError:
            # Some filesystems refuse to rename over a file.
            os.remove(path)
            os.rename(tmp, path)

    def remove(self, path):
        os.remove(path)


_FS = _Fs()


def write(path, data):
    # data: str or bytes. Creates the file's folder when it is missing.
    d = dirname(path)
    if d and not exists(d):
        os.mkdir(d)
    atomicfile.write(path, data.encode() if type(data) is str else data, _FS)
