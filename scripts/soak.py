#!/usr/bin/env python3
"""Chaos soak for nvmp (issue 10 item 7); run it through scripts/soak.

A 2-port nvmp target (RAM namespace, both ports ANA optimized), `nvmp nbd`
exporting the multipath head on a Unix socket, and verified I/O through an
NBD client of our own (fixed newstyle, simple replies), while a seeded fault
schedule hits one path at a time: port down/up, ANA flips, black holes,
response delays, injected path statuses. Before each fault both paths must
be usable and every fault is undone before the next, so one path is always
up: any error returned to the client is a real failure.

Every read is checked chunk by chunk (scripts/soak_io.py); at the end every
chunk is read back once more.

Figures: ops, mismatches, errors, the longest op ("longest stall"), the
longest time with no completion, and the failover stall: the latency of the
ops that were in flight at a fault's injection or undo (p99 over the run, by
fault kind). The fault schedule is a function of --seed alone (--schedule N
prints it); the interleaving of I/O with faults is not replayable exactly.
"""

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

from soak_io import FAILOVER_KINDS, Load, Nbd, SoakError, ms

NQN = "nqn.2024-01.io.nvmp:soak"
# Path-related statuses (SCT 3) the host must fail over, and a retryable
# generic one (Internal Error, no DNR) injected fewer times than its 5 retries.
PATH_STATUSES = [0x300, 0x301, 0x302, 0x303, 0x360, 0x370]
ANA_BAD = ["inaccessible", "change", "persistent-loss"]


# ---------------------------------------------------------------- schedule

def schedule(seed):
    """The fault schedule: an endless, deterministic sequence of events."""
    rng = random.Random(seed)
    while True:
        path = rng.randrange(2)
        kind = rng.choices(
            ["port-down", "black-hole", "delay", "ana", "ana-nonopt", "status", "generic"],
            weights=[3, 2, 2, 3, 1, 3, 1])[0]
        ev = {"path": path, "kind": kind, "hold_ms": rng.randint(200, 3000),
              "gap_ms": rng.randint(200, 2000)}
        if kind == "black-hole":
            ev["hold_ms"] = rng.randint(500, 4000)
        elif kind == "delay":
            ev["delay_ms"] = rng.choice([2, 10, 50, 200])
        elif kind == "ana":
            ev["state"] = rng.choice(ANA_BAD)
        elif kind == "status":
            ev["status"] = rng.choice(PATH_STATUSES)
            ev["count"] = rng.randint(1, 20)
        elif kind == "generic":
            ev["status"] = 0x6
            ev["count"] = rng.randint(1, 4)
        yield ev


def describe(ev):
    p, k = ev["path"], ev["kind"]
    what = {"port-down": "port down", "black-hole": "black hole",
            "delay": f"delay {ev.get('delay_ms')} ms",
            "ana": f"ANA {ev.get('state')}", "ana-nonopt": "ANA non-optimized",
            "status": f"{ev.get('count')} x status {ev.get('status', 0):#x}",
            "generic": f"{ev.get('count')} x status {ev.get('status', 0):#x}"}[k]
    return f"{what} on path {p} for {ev['hold_ms']} ms"


# ---------------------------------------------------------------- control sockets

async def control(path, req, timeout=10.0):
    async def go():
        r, w = await asyncio.open_unix_connection(path)
        try:
            w.write(json.dumps(req).encode() + b"\n")
            await w.drain()
            line = await r.readline()
        finally:
            w.close()
        if not line:
            raise SoakError(f"control socket {path}: closed without an answer")
        resp = json.loads(line)
        if not resp.get("ok"):
            raise SoakError(f"control {req}: {resp.get('error')}")
        return resp
    try:
        return await asyncio.wait_for(go(), timeout)
    except asyncio.TimeoutError:
        raise SoakError(f"control socket {path}: no answer in {timeout} s") from None


def head_of(status):
    return status["subsystems"][0]["heads"][0]


def path_state(status, svc):
    """(usable, description) of the head's path through TCP port svc."""
    for p in head_of(status)["paths"]:
        if p["address"].rsplit(":", 1)[-1] == str(svc) or p["address"].endswith(f"trsvcid={svc}"):
            ok = (p["ctrl_state"] == "live" and not p["ana_pending"] and not p.get("stalled")
                  and p["ana_state"] in ("optimized", "non-optimized"))
            return ok, (f"{p['ctrl_state']}/{p['ana_state']}{' (ANA pending)' if p['ana_pending'] else ''}"
                        f"{' (stalled)' if p.get('stalled') else ''}")
    return False, "absent"


