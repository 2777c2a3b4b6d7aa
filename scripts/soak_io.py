"""scripts/soak's verified I/O: an NBD client (fixed newstyle, simple
replies, many requests in flight matched by handle) and the load that checks
every read against the generation each 4 KiB chunk was last written with.
A chunk written with generation g holds (chunk, g, tag) repeated; generation
0 is zeroes. Each worker owns a region and has one op in flight, so what a
read must return is known; after a failed write either content is accepted.
Ops in flight when a fault event is applied or undone are marked with it:
their latencies are the failover stalls."""

import array
import asyncio
import random
import struct
import time

CHUNK = 4096
NBDMAGIC, IHAVEOPT, OPT_REPLY_MAGIC = 0x4E42444D41474943, 0x49484156454F5054, 0x3E889045565A9
REQ_MAGIC, SIMPLE_REPLY_MAGIC = 0x25609513, 0x67446698
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_WRITE_ZEROES = 0, 1, 2, 3, 6
FLAG_FUA, TX_SEND_FUA, TX_SEND_WRITE_ZEROES = 1, 1 << 3, 1 << 6
# Kinds that take a path away (their ops count as failover stalls); delay
# and the optimized/non-optimized flip keep both paths usable.
FAILOVER_KINDS = {"port-down", "black-hole", "ana", "status"}


class SoakError(Exception):
    pass


def ms(ns):
    return ns / 1e6


def now_ns():
    return time.monotonic_ns()


# ---------------------------------------------------------------- NBD client

class Nbd:
    """One NBD connection; many requests in flight, matched by handle."""

    async def open(self, path, name):
        self.r, self.w = await asyncio.open_unix_connection(path, limit=1 << 22)
        magic, opt, hflags = struct.unpack(">QQH", await self.r.readexactly(18))
        if magic != NBDMAGIC or opt != IHAVEOPT or not hflags & 1:
            raise SoakError("NBD: not a fixed-newstyle server")
        self.w.write(struct.pack(">I", 1 | (hflags & 2)))
        data = struct.pack(">I", len(name)) + name.encode() + struct.pack(">H", 0)
        self.w.write(struct.pack(">QII", IHAVEOPT, 7, len(data)) + data)  # NBD_OPT_GO
        self.size = self.flags = None
        while True:
            m, _, typ, ln = struct.unpack(">QIII", await self.r.readexactly(20))
            body = await self.r.readexactly(ln)
            if m != OPT_REPLY_MAGIC or typ & (1 << 31):
                raise SoakError(f"NBD_OPT_GO refused: {typ:#x} {body!r}")
            if typ == 3 and struct.unpack(">H", body[:2])[0] == 0:  # INFO_EXPORT
                self.size, self.flags = struct.unpack(">QH", body[2:12])
            if typ == 1:  # ACK
                break
        self.pending = {}
        self.next_handle = 1
        self.dead = None
        self.reader = asyncio.ensure_future(self._read_loop())
        return self

    async def _read_loop(self):
        try:
            while True:
                m, err, h = struct.unpack(">IIQ", await self.r.readexactly(16))
                if m != SIMPLE_REPLY_MAGIC or h not in self.pending:
                    raise SoakError(f"NBD: bad reply magic {m:#x} or handle {h}")
                fut, rlen = self.pending.pop(h)
                data = await self.r.readexactly(rlen) if (rlen and not err) else b""
                if not fut.done():
                    fut.set_result((err, data, now_ns()))
        except Exception as e:  # noqa: BLE001 - every pending op fails with it
            self.dead = e if isinstance(e, SoakError) else SoakError(f"NBD connection lost: {e!r}")
            for fut, _ in self.pending.values():
                if not fut.done():
                    fut.set_exception(self.dead)
            self.pending.clear()

    async def request(self, typ, offset, length, data=b"", flags=0):
        if self.dead:
            raise self.dead
        h = self.next_handle
        self.next_handle += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[h] = (fut, length if typ == CMD_READ else 0)
        self.w.write(struct.pack(">IHHQQI", REQ_MAGIC, flags, typ, h, offset, length) + data)
        await self.w.drain()
        return await fut

    def close(self):
        self.reader.cancel()
        try:
            self.w.write(struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_DISC, 0, 0, 0))
            self.w.close()
        except Exception:  # noqa: BLE001
            pass


# ---------------------------------------------------------------- verified load

class Op:
    __slots__ = ("kind", "start", "events")

    def __init__(self, kind):
        self.kind, self.start, self.events = kind, now_ns(), None


