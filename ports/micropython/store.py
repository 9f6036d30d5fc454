# Persistence on MicroPython: gatemq.persist's records in an append-only log, for littlefs on
# flash. Sequential appends of whole frames (one per commit), never a rewrite per message; the log
# is compacted (the live state written to a new file, renamed over the old) at start-up and when
# what was appended since passes the live size. Imported only when persistence.enable is set.
# The same code reads a log copied off a board on a computer (gatemq data).
import os

from gatemq import persist as P

LOG_NAME = "gatemq.log"
RESERVE_NAME = "reserve.bin"
# Compaction when the appended bytes since the last one pass max(COMPACT_MIN, the live size).
COMPACT_MIN = 64 * 1024
CHUNK = 32          # records per frame a compaction writes


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def mkdirs(path):
    # "/data" makes "/data" (not "//data": a board's VFS finds no mount for that)
    cur = "/" if path.startswith("/") else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if cur == "" or cur.endswith("/") else cur + "/" + part
        if _size(cur) < 0:
            try:
                os.mkdir(cur)
            except OSError:
                pass


def set_aside(path, wallclock):
    aside = "%s.corrupt-%d" % (path, int(wallclock()))
    os.rename(path, aside)
    return aside


class LogStore:
    def __init__(self, folder, reserve_size=8192):
        self.folder = folder
        self.path = folder + "/" + LOG_NAME
        self.reserve_path = folder + "/" + RESERVE_NAME
        self.reserve_size = reserve_size
        self.f = None
        self.end = 0            # offset after the last good frame: the next append goes there
        self.base = 0           # size right after the last compaction
        self.written = 0        # bytes appended since start (bench: bytes per message)

    def load(self, apply):
        # -> (dropped, frames): replays the log into apply(ops); StoreError when it is unusable
        # (a bad header, a newer version, damage in the middle).
        try:
            f = open(self.path, "rb")
        except OSError:
            return None, 0
        # Collect as the replay goes: MicroPython's heap does not move objects, and the records
        # kept would otherwise be strewn over the whole heap among the frames read, leaving no
        # block big enough for a long queue's list (6 MB free, none over 4 KB).
        import gc
        got = [0]

        def read(n):
            got[0] += n
            if got[0] > 32768:
                got[0] = 0
                gc.collect()
            return f.read(n)
        try:
            end, dropped, frames, corrupt = P.read_log(read, self.path, apply)
        except P.StoreError:
            raise
        except Exception as e:
            raise P.StoreError("%s cannot be read: %r" % (self.path, e))
        finally:
            f.close()
        if corrupt:
            raise P.StoreError("%s is damaged in the middle: %s" % (self.path, dropped))
        return dropped, frames

    def compact(self, ops_iter):
        # The live state to a new file (header, frames of CHUNK bytes), flushed, renamed over the
        # log; then the log is open for appends again.
        if self.f is not None:
            self.f.close()
            self.f = None
        tmp = self.path + ".tmp"
        f = open(tmp, "wb")
        try:
            f.write(P.header())
            n = len(P.header())
            batch = []
            for op in ops_iter:
                batch.append(op)
                if len(batch) >= CHUNK:
                    fr = P.frame(batch)
                    f.write(fr)
                    n += len(fr)
                    batch = []
            if batch:
                fr = P.frame(batch)
                f.write(fr)
                n += len(fr)
            f.flush()
        finally:
            f.close()
        try:
            os.rename(tmp, self.path)
        except OSError:
            os.remove(self.path)        # some filesystems refuse to rename over a file
            os.rename(tmp, self.path)
        self.base = self.end = n
        self._open()

    def _open(self):
        self.f = open(self.path, "r+b")
        self.f.seek(self.end)

    def write(self, ops):
        # One frame, one flush (littlefs commits the file on flush; the unix port writes through).
        data = P.frame(ops)
        f = self.f
        try:
            f.seek(self.end)
            n = f.write(data)
            f.flush()
        except OSError:
            # a partial frame past self.end is overwritten by the next append
            try:
                f.close()
            except OSError:
                pass
            self._open()
            raise
        if n is not None and n != len(data):
            raise OSError(P.ENOSPC, "short write (%d of %d bytes)" % (n, len(data)))
        self.end += len(data)
        self.written += len(data)

    def size(self):
        return self.end

    def wants_compaction(self):
        grown = self.end - self.base
        return grown > COMPACT_MIN and grown > self.base

    def reserve(self):
        if _size(self.reserve_path) >= self.reserve_size:
            return True
        try:
            with open(self.reserve_path, "wb") as f:
                z = bytes(512)
                for _ in range(self.reserve_size // 512):
                    f.write(z)
            return True
        except OSError:
            try:
                os.remove(self.reserve_path)
            except OSError:
                pass
            return False

    def release(self):
        try:
            os.remove(self.reserve_path)
            return True
        except OSError:
            return False

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


class Durable:
    # The server's persistence (the MicroPython Server calls commit before it writes a round's
    # output, tick from its timer loop, close at shutdown).
    def __init__(self, broker, cfg, log, clock, wallclock):
        pc = cfg["persistence"]
        self.log = log
        self.clock = clock
        self.mode = pc["sync"]
        folder = cfg["node"]["data_dir"]
        mkdirs(folder)
        self.store = LogStore(folder, max(4096, min(65536, pc["max_size"] // 16)))
        self.persist = P.attach(broker, pc)
        t0 = clock()
        st = P.State()
        try:
            dropped, frames = self.store.load(st.apply)
        except P.StoreError as e:
            P.unreadable(e, broker, pc, log, lambda: set_aside(self.store.path, wallclock))
            st = P.State()
            dropped, frames = None, 0
        if dropped:
            log("warning", "persistence: %s: dropped %s at its end, a write cut short (by a crash or a "
                "power cut): changes never acknowledged" % (self.store.path, dropped))
        import gc
        gc.collect()    # the replay's garbage (frames read, ops applied) before the state is built
        self.persist.collect = gc.collect
        counts = self.persist.load(st.items)
        st = None
        self.persist.take()     # the compaction below writes the state as it is now
        self.store.compact(self.persist.snapshot())
        self.store.reserve()
        log("info", "persistence: %s: %d retained message(s), %d session(s), %d queued and %d in-flight "
            "message(s) loaded from %d frame(s) in %.2fs (sync = %s)" % (
                self.store.path, counts["retained"], counts["sessions"], counts["queued"], counts["inflight"],
                frames, clock() - t0, self.mode))
        self.sync = P.Sync(self.persist, self.store, pc["sync_interval"], clock())
        self.persist.store_size = self.store.size

    def defer(self, srv):
        # Server.pump: True while this round's changes wait for the group commit, a task that runs
        # once the reads ready now have been handled (their links' tasks were queued before it),
        # then pumps: one frame and one flush per round, not one per read.
        return not srv.down and self.sync.defer(self._schedule, srv)

    def _schedule(self, srv):
        import asyncio
        asyncio.create_task(self._commit(srv))

    async def _commit(self, srv):
        import asyncio
        await asyncio.sleep_ms(0)   # once more round the loop: reads that became ready meanwhile
        self.sync.group(srv.pump)

    def commit(self, dirty):
        # Before a round's output is written: False, not stored, and those connections aborted.
        return self.sync.commit(dirty, _abort)

    def tick(self):
        if self.sync.due(self.clock()):
            self.maintain()

    def maintain(self):
        p = self.persist
        st = self.store
        if self.mode != "none" and (st.wants_compaction() or (p.max_size and st.size() > p.max_size)):
            if p.commit(st):
                try:
                    st.compact(p.snapshot())
                except OSError as e:
                    self.log("error", "persistence: compaction of %s failed: %s" % (st.path, e))
                    try:
                        os.remove(st.path + ".tmp")
                    except OSError:
                        pass
                    try:
                        st._open()
                    except OSError:
                        pass
        p.maintain(st)

    def close(self):
        self.sync.close()


def _abort(c):
    c.handle.abort()
