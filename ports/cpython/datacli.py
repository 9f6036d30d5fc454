# `gatemq data info|dump|compact PATH`: a persistence store on a computer, the CPython port's
# SQLite file (gatemq.db) or a MicroPython board's log (gatemq.log) copied off it. PATH is the
# file or the data folder.
import base64
import json
import os
import sys

from gatemq import persist as P

USAGE = "usage: gatemq data info|dump|compact PATH   (PATH: gatemq.db, gatemq.log or their folder)"


def _find(path):
    if os.path.isdir(path):
        for name in ("gatemq.db", "gatemq.log"):
            if os.path.exists(os.path.join(path, name)):
                return os.path.join(path, name)
        raise OSError("no gatemq.db or gatemq.log in %s" % path)
    return path


def _is_log(path):
    with open(path, "rb") as f:
        return f.read(len(P.MAGIC)) == P.MAGIC


def _records(path):
    # -> (format, version, [(kind, client, key, value)], note)
    if _is_log(path):
        st = P.State()
        with open(path, "rb") as f:
            version = f.read(len(P.MAGIC) + 1)[-1]
            f.seek(0)
            end, dropped, frames, corrupt = P.read_log(f.read, path, st.apply)
        recs = list(st.items(True)) + list(st.items(False))
        note = None if dropped is None else "dropped %s%s" % (dropped, " (damage in the middle)" if corrupt else "")
        return "log", version, recs, note
    from gatemq.cpython.store import SqliteStore
    s = SqliteStore(path, "none")
    try:
        version = s.db.execute("PRAGMA user_version").fetchone()[0]
        recs = list(s.items(True)) + list(s.items(False))
    finally:
        s.db.close()
    return "sqlite", version, recs, None


def _json(v):
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(v).decode()}
    if isinstance(v, (list, tuple)):
        return [_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    return v


NAMES = {"r": "retained", "s": "session", "u": "subscription", "q": "queued", "i": "inflight", "a": "awaiting_rel", "b": "bridge_queue",
         "d": "bridge_awaiting_rel"}


def main(argv):
    if len(argv) != 2 or argv[0] not in ("info", "dump", "compact"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        path = _find(argv[1])
        fmt, version, recs, note = _records(path)
    except (OSError, P.StoreError) as e:
        print("gatemq data: %s" % e, file=sys.stderr)
        return 1
    if argv[0] == "info":
        counts = {}
        for r in recs:
            counts[NAMES.get(r[0], r[0])] = counts.get(NAMES.get(r[0], r[0]), 0) + 1
        info = {"path": path, "format": fmt, "version": version, "size": os.path.getsize(path),
                "records": len(recs), "counts": counts}
        if note:
            info["note"] = note
        print(json.dumps(info))
    elif argv[0] == "dump":
        for kind, client, key, value in recs:
            print(json.dumps({"kind": NAMES.get(kind, kind), "client": client, "key": _json(key),
                              "value": _json(value)}))
    else:
        before = os.path.getsize(path)
        if fmt == "sqlite":
            from gatemq.cpython.store import SqliteStore
            s = SqliteStore(path, "none")
            s.compact()
            s.db.close()
        else:
            from gatemq.cpython import files
            ops = [[P.PUT, k, c, key, v] for k, c, key, v in recs]
            data = P.header() + b"".join(P.frame(ops[i:i + 32]) for i in range(0, len(ops), 32))
            files.write(path, data)
        print(json.dumps({"path": path, "before": before, "after": os.path.getsize(path)}))
    return 0
