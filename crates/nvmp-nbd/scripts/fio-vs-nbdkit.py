#!/usr/bin/env python3
"""NBD export benchmark: fio's nbd engine (4K randread) against `nvmp nbd` (one
or more nvmp binaries, e.g. before/after a change) on a 1-path head of a
`nvmp target` with a 1 GiB RAM namespace, against `nbdkit memory 1G`, and
`nvmp bench` on the same target; interleaved rounds (order reversed every
other round), medians. Also prints the CPU time of each `nvmp nbd` process
per I/O (utime+stime from /proc, all its threads), a less noisy figure than
IOPS on a shared machine, and fio's median completion latency.

usage: fio-vs-nbdkit.py NAME=NVMP_BINARY[,NAME=...][,target=NVMP_BINARY] [ROUNDS [QDS]]
  e.g. fio-vs-nbdkit.py before=/tmp/nvmp-old,after=target/release/nvmp 5 1,32
  env: RT=seconds per run (default 5). Needs fio, nbdkit, and free ports
  4620 (target), 10829 (nbdkit), 10830.. (exports).
"""
import json, subprocess, sys, time, os, statistics, signal, tempfile
BIN = dict(x.split('=') for x in sys.argv[1].split(','))   # name=path,...
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
QDS = [int(q) for q in (sys.argv[3] if len(sys.argv) > 3 else "1,32").split(',')]
RT = os.environ.get('RT', '5')
NQN = 'nqn.2024-01.io.nvmp:nbdbench'
TGT = BIN.get('target', list(BIN.values())[0])
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
    start([TGT, 'target', 'run', '--config', CONFIG], os.path.join(WORK, 'target.log'))
    time.sleep(1.5)
    ports = {}; pids = {}
    for i, (name, path) in enumerate(b for b in BIN.items() if b[0] != 'target'):
        port = 10830 + i
        ports[name] = port
        pids[name] = start([path, 'nbd', '-a', '127.0.0.1', '-s', '4620', '-n', NQN, '--nsid', '1',
               '--listen', f'127.0.0.1:{port}', '--name', 'disk'], os.path.join(WORK, f'nbd-{name}.log')).pid
    start(['nbdkit', '-f', '-p', '10829', 'memory', '1G'], os.path.join(WORK, 'nbdkit.log'))
    time.sleep(2)
    res = {}; cpu = {}; lat = {}
    tck = os.sysconf('SC_CLK_TCK')
    def cputime(pid):
        f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
        return (int(f[11]) + int(f[12])) / tck
    def fio(uri, qd):
        out = subprocess.run(['fio', '--name=j', '--ioengine=nbd', f'--uri={uri}', '--rw=randread', '--bs=4k',
                              f'--iodepth={qd}', f'--runtime={RT}', '--time_based', '--size=256M',
                              '--output-format=json'], capture_output=True, text=True, check=True).stdout
        rd = json.loads(out[out.index('{'):])['jobs'][0]['read']
        lat.setdefault((uri, qd), []).append(rd['clat_ns']['percentile']['50.000000'] / 1000)
        return rd['iops']
    def bench(qd):
        out = subprocess.run([TGT, 'bench', '-a', '127.0.0.1', '-s', '4620', '-n', NQN, '--iodepth', str(qd),
                              '--runtime', RT, '--size', '256M', '-o', 'json'], capture_output=True, text=True, check=True).stdout
        j = json.loads(out[out.index('{'):])
        return j['iops']
    for r in range(ROUNDS):
        for qd in QDS:
            runs = [(n, lambda qd=qd, p=p: fio(f'nbd://127.0.0.1:{p}/disk', qd)) for n, p in ports.items()]
            runs += [('nbdkit', lambda qd=qd: fio('nbd://127.0.0.1:10829/', qd)), ('bench', lambda qd=qd: bench(qd))]
            if r % 2: runs.reverse()
            for n, f in runs:
                c0 = cputime(pids[n]) if n in pids else 0
                v = f(); res.setdefault((n, qd), []).append(v)
                us = ''
                if n in pids:
                    u = (cputime(pids[n]) - c0) / (v * float(RT)) * 1e6
                    cpu.setdefault((n, qd), []).append(u); us = f' ({u:.1f} us CPU/IO in nvmp nbd)'
                print(f'round {r} qd{qd} {n}: {v:.0f}{us}', flush=True)
    print('--- medians')
    for qd in QDS:
        med = {n: statistics.median(v) for (n, q), v in res.items() if q == qd}
        for n, m in med.items():
            extra = ''
            if n == 'nbdkit':
                extra = f"  p50 {statistics.median(lat[('nbd://127.0.0.1:10829/', qd)]):.0f} us"
            if n not in ('nbdkit', 'bench'):
                p = ports[n]; l = statistics.median(lat[(f'nbd://127.0.0.1:{p}/disk', qd)])
                extra = f"  p50 {l:.0f} us  x nbdkit {m/med['nbdkit']:.2f}  x bench {m/med['bench']:.2f}  CPU/IO {statistics.median(cpu[(n, qd)]):.1f} us"
            print(f"qd{qd} {n}: {m:.0f} (all {[round(x) for x in res[(n, qd)]]}){extra}")
finally:
    for p in procs: p.send_signal(signal.SIGTERM)
    for p in procs:
        try: p.wait(5)
        except Exception: p.kill()
