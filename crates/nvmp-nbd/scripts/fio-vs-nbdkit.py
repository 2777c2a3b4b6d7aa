#!/usr/bin/env python3
"""NBD export benchmark: fio's nbd engine (4K randread) against `nvmp nbd` (one
or more nvmp binaries, e.g. before/after a change) on a 1-path head of a
`nvmp target` with a 1 GiB RAM namespace, against `nbdkit memory 1G`, and
`nvmp bench` on the same target; interleaved rounds (order reversed every
other round), medians. Also prints the CPU time per I/O (utime+stime from
/proc, all threads) of each `nvmp nbd` process and of nbdkit, of the target,
of fio itself (from its JSON) and of `nvmp bench` (the head alone) - less noisy figures than IOPS on a shared
machine, and they add up to what one I/O costs the machine - and fio's median
completion latency.

usage: fio-vs-nbdkit.py NAME=NVMP_BINARY[+OPT...][,NAME=...][,target=NVMP_BINARY] [ROUNDS [QDS]]
  e.g. fio-vs-nbdkit.py before=/tmp/nvmp-old,after=target/release/nvmp 5 1,32
       fio-vs-nbdkit.py sleep=target/release/nvmp,poll=target/release/nvmp+--poll 5 1
  +OPT: global options given to that `nvmp` before `nbd` (e.g. +--poll).
  env: RT=seconds per run (default 5); TRANSPORT=unix serves and connects
  every export and nbdkit over Unix sockets instead of loopback TCP (both
  sides on the same transport); TARGET_ARGS="--poll --workers 1" global
  options of the target; NBD_ARGS / NBDKIT_ARGS: more options of every
  `nvmp nbd` / of nbdkit (e.g. NBD_ARGS=--no-structured-replies
  NBDKIT_ARGS=--no-sr: simple replies on both sides). Needs fio, nbdkit, and free ports 4620 (target),
  10829 (nbdkit), 10830.. (exports).
"""
import json, subprocess, sys, time, os, statistics, signal, tempfile
BIN = dict(x.split('=') for x in sys.argv[1].split(','))   # name=path,...
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
QDS = [int(q) for q in (sys.argv[3] if len(sys.argv) > 3 else "1,32").split(',')]
RT = os.environ.get('RT', '5')
NQN = 'nqn.2024-01.io.nvmp:nbdbench'
BIN = {n: p.split('+') for n, p in BIN.items()}    # name -> [binary, options...]
TGT = BIN.get('target', list(BIN.values())[0])[0]
UNIX = os.environ.get('TRANSPORT', 'tcp') == 'unix'
TARGET_ARGS = os.environ.get('TARGET_ARGS', '').split()
NBD_ARGS = os.environ.get('NBD_ARGS', '').split()
NBDKIT_ARGS = os.environ.get('NBDKIT_ARGS', '').split()
WORK = tempfile.mkdtemp(prefix='nbd-bench-')
CONFIG = os.path.join(WORK, 'target.json')
json.dump({"hosts": [],
           "ports": [{"portid": 1, "addr": {"trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1",
                                            "trsvcid": "4620", "treq": "not specified"},
                      "ana_groups": [{"grpid": 1, "ana": {"state": "optimized"}}], "referrals": [],
                      "subsystems": [NQN]}],
           "subsystems": [{"nqn": NQN, "attr": {"allow_any_host": "1"}, "allowed_hosts": [],
                           "namespaces": [{"nsid": 1, "enable": 1, "ana_grpid": 1,
                                           "device": {"size": "1G"}}]}]}, open(CONFIG, 'w'))
