# Persistence on CPython: the records of gatemq.persist in SQLite (the standard library's sqlite3,
# WAL mode), one row per record, so operators can inspect and back up the file with sqlite3's own
# tools. The core decides what a change is; this file stores it. Durable (below) is the glue with
# the asyncio server: group commit, the sync modes, the reserve file and start-up.
import errno
import os
import sqlite3
import time

from gatemq import persist as P

DB_NAME = "gatemq.db"
RESERVE_NAME = "reserve.bin"
# Bytes kept in a reserve file: when the disk fills, it is removed, so the round being committed
# (whose acknowledgements are about to go out) still fits; then new QoS 1/2 messages are refused.
RESERVE = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS state (kind TEXT NOT NULL, client TEXT NOT NULL, key NOT NULL, value BLOB,
                                  PRIMARY KEY (kind, client, key)) WITHOUT ROWID;
"""


# a session's end: every record of that client but the kinds no session owns
_DROP = "DELETE FROM state WHERE client = ? AND kind NOT IN (%s)" % ", ".join("'%s'" % k for k in P.UNBOUND)


def _full(e):
    return isinstance(e, sqlite3.OperationalError) and ("full" in str(e) or "disk I/O" in str(e))


class SqliteStore:
    def __init__(self, path, sync, reserve_path=None, reserve_size=RESERVE):
        self.path = path
        self.reserve_path = reserve_path
        self.reserve_size = reserve_size
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            # commit: each transaction on the medium (WAL fsync) before its acks; else NORMAL
            # (the WAL is synced at checkpoints; a crash loses the last transactions, never the file).
            self.db.execute("PRAGMA synchronous=%s" % ("FULL" if sync == "commit" else "NORMAL"))
            ver = self.db.execute("PRAGMA user_version").fetchone()[0]
            if ver > P.VERSION:
                raise P.StoreError("%s was written by a newer gatemq (format version %d; this one reads up "
                                   "to %d)" % (path, ver, P.VERSION), True)
            self.db.executescript(_SCHEMA)
            if ver == 0:
                self.db.execute("PRAGMA user_version=%d" % P.VERSION)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('format_version', ?)", (P.VERSION,))
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise P.StoreError("%s cannot be read: %s" % (path, e))

    def items(self, first):
        # gatemq.persist.Persist.load's order: retained messages and sessions first, then the rest
        q = "SELECT kind, client, key, value FROM state WHERE kind %s ('r', 's')" % ("IN" if first else "NOT IN")
        try:
            for kind, client, key, value in self.db.execute(q):
                yield kind, client, key, None if value is None else P.unpack(value)
        except (sqlite3.DatabaseError, ValueError, IndexError) as e:
            raise P.StoreError("%s cannot be read: %s" % (self.path, e))

    def write(self, ops):
        db = self.db
        try:
            db.execute("BEGIN")
            for op in ops:
                o = op[0]
                if o == P.PUT:
                    db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)",
                               (op[1], op[2], op[3], None if op[4] is None else P.pack(op[4])))
                elif o == P.DEL:
                    db.execute("DELETE FROM state WHERE kind = ? AND client = ? AND key = ?", (op[1], op[2], op[3]))
                else:
                    db.execute(_DROP, (op[1],))
            db.execute("COMMIT")
        except sqlite3.Error as e:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if _full(e):
                raise OSError(errno.ENOSPC, "disk full (%s)" % e)
            raise OSError(errno.EIO, str(e))

    def size(self):
        # Bytes in use: pages holding data, plus the WAL.
        try:
            pc = self.db.execute("PRAGMA page_count").fetchone()[0]
            fl = self.db.execute("PRAGMA freelist_count").fetchone()[0]
            ps = self.db.execute("PRAGMA page_size").fetchone()[0]
        except sqlite3.Error:
            return 0
        try:
            wal = os.path.getsize(self.path + "-wal")
        except OSError:
            wal = 0
        return (pc - fl) * ps + wal

    def reserve(self):
        # -> True when the reserve file is in place (made now if it was missing).
        p = self.reserve_path
        if p is None:
            return True
        try:
            if os.path.getsize(p) >= self.reserve_size:
                return True
        except OSError:
            pass
        try:
            with open(p, "wb") as f:
                f.write(b"\0" * self.reserve_size)
                f.flush()
                os.fsync(f.fileno())
            return True
        except OSError:
            try:
                os.unlink(p)
            except OSError:
                pass
            return False

    def release(self):
        # -> True when a reserve file was removed (room for one more round).
        p = self.reserve_path
        if p is None:
            return False
        try:
            os.unlink(p)
            return True
        except OSError:
            return False

    def compact(self):
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("VACUUM")

    def checkpoint(self):
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass

    def close(self):
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.close()


def set_aside(path, log):
    # A corrupt store (and its WAL) is renamed, never deleted: an operator may want it.
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = "%s.corrupt-%s" % (path, stamp)
    for suffix in ("", "-wal", "-shm"):
        try:
            os.replace(path + suffix, aside + suffix)
        except FileNotFoundError:
            pass
    return aside


class Durable:
    # The server's persistence: opened and loaded before the listeners, committed per round
    # (sync = commit), per sync_interval (interval) or at shutdown (none).
    def __init__(self, broker, cfg, log):
        pc = cfg["persistence"]
        self.log = log
        self.broker = broker
        self.mode = pc["sync"]
        folder = cfg["node"]["data_dir"]
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, DB_NAME)
        self.persist = P.attach(broker, pc)
        t0 = time.monotonic()
        try:
            self.store = self._open(pc)
            counts = self.persist.load(self.store.items)
        except P.StoreError as e:
            P.unreadable(e, broker, pc, log, lambda: set_aside(self.path, log))
            self._reset(broker, pc)
            self.store = self._open(pc)
            counts = self.persist.load(lambda first: ())
        self.store.reserve()
        log("info", "persistence: %s: %d retained message(s), %d session(s), %d queued and %d in-flight "
            "message(s) loaded in %.2fs (sync = %s)" % (self.path, counts["retained"], counts["sessions"],
                                                         counts["queued"], counts["inflight"],
                                                         time.monotonic() - t0, self.mode))
        self.persist.commit(self.store)   # expired and orphaned records removed
        self.persist.store_size = self.store.size
        self.sync = P.Sync(self.persist, self.store, pc["sync_interval"], time.monotonic())

    def _open(self, pc):
        return SqliteStore(self.path, self.mode, os.path.join(os.path.dirname(self.path), RESERVE_NAME))

    def _reset(self, broker, pc):
        # A load that failed half way: the broker starts from nothing.
        from gatemq.retain import RetainStore
        from gatemq.router import Router
        rc = broker.cfg.get("retainer") or {}
        broker.retained = RetainStore(rc.get("max_retained_messages") or None, rc.get("max_payload_size") or None)
        broker.router = Router()
        broker.sessions = {}
        broker.offline = set()
        self.persist = P.attach(broker, pc)

    def defer(self, srv):
        # Server.flush: True while this round's changes wait for the group commit, which runs once
        # the loop has handled every read that is ready (call_soon), then flushes.
        return self.sync.defer(self._schedule, srv)

    def _schedule(self, srv):
        import asyncio
        asyncio.get_running_loop().call_soon(self.sync.group, srv.flush)

    def commit(self, dirty):
        # Before any of the round's output is written. False: output dropped, connections closed.
        return self.sync.commit(dirty, _abort)

    def tick(self):
        if self.sync.due(time.monotonic()):
            if self.mode != "commit":
                self.store.checkpoint()
            self.persist.maintain(self.store)

    def close(self):
        self.sync.close()


def _abort(c):
    h = c.handle
    h.conn = None
    try:
        h.transport.abort()
    except Exception:
        pass
    c.lost()