# ---------------------------------------------------------------- processes

class Procs:
    def __init__(self, work):
        self.work, self.procs = work, []

    def start(self, name, argv):
        log = open(os.path.join(self.work, f"{name}.log"), "wb")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append((name, p))
        with open(os.path.join(self.work, "pids"), "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def check(self):
        for name, p in self.procs:
            if p.poll() is not None:
                raise SoakError(f"{name} exited with {p.returncode} (log: {self.work}/{name}.log)")

    def log_lines(self):
        """Per process: (lines with WARN or ERROR, panic lines) in its log so far."""
        out = {}
        for name, _ in self.procs:
            with open(os.path.join(self.work, f"{name}.log"), errors="replace") as f:
                lines = f.readlines()
            out[name] = (sum(1 for x in lines if re.search(r"\b(WARN|ERROR)\b", x)),
                         [x.strip() for x in lines if "panicked" in x])
        return out

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def target_config(ports, ns_size):
    def port(i, svc):
        return {"portid": i, "referrals": [], "subsystems": [NQN],
                "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1",
                         "trsvcid": str(svc), "treq": "not specified"},
                "param": {"inline_data_size": "16384"},
                "ana_groups": [{"grpid": 1, "ana": {"state": "optimized"}}]}
    return {"hosts": [], "ports": [port(1, ports[0]), port(2, ports[1])],
            "subsystems": [{"nqn": NQN, "allowed_hosts": [],
                            "attr": {"allow_any_host": "1", "serial": "nvmpsoak0001",
                                     "model": "nvmp soak", "version": "1.4"},
                            "namespaces": [{"nsid": 1, "enable": 1, "ana_grpid": 1,
                                            "device": {"size": ns_size,
                                                       "nguid": "6e766d70-736f-616b-0000-000000000001"}}]}]}


async def wait_for(what, timeout_s, probe, procs):
    end = time.monotonic() + timeout_s
    last = "not yet"
    while True:
        procs.check()
        try:
            if await probe():
                return
        except (OSError, SoakError, KeyError, IndexError) as e:
            last = repr(e)
        if time.monotonic() > end:
            raise SoakError(f"timed out after {timeout_s} s waiting for {what} (last: {last})")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- chaos

def actions(ev, port):
    """(inject, undo): target control requests for one event."""
    k = ev["kind"]
    if k == "port-down":
        return [{"op": "port_down", "port": port}], [{"op": "port_up", "port": port}]
    if k == "black-hole":
        return ([{"op": "fault", "port": port, "black_hole": True}],
                [{"op": "fault", "port": port, "black_hole": False}])
    if k == "delay":
        return ([{"op": "fault", "port": port, "delay_ms": ev["delay_ms"]}],
                [{"op": "fault", "port": port, "delay_ms": 0}])
    if k in ("ana", "ana-nonopt"):
        state = ev.get("state", "non-optimized")
        return ([{"op": "ana", "port": port, "group": 1, "state": state}],
                [{"op": "ana", "port": port, "group": 1, "state": "optimized"}])
    fail = {"count": ev["count"], "status": ev["status"], "dnr": False}
    return [{"op": "fault", "port": port, "fail_next": fail}], [{"op": "clear_faults", "port": port}]