class Load:
    def __init__(self, a, conns, tag):
        self.a, self.conns, self.tag = a, conns, tag & 0xFFFFFFFF
        n_chunks = conns[0].size // CHUNK
        self.gen = array.array("I", bytes(4 * n_chunks))
        self.alt = {}  # chunk -> the other acceptable generation after a failed write
        self.inflight = set()
        self.lat = {"read": array.array("I"), "write": array.array("I")}
        self.crossed = []  # ops in flight at a fault event: (latency_ns, op kind, event index)
        self.counts = {"read": 0, "write": 0, "write-zeroes": 0, "flush": 0}
        self.ops = self.mismatches = self.errors = 0
        self.mismatch_examples, self.error_examples = [], []
        self.longest = (0, None)  # (ns, description)
        self.longest_gap_ns, self.last_done = 0, now_ns()
        self.stop = False
        self.events = []
        self.regions = [(w * n_chunks // a.qd, (w + 1) * n_chunks // a.qd) for w in range(a.qd)]

    def pattern(self, c, g):
        return bytes(CHUNK) if g == 0 else struct.pack("<QII", c, g, self.tag) * (CHUNK // 16)

    def mark(self, idx):
        for op in self.inflight:
            if op.events is None:
                op.events = [idx]
            elif op.events[-1] != idx:
                op.events.append(idx)

    def done(self, op, t_end):
        lat = t_end - op.start
        self.ops += 1
        if op.kind in self.lat:
            self.lat[op.kind].append(min(lat // 1000, 0xFFFFFFFF))
        gap = t_end - self.last_done
        if gap > self.longest_gap_ns and self.inflight:
            self.longest_gap_ns = gap
        self.last_done = max(self.last_done, t_end)
        at = None
        if op.events:
            # Blame the first fault that takes a path away, else the first event.
            fo = [i for i in op.events if self.events[i]["kind"] in FAILOVER_KINDS]
            at = fo[0] if fo else op.events[0]
            e = self.events[at]
            e["ops_across"] += 1
            e["max_stall_ms"] = max(e["max_stall_ms"], round(ms(lat), 3))
            self.crossed.append((lat, op.kind, at))
        if lat > self.longest[0]:
            ev = f"event {at} ({self.events[at]['what']})" if at is not None else "not in flight at any fault event"
            self.longest = (lat, f"{op.kind}, {ev}" if at is None else f"{op.kind}, in flight across {ev}")

    def check(self, c0, data, where):
        for k in range(len(data) // CHUNK):
            c, got = c0 + k, data[k * CHUNK:(k + 1) * CHUNK]
            if got == self.pattern(c, self.gen[c]):
                self.alt.pop(c, None)
                continue
            if c in self.alt and got == self.pattern(c, self.alt[c]):
                self.gen[c] = self.alt.pop(c)
                continue
            self.mismatches += 1
            if len(self.mismatch_examples) < 10:
                hc, hg, ht = struct.unpack("<QII", got[:16])
                found = ("zeroes" if got == bytes(CHUNK) else f"chunk {hc} gen {hg}"
                         if ht == self.tag and got == self.pattern(hc, hg) else "foreign data")
                self.mismatch_examples.append(
                    f"{where}: chunk {c} expected gen {self.gen[c]}"
                    f"{' or ' + str(self.alt[c]) if c in self.alt else ''}, found "
                    + found)

    async def io(self, conn, typ, c0, n, data=b"", flags=0):
        op = Op({CMD_READ: "read", CMD_WRITE: "write", CMD_FLUSH: "flush",
                 CMD_WRITE_ZEROES: "write-zeroes"}[typ])
        self.inflight.add(op)
        try:
            err, got, t_end = await asyncio.wait_for(
                conn.request(typ, c0 * CHUNK, n * CHUNK, data, flags), self.a.op_timeout)
        except asyncio.TimeoutError:
            raise SoakError(f"{op.kind} of chunks {c0}+{n} not answered in {self.a.op_timeout} s") from None
        finally:
            self.inflight.discard(op)
        self.counts[op.kind] += 1
        self.done(op, t_end)
        if err:
            self.errors += 1
            if len(self.error_examples) < 10:
                self.error_examples.append(f"{op.kind} chunks {c0}+{n}: NBD error {err}")
        return err, got

    async def worker(self, w):
        rng = random.Random(self.a.seed * 1000003 + w)
        conn = self.conns[w % len(self.conns)]
        lo, hi = self.regions[w]
        fua_ok = conn.flags & TX_SEND_FUA
        wz_ok = conn.flags & TX_SEND_WRITE_ZEROES
        g = 0
        while not self.stop:
            n = rng.choice([1, 1, 1, 2, 4, 8, 16])
            c0 = rng.randrange(lo, max(lo + 1, hi - n + 1))
            n = min(n, hi - c0)
            x = rng.random()
            if x < 0.48:
                err, got = await self.io(conn, CMD_READ, c0, n)
                if not err:
                    self.check(c0, got, "read")
            elif x < 0.97 or (x < 0.99 and not wz_ok):
                g += 1
                gen = g * self.a.qd + w + 1  # unique across workers, never 0
                data = b"".join(self.pattern(c, gen) for c in range(c0, c0 + n))
                flags = FLAG_FUA if fua_ok and rng.random() < 0.1 else 0
                err, _ = await self.io(conn, CMD_WRITE, c0, n, data, flags)
                self.settle(c0, n, gen, err)
            elif x < 0.99:
                err, _ = await self.io(conn, CMD_WRITE_ZEROES, c0, n)
                self.settle(c0, n, 0, err)
            else:
                await self.io(conn, CMD_FLUSH, 0, 0)

    def settle(self, c0, n, gen, err):
        for c in range(c0, c0 + n):
            if err:
                self.alt[c] = gen  # old or new content: both acceptable
            else:
                self.gen[c] = gen
                self.alt.pop(c, None)

    async def final_verify(self):
        """Read every chunk back once (64 chunks per read, qd reads at a time)."""
        n_chunks = len(self.gen)
        starts = list(range(0, n_chunks, 64))

        async def one(i):
            for s in starts[i::self.a.qd]:
                n = min(64, n_chunks - s)
                err, got = await self.io(self.conns[i % len(self.conns)], CMD_READ, s, n)
                if not err:
                    self.check(s, got, "final read-back")
        await asyncio.gather(*(one(i) for i in range(self.a.qd)))
        return n_chunks
