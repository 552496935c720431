"""Fleet benchmark driver (tests/bench/fleet/run.sh): enrolls N dpu nodes and
N fake-hardware baseline nodes in a private Ironic, then deploys each group
all at once and reports deploy-all time, per-node p50/p95 and failures.

Nodes are driven over the REST API with one thread per node (all requests
in flight together, as a fleet-wide `openstack baremetal node deploy`
would be); completion is read from one node list (of the group's driver only) polled
every POLL seconds: the probe itself costs the API, on the same CPUs as the
conductor under test, so it asks little and not too often.

Usage: fleet_bench.py enroll SPEC.json
       fleet_bench.py attach-vifs SPEC.json
       fleet_bench.py transition SPEC.json baseline|dpu TARGET WANT OUT.json
SPEC: {"api": URL, "cinder_ip": IP,
       "baseline": [uuid...], "dpu": [{"uuid", "boot", "data", "vif",
       "mac", "function"}...]}
"""
import concurrent.futures
import json
import math
import sys
import threading
import time
import urllib.error
import urllib.request

POLL = 0.25
ENROLL_BATCH = 100
TIMEOUT = 600
HEADERS = {'Content-Type': 'application/json',
           'X-OpenStack-Ironic-API-Version': '1.78'}


class Api(object):
    def __init__(self, url):
        self.url = url.rstrip('/') + '/v1'

    def req(self, method, path, body=None, ok=(200, 201, 202, 204)):
        data = None if body is None else json.dumps(body).encode()
        r = urllib.request.Request(self.url + path, data=data,
                                   method=method, headers=HEADERS)
        # Ironic answers 409 NodeLocked while a periodic task holds a
        # node; the CLI retries that too.
        for attempt in range(60):
            try:
                with urllib.request.urlopen(r, timeout=120) as resp:
                    text = resp.read()
                    if resp.status not in ok:
                        raise RuntimeError('%s %s: %s' % (method, path,
                                                          resp.status))
                    return json.loads(text) if text else None
            except urllib.error.HTTPError as e:
                msg = e.read().decode(errors='replace')
                if e.code in (409, 503) and 'locked' in msg.lower():
                    time.sleep(0.2)
                    continue
                raise RuntimeError('%s %s: %s %s' % (method, path, e.code,
                                                     msg)) from e
        raise RuntimeError('%s %s: node stayed locked' % (method, path))

    def states(self, driver=None):
        out = {}
        path = ('/nodes?fields=uuid,provision_state,target_provision_state,'
                'last_error&limit=1000')
        if driver:
            path += '&driver=' + driver
        for n in self.req('GET', path)['nodes']:
            out[n['uuid']] = n
        return out


def transition_all(api, uuids, target, want, driver=None):
    """Move every node to want at once; per-node seconds, failures, total.

    driver: the nodes' driver, to poll only theirs.
    """
    uuids = list(uuids)
    started, errors = {}, {}
    go = threading.Event()

    def put(u):
        go.wait()
        started[u] = time.monotonic()
        try:
            api.req('PUT', '/nodes/%s/states/provision' % u,
                    {'target': target})
        except Exception as e:  # noqa: B902  (reported per node)
            errors[u] = str(e)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(uuids))
    futs = [pool.submit(put, u) for u in uuids]
    t0 = time.monotonic()
    go.set()
    done = {}
    while len(done) + len(errors) < len(uuids):
        if time.monotonic() - t0 > TIMEOUT:
            for u in uuids:
                if u not in done:
                    errors.setdefault(u, 'timeout after %ss' % TIMEOUT)
            break
        time.sleep(POLL)
        now = time.monotonic()
        for u, n in api.states(driver).items():
            if u not in started or u in done or u in errors:
                continue
            ps, tps = n['provision_state'], n['target_provision_state']
            if ps == want and tps is None:
                done[u] = now - started[u]
            elif ps.endswith('failed') or ps == 'error':
                errors[u] = '%s: %s' % (ps, n.get('last_error'))
    concurrent.futures.wait(futs)
    pool.shutdown()
    total = (max(started[u] + d for u, d in done.items()) - t0
             if done else float('nan'))
    return {'per_node': done, 'errors': errors, 'total': total}


