# Replacing a file so that a crash or a power cut leaves the old contents or the new ones, never
# half of either. The order is decided here, once; each port supplies the primitives its platform
# has (ports/cpython/files.py, ports/micropython/files.py):
#     fs.create(tmp) -> f     a new file, truncated, with the mode the port wants for it
#     fs.write(f, data)
#     fs.fsync(f)             data on the medium (flush where there is no fsync)
#     fs.close(f)
#     fs.rename(tmp, path)    replacing path
#     fs.remove(tmp)          to clean up after a failure
#     fs.fsync_dir(folder)    the rename on the medium; None where the platform has no such call
# The steps: temporary file next to the target, write, fsync, close, rename, fsync the folder.


def _cut(path):
    # Index of the last folder separator ("\\" too, for Windows paths), -1 for none.
    return max(path.rfind("/"), path.rfind("\\"))


def temp_path(path, tag=""):
    # ".<name>.tmp<tag>" in the target's folder: a rename never crosses file systems, and the
    # leading dot keeps it out of listings. tag tells concurrent writers apart (a process id).
    i = _cut(path)
    return "%s.%s.tmp%s" % (path[:i + 1], path[i + 1:], tag)


def folder(path):
    i = _cut(path)
    return path[:i] if i > 0 else ("/" if i == 0 else ".")


def write(path, data, fs, tag=""):
    tmp = temp_path(path, tag)
    f = fs.create(tmp)
    try:
        try:
            fs.write(f, data)
            fs.fsync(f)
        finally:
            fs.close(f)
        fs.rename(tmp, path)
    except BaseException:
        try:
            fs.remove(tmp)
        except OSError:
            pass
        raise
    if fs.fsync_dir is not None:
        fs.fsync_dir(folder(path))
    return path
