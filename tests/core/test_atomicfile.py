from gatemq import atomicfile
from _check import raises


class _Fs:
    # Records every primitive the helper calls, in order.
    def __init__(self, has_dir_fsync=True, fail=None):
        self.calls = []
        self.fail = fail
        if not has_dir_fsync:
            self.fsync_dir = None

    def _do(self, *call):
        self.calls.append(call)
        if call[0] == self.fail:
            raise OSError(28, "no space left")

    def create(self, tmp):
        self._do("create", tmp)
        return "F"

    def write(self, f, data):
        self._do("write", f, data)

    def fsync(self, f):
        self._do("fsync", f)

    def close(self, f):
        self._do("close", f)

    def rename(self, a, b):
        self._do("rename", a, b)

    def remove(self, p):
        self._do("remove", p)

    def fsync_dir(self, d):
        self._do("fsync_dir", d)


def test_temporary_file_fsync_rename_then_folder_fsync():
    fs = _Fs()
    assert atomicfile.write("data/admins.json", b"x", fs, tag=7) == "data/admins.json"
    assert fs.calls == [("create", "data/.admins.json.tmp7"), ("write", "F", b"x"), ("fsync", "F"),
                        ("close", "F"), ("rename", "data/.admins.json.tmp7", "data/admins.json"),
                        ("fsync_dir", "data")]


def test_no_folder_fsync_where_the_platform_has_none():
    fs = _Fs(has_dir_fsync=False)
    atomicfile.write("/overlay.conf", "t", fs)
    assert fs.calls[-1] == ("rename", "/.overlay.conf.tmp", "/overlay.conf")
    fs = _Fs()
    atomicfile.write("users.json", b"", fs)
    assert fs.calls[0] == ("create", ".users.json.tmp") and fs.calls[-1] == ("fsync_dir", ".")


def test_a_failed_write_removes_the_temporary_file_and_never_renames():
    for step in ("write", "fsync", "rename"):
        fs = _Fs(fail=step)
        raises(OSError, atomicfile.write, "a/b", b"x", fs)
        names = [c[0] for c in fs.calls]
        assert names[-1] == "remove" and ("close" in names), (step, names)
        assert "fsync_dir" not in names
        if step != "rename":
            assert "rename" not in names
