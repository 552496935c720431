"""The node's desired state (DESIGN.md section 2), built from Ironic's DB,
and pushing it to the agent.

Sources:
* volumes: the node's volume targets of type 'nvmeof'; properties are the
  Cinder connection data (old: nqn/target_portal/target_port/
  transport_type/ns_id, or new: target_nqn/vol_uuid/portals), as Nova or
  an operator stores them; boot_index 0 = the boot disk, other
  non-negative values are passed through, a negative one (Nova's data
  disks: -1) or none = not a boot disk.
* config_drive: instance_info['configdrive'] (configdrive.py), sent as
  {sha256, size, url} (published for the agent to fetch; agent API 1.2)
  or {sha256, data} (an older agent); only its sha256 is ever recorded.
* VIFs: every port with a VIF (internal_info tenant_vif_port_id, or the
  legacy extra vif_port_id); MAC = the Neutron port's, which the network
  interface records in internal_info tenant_vif_mac when it attaches the
  VIF (the DPU gives the host function that MAC, so the server keeps it on
  any node), else the port address (VIFs attached without Neutron, or by
  an older conductor, which made the Neutron MAC the port's). The host function comes
  from, in order: port extra 'dpu_function' ({"pf": 0, "vf": 3}, or a
  representor-style string "pf0vf3" / "pf0sf5" / "pf0"), then
  local_link_connection port_id if it is such a name (Ironic's smart-NIC
  convention: port_id = representor), else none (the agent allocates an
  SF). MTU from port extra 'dpu_mtu'.

What was last pushed (or should have been, when the agent was unreachable)
is recorded in driver_internal_info 'dpu_desired_state', with the
generation counter in 'dpu_generation', so the agent (or an operator) can
pull it from the Ironic API.
"""
import re
import time

from oslo_log import log

from ironic.common import exception as ir_exc
from ironic.conf import CONF

from ironic_dpu import agent_client
from ironic_dpu import configdrive
from ironic_dpu import exception

LOG = log.getLogger(__name__)

VOLUME_TYPE = 'nvmeof'
CONNECTOR_TYPE = 'nqn'
TENANT_VIF_KEY = 'tenant_vif_port_id'
# The attached Neutron port's MAC, beside TENANT_VIF_KEY in internal_info.
VIF_MAC_KEY = 'tenant_vif_mac'
GENERATION_KEY = 'dpu_generation'
STATE_KEY = 'dpu_desired_state'
# What a deploy in DEPLOYWAIT waits for: {'generation': G, 'since': epoch}.
WAIT_KEY = 'dpu_wait'

_FUNC_RE = re.compile(r'^(?:c\d+)?pf(\d+)(?:(vf|sf)(\d+)|hpf)?$')
_MAC_RE = re.compile(r'^([0-9a-f]{2}:){5}[0-9a-f]{2}$')


def parse_function(value, where):
    """Return the agent's function dict for value, or raise."""
    if isinstance(value, str):
        m = _FUNC_RE.match(value.strip())
        if not m:
            raise ir_exc.InvalidParameterValue(
                '%s: %r is not a host function name such as pf0vf3, pf0sf5 '
                'or pf0' % (where, value))
        func = {'pf': int(m.group(1))}
        if m.group(2):
            func[m.group(2)] = int(m.group(3))
        return func
    if isinstance(value, dict):
        keys = set(value)
        if ('pf' not in keys or not keys <= {'pf', 'vf', 'sf'}
                or {'vf', 'sf'} <= keys):
            raise ir_exc.InvalidParameterValue(
                '%s: %r must be {"pf": N} plus at most one of "vf"/"sf"'
                % (where, value))
        func = {}
        for k in ('pf', 'vf', 'sf'):
            if k in value:
                v = value[k]
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise ir_exc.InvalidParameterValue(
                        '%s: %s must be a non-negative integer, not %r'
                        % (where, k, v))
                func[k] = v
        return func
    raise ir_exc.InvalidParameterValue(
        '%s: %r is not a host function' % (where, value))


def port_vif_id(port):
    return (port.internal_info.get(TENANT_VIF_KEY)
            or port.extra.get('vif_port_id'))


def port_function(port):
    where = 'port %s' % port.uuid
    if port.extra.get('dpu_function') is not None:
        return parse_function(port.extra['dpu_function'],
                              where + ' extra dpu_function')
    llc_port = (port.local_link_connection or {}).get('port_id')
    if isinstance(llc_port, str) and _FUNC_RE.match(llc_port):
        return parse_function(llc_port, where + ' local_link_connection')
    return None