class Chaos:
    def __init__(self, a, procs, tctl, nctl, svcs, load):
        self.a, self.procs, self.tctl, self.nctl, self.svcs, self.load = a, procs, tctl, nctl, svcs, load
        self.recovery_failures = 0

    async def sleep(self, s):
        end = time.monotonic() + s
        while not self.load.stop and time.monotonic() < end:
            await asyncio.sleep(min(0.05, max(0.0, end - time.monotonic())))

    async def usable(self, svc):
        st = await control(self.nctl, {"cmd": "status"})
        return path_state(st, svc)

    async def wait_usable(self, svc, what):
        end = time.monotonic() + self.a.recover_timeout
        state = "?"
        while not self.load.stop:
            self.procs.check()
            ok, state = await self.usable(svc)
            if ok:
                return
            if time.monotonic() > end:
                self.recovery_failures += 1
                raise SoakError(f"path to port {svc} not usable {self.a.recover_timeout} s after {what} ({state})")
            await asyncio.sleep(0.05)

    async def apply(self, reqs, idx):
        self.load.mark(idx)
        for r in reqs:
            await control(self.tctl, r)
        self.load.mark(idx)

    async def run(self, t0, deadline):
        for idx, ev in enumerate(schedule(self.a.seed)):
            if self.load.stop or time.monotonic() >= deadline:
                return
            for svc in self.svcs:  # one path up at all times: both usable before a fault
                await self.wait_usable(svc, "the previous event")
            port = ev["path"] + 1
            e = dict(ev, index=idx, what=describe(ev), t_s=round(time.monotonic() - t0, 3),
                     ops_across=0, max_stall_ms=0.0, recovery_ms=None)
            self.load.events.append(e)
            inject, undo = actions(ev, port)
            await self.apply(inject, idx)
            await self.sleep(ev["hold_ms"] / 1000)
            await self.apply(undo, idx)
            t_undo = time.monotonic()
            await self.wait_usable(self.svcs[ev["path"]], e["what"])
            e["recovery_ms"] = round((time.monotonic() - t_undo) * 1000, 1)
            if self.a.verbose:
                log(f"t={e['t_s']:.1f}s event {idx}: {e['what']}; usable again {e['recovery_ms']:.0f} ms after undo")
            await self.sleep(ev["gap_ms"] / 1000)


# ---------------------------------------------------------------- report

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def lat_summary(us_vals):
    s = sorted(us_vals)
    f = (lambda v: None if v is None else round(v / 1000, 3))
    return {"n": len(s), "p50_ms": f(pct(s, 0.5)), "p99_ms": f(pct(s, 0.99)),
            "p999_ms": f(pct(s, 0.999)), "max_ms": f(s[-1] if s else None)}


