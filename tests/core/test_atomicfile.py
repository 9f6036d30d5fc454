from gatemq import atomicfile
from _check import raises


def _primitive(fs, name):
    def call(*args):
        fs.calls.append((name,) + args)
        if name == fs.fail:
            raise OSError(28, "no space left")
        return "F" if name == "create" else None
    return call


class _Fs:
    # Records every primitive the helper calls, in order; fail names one that raises OSError.
    def __init__(self, has_dir_fsync=True, fail=None):
        self.calls = []
        self.fail = fail
        for name in ("create", "write", "fsync", "close", "rename", "remove", "fsync_dir"):
            setattr(self, name, _primitive(self, name))
        if not has_dir_fsync:
            self.fsync_dir = None


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