def valid_mac(value):
    """value as a lower-case colon MAC, or None if it is not one."""
    mac = value.lower() if isinstance(value, str) else ''
    return mac if _MAC_RE.match(mac) else None


def vif_mac(port):
    """The MAC the host function must carry for port's VIF."""
    recorded = port.internal_info.get(VIF_MAC_KEY)
    mac = valid_mac(recorded or port.address)
    if mac is None:
        raise ir_exc.InvalidParameterValue(
            'port %s has no usable MAC address (%r)'
            % (port.uuid, recorded or port.address))
    return mac


def vif_for_port(port, vif_id=None):
    vif_id = vif_id or port_vif_id(port)
    mac = vif_mac(port)
    vif = {'port_id': vif_id, 'mac': mac}
    func = port_function(port)
    if func is not None:
        vif['function'] = func
    mtu = port.extra.get('dpu_mtu')
    if mtu is not None:
        if isinstance(mtu, bool) or not isinstance(mtu, int) or mtu < 68:
            raise ir_exc.InvalidParameterValue(
                'port %s extra dpu_mtu must be an integer >= 68, not %r'
                % (port.uuid, mtu))
        vif['mtu'] = mtu
    return vif


def connection_data(target):
    props = dict(target.properties or {})
    # Accept a whole connection_info too ({"driver_volume_type", "data"}).
    if isinstance(props.get('data'), dict) and 'driver_volume_type' in props:
        props = dict(props['data'])
    return props


def validate_target(target):
    where = 'volume target %s' % target.uuid
    if target.volume_type != VOLUME_TYPE:
        raise ir_exc.InvalidParameterValue(
            "%s is of type '%s'; the dpu storage interface supports only "
            "'%s'" % (where, target.volume_type, VOLUME_TYPE))
    data = connection_data(target)
    if not (data.get('nqn') or data.get('target_nqn')):
        raise ir_exc.InvalidParameterValue(
            '%s properties need the Cinder NVMe-oF connection data: nqn '
            '(old format) or target_nqn (new format)' % where)
    if not (data.get('target_portal') or data.get('portals')):
        raise ir_exc.InvalidParameterValue(
            '%s properties need target_portal (old format) or portals '
            '(new format)' % where)


def volume_for_target(target):
    validate_target(target)
    vol = {'volume_id': target.volume_id,
           'connection_info': {'driver_volume_type': VOLUME_TYPE,
                               'data': connection_data(target)}}
    if boot_index(target) is not None:
        vol['boot_index'] = target.boot_index
    return vol


def boot_index(target):
    """target's boot_index, or None for a data disk (none or negative)."""
    bi = target.boot_index
    return bi if bi is not None and bi >= 0 else None


def _boot_order(target):
    bi = boot_index(target)
    return (bi is None, bi or 0, target.volume_id)


def build(task, volumes=True, vifs=True):
    """The desired state of task.node; validates, saves nothing."""
    vols = []
    if volumes:
        targets = sorted(task.volume_targets, key=_boot_order)
        vols = [volume_for_target(t) for t in targets]
    nics = []
    if vifs:
        seen = set()
        for port in task.ports:
            vif_id = port_vif_id(port)
            if not vif_id:
                continue
            if vif_id in seen:
                raise ir_exc.InvalidParameterValue(
                    'VIF %s is attached to more than one port' % vif_id)
            seen.add(vif_id)
            nics.append(vif_for_port(port, vif_id))
    state = {'node_uuid': task.node.uuid, 'volumes': vols, 'vifs': nics}
    drive = configdrive.for_node(task.node)
    if drive:
        state['config_drive'] = drive
    return state


def _next_generation(node, floor=0):
    gen = max(int(node.driver_internal_info.get(GENERATION_KEY) or 0),
              int(floor)) + 1
    node.set_driver_internal_info(GENERATION_KEY, gen)
    return gen


def record(task, state, save=True):
    """Store state as the node's desired state (without pushing it)."""
    state = dict(state)
    state['generation'] = _next_generation(task.node)
    _store(task, state, save)
    return state