def report(a, load, chaos, elapsed_s, fatal, final_chunks, nbd_status, tgt_status):
    failover = [(lat, k, i) for lat, k, i in load.crossed if load.events[i]["kind"] in FAILOVER_KINDS]
    fo_all = [lat // 1000 for lat, _, _ in failover]
    by_kind = {}
    for e in load.events:
        k = by_kind.setdefault(e["kind"], {"events": 0, "ops_across": 0, "max_stall_ms": 0.0})
        k["events"] += 1
        k["ops_across"] += e["ops_across"]
        k["max_stall_ms"] = max(k["max_stall_ms"], e["max_stall_ms"])
    for kind in by_kind:
        vals = [lat // 1000 for lat, _, i in load.crossed if load.events[i]["kind"] == kind]
        by_kind[kind]["p99_ms"] = lat_summary(vals)["p99_ms"]
    head = head_of(nbd_status) if nbd_status else {}
    r = {
        "seed": a.seed, "minutes": a.minutes, "elapsed_s": round(elapsed_s, 1),
        "iopolicy": a.iopolicy, "read_stall_ms": a.read_stall_ms, "qd": a.qd, "conns": a.conns, "ns_size": a.ns_size,
        "ops": load.ops, "ops_per_s": round(load.ops / max(elapsed_s, 1e-9)), "by_op": load.counts,
        "mismatches": load.mismatches, "errors": load.errors,
        "mismatch_examples": load.mismatch_examples, "error_examples": load.error_examples,
        "fatal": fatal, "recovery_failures": chaos.recovery_failures if chaos else 0,
        "final_verify_chunks": final_chunks,
        "longest_stall_ms": round(ms(load.longest[0]), 3), "longest_stall": load.longest[1],
        "longest_gap_ms": round(ms(load.longest_gap_ns), 3),
        "latency": {k: lat_summary(v) for k, v in load.lat.items()},
        "failover_stall": dict(lat_summary(fo_all), by_op={
            k: lat_summary([lat // 1000 for lat, ok, _ in failover if ok == k]) for k in ("read", "write")}),
        "fault_events": len(load.events), "by_fault": by_kind, "events": load.events,
        "head": {k: head.get(k) for k in ("requeued", "failovers", "errors", "fenced",
                                          "no_path_wait_ms", "longest_wait_ms")},
        "target_port_errors": [p["counters"]["errors"] for p in tgt_status["ports"]] if tgt_status else None,
        "log_warnings": getattr(load, "log_warnings", None),
    }
    r["pass"] = not (r["mismatches"] or r["errors"] or fatal or r["recovery_failures"])
    fo = r["failover_stall"]
    print(f"{'kind':<12}{'events':>7}{'ops across':>12}{'p99 ms':>10}{'max ms':>10}")
    for kind, k in sorted(by_kind.items()):
        p99 = "-" if k["p99_ms"] is None else f"{k['p99_ms']:.1f}"
        print(f"{kind:<12}{k['events']:>7}{k['ops_across']:>12}{p99:>10}{k['max_stall_ms']:>10.1f}")
    lat_all = lat_summary(list(load.lat["read"]) + list(load.lat["write"]))
    print(f"all reads/writes: p50 {lat_all['p50_ms']} ms, p99 {lat_all['p99_ms']} ms, max {lat_all['max_ms']} ms; "
          f"head: failovers {head.get('failovers')}, requeued {head.get('requeued')}, fenced {head.get('fenced')}, "
          f"longest wait {head.get('longest_wait_ms')} ms; warning lines logged {r['log_warnings']}")
    for m in load.mismatch_examples + load.error_examples:
        print(f"  {m}")
    if fatal:
        print(f"  fatal: {fatal}")
    fo_txt = "-" if fo["p99_ms"] is None else f"{fo['p99_ms']:,.1f} ms"
    print(f"soak: {'PASS' if r['pass'] else 'FAIL'} seed {a.seed}, {elapsed_s / 60:.1f} min, "
          f"{r['ops']:,} ops ({r['ops_per_s']:,}/s), {r['mismatches']} mismatches, {r['errors']} errors, "
          f"{r['fault_events']} fault events, longest stall {r['longest_stall_ms']:,.1f} ms ({r['longest_stall']}), "
          f"p99 failover stall {fo_txt} ({fo['n']} ops), longest gap {r['longest_gap_ms']:,.1f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return r["pass"]


# ---------------------------------------------------------------- main

async def progress(a, load, procs, t0):
    every = 30 if a.minutes >= 2 else 10
    nxt = time.monotonic() + every
    while not load.stop:
        await asyncio.sleep(0.25)
        try:
            procs.check()
        except SoakError as e:
            load.fatal = load.fatal or str(e)
            load.stop = True
        if time.monotonic() >= nxt:
            nxt += every
            t = time.monotonic() - t0
            log(f"soak: t={t:.0f}s ops {load.ops:,} ({load.ops / t:,.0f}/s) mismatches {load.mismatches} "
                f"errors {load.errors} events {len(load.events)} longest {ms(load.longest[0]):,.0f} ms")


async def guarded(load, coro):
    try:
        await coro
    except SoakError as e:
        load.fatal = load.fatal or str(e)
        load.stop = True


async def soak(a, procs):
    me = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        asyncio.get_running_loop().add_signal_handler(sig, me.cancel)
    svcs = [a.port, a.port + 1] if a.port else free_ports(2)
    cfg = os.path.join(a.work, "target.json")
    with open(cfg, "w") as f:
        json.dump(target_config(svcs, a.ns_size), f)
    tctl, nctl, nbd_sock = (os.path.join(a.work, n) for n in ("target.sock", "nbd-control.sock", "nbd.sock"))
    procs.start("target", [a.nvmp, "target", "run", "--config", cfg, "--control", tctl])

    async def target_up():
        st = (await control(tctl, {"op": "status"}))["status"]
        return all(p["listening"] for p in st["ports"])
    await wait_for("the target", 30, target_up, procs)
    procs.start("nbd", [a.nvmp, "nbd", "-n", NQN, "--portal", f"127.0.0.1:{svcs[0]}",
                        "--portal", f"127.0.0.1:{svcs[1]}", "--nsid", "1", "--unix", nbd_sock,
                        "--name", "soak", "--control", nctl, "--iopolicy", a.iopolicy,
                        "-c", "1", "-l", "-1"]
               + (["--read-stall-ms", str(a.read_stall_ms)] if a.read_stall_ms is not None else []))

    async def both_usable():
        st = await control(nctl, {"cmd": "status"})
        return all(path_state(st, s)[0] for s in svcs) and os.path.exists(nbd_sock)
    await wait_for("nvmp nbd with two usable paths", 30, both_usable, procs)
    conns = []
    for _ in range(a.conns):
        conns.append(await asyncio.wait_for(Nbd().open(nbd_sock, "soak"), 10))
    if conns[0].size // 4096 < 16 * a.qd:
        raise SoakError(f"--ns-size too small: want 64 KiB per op in flight ({a.qd})")
    log(f"soak: target ports 127.0.0.1:{svcs[0]},{svcs[1]}; export {conns[0].size >> 20} MiB "
        f"over {a.conns} NBD connections, {a.qd} ops in flight, iopolicy {a.iopolicy}; logs in {a.work}")
    load = Load(a, conns, a.seed * 2654435761 + 1)
    load.fatal = None
    chaos = Chaos(a, procs, tctl, nctl, svcs, load)
    t0 = time.monotonic()
    deadline = t0 + a.minutes * 60
    tasks = [asyncio.ensure_future(guarded(load, load.worker(w))) for w in range(a.qd)]
    prog = asyncio.ensure_future(progress(a, load, procs, t0))
    try:
        await guarded(load, chaos.run(t0, deadline))
        while not load.stop and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        load.stop = True
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:  # a signal: stop now, report what ran
        load.fatal = load.fatal or "interrupted"
        load.stop = True
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - t0
    prog.cancel()
    final_chunks = None
    if not load.fatal:
        await guarded(load, load.final_verify())
        final_chunks = len(load.gen)
    nbd_status = tgt_status = None
    try:
        nbd_status = await control(nctl, {"cmd": "status"})
        tgt_status = (await control(tctl, {"op": "status"}))["status"]
    except (OSError, SoakError) as e:
        load.fatal = load.fatal or f"final status: {e}"
    for c in conns:
        c.close()
    logs = procs.log_lines()
    load.log_warnings = {n: w for n, (w, _) in logs.items()}
    panics = [f"{n}: {x}" for n, (_, ps) in logs.items() for x in ps]
    if panics:
        load.fatal = load.fatal or f"panic in {panics[0]}"
    ok = report(a, load, chaos, elapsed, load.fatal, final_chunks, nbd_status, tgt_status)
    return 130 if load.fatal == "interrupted" else 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(prog="scripts/soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=None, help="fault schedule seed (default: from the clock)")
    ap.add_argument("--minutes", type=float, default=1.0, help="how long to run faults (default 1)")
    ap.add_argument("--json", help="write the figures and the event list to this file")
    ap.add_argument("--schedule", type=int, metavar="N", help="print the first N events of the seed's schedule and exit")
    ap.add_argument("--qd", type=int, default=16, help="ops in flight, one per worker (default 16)")
    ap.add_argument("--conns", type=int, default=2, help="NBD connections (default 2)")
    ap.add_argument("--ns-size", default="64M", help="RAM namespace size (default 64M)")
    ap.add_argument("--iopolicy", default="round-robin", help="head I/O policy (default round-robin)")
    ap.add_argument("--read-stall-ms", type=int, default=None,
                    help="nvmp nbd --read-stall-ms (default: nvmp's, 500; 0 = off)")
    ap.add_argument("--op-timeout", type=float, default=120.0, help="seconds before an unanswered op fails the soak")
    ap.add_argument("--recover-timeout", type=float, default=60.0,
                    help="seconds for a path to be usable again after a fault is undone")
    ap.add_argument("--port", type=int, default=0, help="first of two loopback TCP ports (default: free ones)")
    ap.add_argument("--nvmp", help="nvmp binary (scripts/soak builds one)")
    ap.add_argument("--work", help="directory for sockets and logs (scripts/soak makes one)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per fault event")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = time.time_ns() % 1_000_000_007
    if a.schedule is not None:
        for i, ev in zip(range(a.schedule), schedule(a.seed)):
            print(f"{i:4} {describe(ev)}, then {ev['gap_ms']} ms clean")
        return 0
    if not (0 < a.minutes <= 24 * 60 and 1 <= a.qd <= 128 and 1 <= a.conns <= 8 and a.conns <= a.qd):
        ap.error("need 0 < --minutes <= 1440, 1 <= --qd <= 128, 1 <= --conns <= min(8, qd)")
    if not a.nvmp or not a.work:
        ap.error("--nvmp and --work are required (run scripts/soak)")
    print(f"soak: seed {a.seed}, {a.minutes:g} min (replay the fault schedule: scripts/soak --seed {a.seed} "
          f"--minutes {a.minutes:g})", flush=True)
    procs = Procs(a.work)
    try:
        return asyncio.run(soak(a, procs))
    except SoakError as e:
        log(f"soak: FAIL {e}")
        return 1
    except (asyncio.CancelledError, KeyboardInterrupt):
        log("soak: interrupted")
        return 130
    finally:
        procs.stop()


if __name__ == "__main__":
    sys.exit(main())
