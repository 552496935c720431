#!/usr/bin/python3
"""Scripted oslo.messaging 14 RPC client for ironic-dpu-agent tests and benchmarks.

Usage: TRANSPORT_URL=rabbit://... /usr/bin/python3 oslo_client.py < script.json
Script: {"exchange": "ironic_dpu", "topic": "ironic-dpu-agent",
         "allowed_remote_exmods": [...],
         "ops": [{"op": "call"|"cast"|"fanout", "server": "...", "method": "...", "args": {...},
                  "version": "1.0", "namespace": null, "timeout": 10, "call_monitor_timeout": null,
                  "at_least_once": false, "context": {...},
                  "deep_args": {"name": depth}, "blob_args": {"name": nbytes}}, ...],
         "recursion_limit": 100000,
         "bench": {"server": "...", "method": "...", "args": {...}, "n": 1000, "concurrency": 1}}
Prints one JSON line per op ({"ok": true, "result": ...} or {"ok": false, "exc_class": ...}) and,
for "bench", one line {"bench": {"calls": n, "seconds": s, "latencies_ms": [...]}}."""
import json
import os
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging as om

# oslo.messaging 14.0 registers its metrics options only on the global CONF.
conf = cfg.CONF
conf([], project='dpu-test')
# its non-daemon metrics thread otherwise delays exit by 10 s
conf.set_override('metrics_thread_stop_timeout', 0, group='oslo_messaging_metrics')

script = json.load(sys.stdin)
if script.get('recursion_limit'):
    # lets jsonutils.dumps encode the 10,000-deep arguments of flood tests
    sys.setrecursionlimit(int(script['recursion_limit']))
url = os.environ['TRANSPORT_URL']
transport = om.get_rpc_transport(conf, url=url,
                                 allowed_remote_exmods=script.get('allowed_remote_exmods') or [])
base = om.Target(topic=script.get('topic', 'ironic-dpu-agent'), exchange=script.get('exchange', 'ironic_dpu'))


def client_for(op):
    kw = {}
    if op.get('at_least_once'):
        kw['transport_options'] = om.TransportOptions(at_least_once=True)
    c = om.get_rpc_client(transport, base, **kw)
    prep = {}
    for k in ('server', 'version', 'namespace', 'timeout', 'call_monitor_timeout'):
        if op.get(k) is not None:
            prep[k] = op[k]
    if op.get('op') == 'fanout':
        prep['fanout'] = True
    return c.prepare(**prep)


def op_args(op):
    """The op's kwargs plus generated ones: nested lists and big strings."""
    args = dict(op.get('args') or {})
    for name, depth in (op.get('deep_args') or {}).items():
        v = []
        for _ in range(int(depth) - 1):
            v = [v]
        args[name] = v
    for name, n in (op.get('blob_args') or {}).items():
        args[name] = 'x' * int(n)
    return args


def run(op):
    c = client_for(op)
    ctxt = op.get('context') or {'request_id': 'req-test'}
    t = time.perf_counter()
    try:
        if op['op'] == 'call':
            res = c.call(ctxt, op['method'], **op_args(op))
        else:
            c.cast(ctxt, op['method'], **op_args(op))
            res = None
        return {'ok': True, 'result': res, 'elapsed': time.perf_counter() - t}
    except Exception as e:  # report every failure to the Go test
        cls = type(e)
        return {'ok': False, 'exc_class': cls.__name__, 'exc_module': cls.__module__,
                'mro': [k.__module__ + '.' + k.__name__ for k in cls.__mro__],
                'exc_type': getattr(e, 'exc_type', None), 'message': str(e),
                'kwargs': getattr(e, 'kwargs', None), 'elapsed': time.perf_counter() - t}


for op in script.get('ops', []):
    print(json.dumps(run(op)), flush=True)

bench = script.get('bench')
if bench:
    n, conc = int(bench['n']), int(bench.get('concurrency', 1))
    lat, errs, lock = [], [], threading.Lock()
    per = [n // conc + (1 if i < n % conc else 0) for i in range(conc)]

    def worker(count):
        # one prepared client per thread; the transport (and its reply queue) is shared, as oslo allows
        c = client_for({'op': 'call', 'server': bench['server'], 'timeout': bench.get('timeout', 30)})
        mine = []
        for _ in range(count):
            t = time.perf_counter()
            try:
                c.call({'request_id': 'req-bench'}, bench['method'], **(bench.get('args') or {}))
            except Exception as e:
                with lock:
                    errs.append(repr(e))
                continue
            mine.append((time.perf_counter() - t) * 1e3)
        with lock:
            lat.extend(mine)

    # warm-up: declares the reply queue and the exchange
    client_for({'op': 'call', 'server': bench['server']}).call({}, bench['method'], **(bench.get('args') or {}))
    threads = [threading.Thread(target=worker, args=(k,)) for k in per]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps({'bench': {'calls': len(lat), 'errors': errs[:5], 'n_errors': len(errs),
                                'seconds': time.perf_counter() - t0, 'latencies_ms': lat}}), flush=True)

transport.cleanup()