def _store(task, state, save=True):
    # The config drive image is large and holds the tenant's user data:
    # Ironic's DB (and API) keep its sha256 only.
    task.node.set_driver_internal_info(STATE_KEY,
                                       configdrive.without_data(state))
    if save:
        task.node.save()


def push(task, state, client=None, save=True, wait=None):
    """Record state, then apply_state on the agent; return its answer.

    wait: seconds the agent may take to converge before it answers (API
    1.1; AgentClient.apply_state sends it only when the agent can take it).

    An agent that holds a newer generation (edited by plug_vif or the
    agent CLI), or this one with other content, refuses ours with Conflict:
    bump past its generation once. save=False leaves the record to the
    caller's next node save (a deploy step: Ironic saves the node after it
    whatever the outcome); the agent's Conflict keeps a generation that a
    crash before that save would reuse from being applied twice.
    """
    client = client or agent_client.AgentClient(task.node.uuid)
    state = _published(task, record(task, state, save=save), client)
    try:
        return client.apply_state(task.context, state, wait=wait)
    except exception.DPUAgentError as e:
        if _drive_unknown(state, e):
            # A new or wiped DPU lacks the image we named by sha256 only.
            state = dict(state, config_drive=configdrive.for_node(
                task.node, fresh=True))
            state = _published(task, record(task, state, save=save), client)
            return client.apply_state(task.context, state, wait=wait)
        if getattr(e, 'remote_class', None) != 'Conflict':
            raise
        current = client.get_state(task.context) or {}
        floor = (current.get('desired') or {}).get('generation') or 0
        state['generation'] = _next_generation(task.node, floor)
        _store(task, state, save)
        LOG.info('Node %s: agent held generation %s; pushing again as %s',
                 task.node.uuid, floor, state['generation'])
        return client.apply_state(task.context, state, wait=wait)


def _published(task, state, client):
    """state with its config drive image published for the agent to fetch
    (its URL added) when the agent may take it by URL (API 1.2 within
    rpc_version_cap); the inline data stays for an older agent."""
    drive = state.get('config_drive') or {}
    if 'data' not in drive or not client.can_send_version(
            agent_client.CONFIG_DRIVE_URL_VERSION):
        return state
    url = configdrive.publish(task.node, drive)
    return dict(state, config_drive=dict(drive, url=url))


def _drive_unknown(state, err):
    # the agent's refusal of a config drive it has no image for
    drive = state.get('config_drive') or {}
    return bool(drive) and 'data' not in drive and (
        'no such image' in str(err))


def with_vif_change(task, vif=None, remove_vif=None):
    """The recorded desired state with one VIF added/replaced or removed."""
    state = dict(task.node.driver_internal_info.get(STATE_KEY) or
                 build(task))
    vifs = [v for v in state.get('vifs', [])
            if v.get('port_id') not in (remove_vif, (vif or {}).get(
                'port_id'))]
    if vif:
        vifs.append(vif)
    state['vifs'] = vifs
    return state


def note_item_change(task, vif=None, remove_vif=None):
    """Keep the recorded state in step with a plug_vif/unplug_vif edit."""
    return record(task, with_vif_change(task, vif, remove_vif))


def failures(observed, want_volumes=(), want_vifs=()):
    """Errors and pending items of the agent's observed state.

    Pending: items the agent still reports as pending, wanted items it does
    not report yet, and unwanted items it still reports (not detached yet).
    """
    errors, pending = [], []
    observed = observed or {}
    for kind, key, items, want in (
            ('volume', 'volume_id', observed.get('volumes') or [],
             set(want_volumes)),
            ('VIF', 'port_id', observed.get('vifs') or [], set(want_vifs))):
        seen = set()
        for item in items:
            ident = item.get(key)
            seen.add(ident)
            st = item.get('state')
            if st == 'error':
                errors.append('%s %s: %s' % (kind, ident,
                                             item.get('last_error')
                                             or 'error'))
            elif st == 'pending' or ident not in want:
                pending.append((kind, ident))
        pending.extend((kind, ident) for ident in sorted(want - seen))
    return errors, pending