procs = []
def start(cmd, log):
    p = subprocess.Popen(cmd, stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    procs.append(p); return p
try:
    tpid = start([TGT] + TARGET_ARGS + ['target', 'run', '--config', CONFIG], os.path.join(WORK, 'target.log')).pid
    time.sleep(1.5)
    uris = {}; pids = {}
    for i, (name, (path, *opts)) in enumerate(b for b in BIN.items() if b[0] != 'target'):
        port = 10830 + i
        sock = os.path.join(WORK, f'{name}.sock')
        where = ['--unix', sock] if UNIX else ['--listen', f'127.0.0.1:{port}']
        uris[name] = f'nbd+unix:///disk?socket={sock}' if UNIX else f'nbd://127.0.0.1:{port}/disk'
        pids[name] = start([path] + opts + ['nbd', '-a', '127.0.0.1', '-s', '4620', '-n', NQN, '--nsid', '1',
               '--name', 'disk'] + where + NBD_ARGS, os.path.join(WORK, f'nbd-{name}.log')).pid
    ksock = os.path.join(WORK, 'nbdkit.sock')
    kwhere = ['-U', ksock] if UNIX else ['-p', '10829']
    uris['nbdkit'] = f'nbd+unix:///?socket={ksock}' if UNIX else 'nbd://127.0.0.1:10829/'
    pids['nbdkit'] = start(['nbdkit', '-f'] + NBDKIT_ARGS + kwhere + ['memory', '1G'], os.path.join(WORK, 'nbdkit.log')).pid
    time.sleep(2)
    res = {}; cpu = {}; lat = {}; fcpu = {}; tcpu = {}
    tck = os.sysconf('SC_CLK_TCK')
    def cputime(pid):
        f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        return (int(f[11]) + int(f[12])) / tck
    def fio(uri, qd):
        out = subprocess.run(['fio', '--name=j', '--ioengine=nbd', f'--uri={uri}', '--rw=randread', '--bs=4k',
                              f'--iodepth={qd}', f'--runtime={RT}', '--time_based', '--size=256M',
                              '--output-format=json'], capture_output=True, text=True, check=True).stdout
        job = json.loads(out[out.index('{'):])['jobs'][0]
        rd = job['read']
        lat.setdefault((uri, qd), []).append(rd['clat_ns']['percentile']['50.000000'] / 1000)
        # usr_cpu/sys_cpu: percent of one CPU over the run
        fcpu.setdefault((uri, qd), []).append((job['usr_cpu'] + job['sys_cpu']) / 100 / rd['iops'] * 1e6)
        return rd['iops']
    def bench(qd):
        out = subprocess.run([TGT, 'bench', '-a', '127.0.0.1', '-s', '4620', '-n', NQN, '--iodepth', str(qd),
                              '--runtime', RT, '--size', '256M', '-o', 'json'], capture_output=True, text=True, check=True).stdout
        j = json.loads(out[out.index('{'):])
        host = (j.get('usage') or {}).get('host') or {}
        if 'cpu_us_per_io' in host:   # the head's own CPU per I/O, no NBD hop
            fcpu.setdefault(('bench', qd), []).append(host['cpu_us_per_io'])
        return j['iops']
    for r in range(ROUNDS):
        for qd in QDS:
            runs = [(n, lambda qd=qd, u=u: fio(u, qd)) for n, u in uris.items()]
            runs += [('bench', lambda qd=qd: bench(qd))]
            if r % 2: runs.reverse()
            for n, f in runs:
                c0 = cputime(pids[n]) if n in pids else 0
                t0 = cputime(tpid)
                v = f(); res.setdefault((n, qd), []).append(v)
                t = (cputime(tpid) - t0) / (v * float(RT)) * 1e6
                tcpu.setdefault((n, qd), []).append(t)
                us = f' (CPU us/IO: target {t:.1f}'
                if n in pids:
                    u = (cputime(pids[n]) - c0) / (v * float(RT)) * 1e6
                    cpu.setdefault((n, qd), []).append(u); us += f', {n} {u:.1f}'
                if n in uris:
                    us += f', fio {fcpu[(uris[n], qd)][-1]:.1f}'
                if n == 'bench' and ('bench', qd) in fcpu:
                    us += f', bench (host) {fcpu[("bench", qd)][-1]:.1f}'
                print(f'round {r} qd{qd} {n}: {v:.0f}{us}) load {os.getloadavg()[0]:.1f}', flush=True)
    print('--- medians')
    for qd in QDS:
        med = {n: statistics.median(v) for (n, q), v in res.items() if q == qd}
        for n, m in med.items():
            extra = ''
            if n in uris:
                extra = f"  p50 {statistics.median(lat[(uris[n], qd)]):.1f} us"
            if n not in ('nbdkit', 'bench'):
                extra += f"  x nbdkit {m/med['nbdkit']:.2f}  x bench {m/med['bench']:.2f}"
            extra += '  CPU us/IO:'
            if n in pids:
                extra += f" {n} {statistics.median(cpu[(n, qd)]):.1f}"
            if n != 'nbdkit':
                extra += f" target {statistics.median(tcpu[(n, qd)]):.1f}"
            if n in uris:
                extra += f" fio {statistics.median(fcpu[(uris[n], qd)]):.1f}"
            if n == 'bench' and ('bench', qd) in fcpu:
                extra += f" bench (host) {statistics.median(fcpu[('bench', qd)]):.1f}"
            print(f"qd{qd} {n}: {m:.0f} (all {[round(x) for x in res[(n, qd)]]}){extra}")
finally:
    for p in procs: p.send_signal(signal.SIGTERM)
    for p in procs:
        try: p.wait(5)
        except Exception: p.kill()