def enroll(api, spec):
    def baseline(u):
        api.req('POST', '/nodes', {
            'uuid': u, 'driver': 'fake-hardware', 'deploy_interface': 'fake',
            'boot_interface': 'fake', 'power_interface': 'fake',
            'management_interface': 'fake', 'network_interface': 'noop',
            'storage_interface': 'noop'})

    def dpu(n):
        u, ip = n['uuid'], spec['cinder_ip']
        api.req('POST', '/nodes', {
            'uuid': u, 'driver': 'dpu', 'deploy_interface': 'dpu',
            'boot_interface': 'dpu', 'storage_interface': 'dpu',
            'network_interface': 'dpu', 'vendor_interface': 'dpu',
            'power_interface': 'fake', 'management_interface': 'fake'})
        api.req('POST', '/volume/connectors', {
            'node_uuid': u, 'type': 'nqn',
            'connector_id': 'nqn.2014-08.org.nvmexpress:uuid:' + u})
        api.req('POST', '/volume/targets', {
            'node_uuid': u, 'volume_type': 'nvmeof',
            'volume_id': n['boot'], 'boot_index': 0, 'properties': {
                'nqn': 'nqn.2010-10.org.openstack:volume-' + n['boot'],
                'target_portal': ip, 'target_port': 4420,
                'transport_type': 'tcp', 'ns_id': 1}})
        api.req('POST', '/volume/targets', {
            'node_uuid': u, 'volume_type': 'nvmeof',
            'volume_id': n['data'], 'boot_index': 1, 'properties': {
                'target_nqn': 'nqn.2010-10.org.openstack:volume-'
                              + n['data'],
                'vol_uuid': n['data'], 'portals': [[ip, '4420', 'tcp']]}})
        api.req('POST', '/ports', {
            'node_uuid': u, 'address': n['mac'],
            'extra': {'dpu_function': n['function']}})

    dpus = [n['uuid'] for n in spec['dpu']]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(baseline, spec['baseline']))
        list(pool.map(dpu, spec['dpu']))
    everyone = spec['baseline'] + dpus
    # Set-up, not measured: in batches, as 400 requests at once (N=200)
    # overran the single API worker (connections reset).
    for target, want in (('manage', 'manageable'),
                         ('provide', 'available')):
        for i in range(0, len(everyone), ENROLL_BATCH):
            r = transition_all(api, everyone[i:i + ENROLL_BATCH], target,
                               want)
            if r['errors']:
                raise RuntimeError('%s: %s' % (target, r['errors']))


def attach_vifs(api, spec):
    """Each dpu node's VIF, as Nova attaches it before every deploy
    (Ironic detaches VIFs at undeploy)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: api.req('POST', '/nodes/%s/vifs' % n['uuid'],
                                        {'id': n['vif']}), spec['dpu']))


def quantile(values, q):
    """Nearest-rank quantile (p95 of 20 values is the 19th)."""
    if not values:
        return float('nan')
    v = sorted(values)
    return v[min(len(v), max(1, math.ceil(q * len(v)))) - 1]


def summary(r):
    t = list(r['per_node'].values())
    return {'total': r['total'], 'p50': quantile(t, 0.5),
            'p95': quantile(t, 0.95), 'max': max(t) if t else float('nan'),
            'failures': len(r['errors']),
            'errors': sorted(set(r['errors'].values()))[:5]}


def main(argv):
    cmd, spec_file = argv[1], argv[2]
    with open(spec_file) as f:
        spec = json.load(f)
    api = Api(spec['api'])
    if cmd == 'enroll':
        enroll(api, spec)
        return 0
    if cmd == 'attach-vifs':
        attach_vifs(api, spec)
        return 0
    if cmd != 'transition':
        raise SystemExit('unknown command %s' % cmd)
    group, target, want, out = argv[3:7]
    uuids = (spec['baseline'] if group == 'baseline'
             else [n['uuid'] for n in spec['dpu']])
    driver = 'fake-hardware' if group == 'baseline' else 'dpu'
    res = summary(transition_all(api, uuids, target, want, driver))
    with open(out, 'w') as f:
        json.dump(res, f)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