def judge(state, generation, observed):
    """Where the agent is on generation: (errors, blocking, unbound).

    Converged when all three are empty. blocking: the agent has not
    reconciled generation yet, a wanted volume is not attached, or an
    unwanted item is still there. unbound: wanted VIFs plugged but not bound
    by OVN yet (the host can boot without them). errors: items in error or,
    at generation or later, a component's reconcile error (SPDK down while
    removing a disk shows on no item).
    """
    observed = observed or {}
    have = int(observed.get('generation') or 0)
    if have < generation:
        return [], ['the agent has reconciled generation %s, not %s yet'
                    % (have, generation)], []
    want_n = [v['port_id'] for v in state.get('vifs') or []]
    errors, pending = failures(
        observed, [v['volume_id'] for v in state.get('volumes') or []],
        want_n)
    if not errors:
        errors = ['%s: %s' % (name, c['last_error']) for name, c in
                  sorted((observed.get('components') or {}).items())
                  if c.get('last_error')]
    cd_errors, cd_blocking = _config_drive(state, observed)
    if not errors:
        errors = cd_errors
    unbound = [i for kind, i in pending if kind == 'VIF' and i in want_n]
    blocking = ['%s %s' % (kind, i) for kind, i in pending
                if not (kind == 'VIF' and i in want_n)] + cd_blocking
    return errors, blocking, unbound


def _config_drive(state, observed):
    """(errors, blocking) of the config drive: wanted one attached, or gone."""
    want = (state.get('config_drive') or {}).get('sha256')
    have = observed.get('config_drive') or {}
    if have.get('state') == 'error':
        return ['config drive: %s' % (have.get('last_error') or 'error')], []
    if want and (have.get('sha256') != want or have.get('state') != 'attached'):
        return [], ['config drive %s' % (have.get('state') or 'missing')]
    if not want and have:
        return [], ['config drive still attached']
    return [], []


def start_wait(task, generation, since):
    """Record that the node's deploy waits for generation (DEPLOYWAIT),
    pushed at since (epoch).

    Not saved here: the step returns DEPLOYWAIT and Ironic saves the node
    with that transition (one write instead of two); the periodic only
    looks at nodes in DEPLOYWAIT, so it never sees one without the record.
    """
    task.node.set_driver_internal_info(
        WAIT_KEY, {'generation': generation, 'since': since})


# First gap between get_state polls; each next one doubles up to the cap.
FIRST_POLL = 0.05


def poll(task, state, result, budget, client=None, sleep=None, clock=None,
         timeout=None):
    """Poll get_state until the agent converged on state's generation, reports
    an error, or budget seconds passed: (errors, blocking, unbound, observed).

    result is apply_state's answer (its observed is the first look). Polls
    start FIRST_POLL apart and double up to state_poll_interval: a
    fast agent is seen within tens of milliseconds, a slow one is not asked
    more than twice a second. timeout: of each get_state call.
    """
    client = client or agent_client.AgentClient(task.node.uuid)
    cap = CONF.dpu_agent.state_poll_interval
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    deadline = clock() + budget
    gap = FIRST_POLL
    observed = (result or {}).get('observed') or {}
    while True:
        errors, blocking, unbound = judge(state, state['generation'],
                                          observed)
        left = deadline - clock()
        if errors or not (blocking or unbound) or left <= 0:
            return errors, blocking, unbound, observed
        sleep(min(gap, left))
        gap = min(gap * 2, cap)
        observed = (client.get_state(task.context, timeout=timeout)
                    or {}).get('observed') or {}


def wait_converged(task, state, result, client=None, sleep=None,
                   clock=None):
    """Poll get_state until the agent converged on state's generation.

    Raises DPUStateError on the agent's errors, or when a volume is still
    pending (or an unwanted item still there) after state_wait_timeout. A
    VIF still unbound at the deadline is only logged: OVN binding may follow
    later and the host can boot without it.
    """
    timeout = CONF.dpu_agent.state_wait_timeout
    errors, blocking, unbound, observed = poll(
        task, state, result, timeout, client=client, sleep=sleep,
        clock=clock)
    reason = failure_reason(errors, blocking)
    if reason:
        raise exception.DPUStateError(node=task.node.uuid, method='',
                                      error=reason)
    warn_unbound(task, unbound)
    return observed


def failure_reason(errors, blocking):
    """Why a wait that ended failed (the agent's errors first), or None."""
    if errors:
        return '; '.join(errors)
    if blocking:
        return 'not converged after %ss: %s' % (
            CONF.dpu_agent.state_wait_timeout, ', '.join(blocking))
    return None


def warn_unbound(task, unbound):
    for pid in unbound:
        LOG.warning('Node %s: VIF %s is not bound yet (OVN); continuing',
                    task.node.uuid, pid)
