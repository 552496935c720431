"""Vendor interface 'dpu': operator entry points to the node's agent.

* `baremetal node passthru call --http-method POST <node> sync_state`
  re-pushes the desired state built from the node's current volume targets
  and ports: this is how a volume target added to or removed from an
  ACTIVE node is hot-plugged without rebooting the host (a power on or
  reboot through Ironic does the same via the storage interface).
* `baremetal node passthru call --http-method POST <node> detach_volume
  volume_id=<id>` removes that volume's targets and pushes the state: the
  volume target API refuses deletions while the node is powered on, and a
  running host is exactly when a hot-unplug is wanted (Nova's
  ironic_dpu compute driver calls this for `server remove volume`).
* `baremetal node passthru call --http-method GET <node> agent_state`
  returns the agent's get_status and get_state.
* `baremetal node passthru call --http-method POST <node> fence` (Nova's
  ironic_dpu driver, evacuating the node's server): the node keeps no
  volume and no VIF; see DPUVendor.fence.
* `baremetal node passthru call --http-method POST <node> quiesce` and
  `... unquiesce` (no arguments; ACTIVE nodes) pause and resume the host's
  emulated NVMe controllers around a volume snapshot (Nova's quiesce and
  unquiesce of the ironic_dpu compute driver). Both answer the agent's
  quiesce status, {"quiesced": true|false, "supported", "since",
  "until", "functions", "max_hold_seconds", "resumed_at",
  "resume_reason", "last_error"}; the
  agent resumes by itself at "until" at the latest. An agent that cannot
  pause (older than RPC API 1.3, or a DPU driver without a documented
  pause) makes them fail with UnsupportedDriverExtension (HTTP 400, "Driver
  dpu does not support quiesce ..."), which Nova maps to "quiesce not
  supported".
"""
from oslo_log import log
from ironic.common import exception as ir_exc
from ironic.common import states
from ironic.drivers import base

from ironic_dpu import agent_client
from ironic_dpu import desired
from ironic_dpu import exception
from ironic_dpu import network

LOG = log.getLogger(__name__)


def _api_error(e):
    # Only ironic.common.exception classes cross the conductor-to-API RPC
    # intact; anything else reaches the user as an opaque RemoteError.
    return ir_exc.VendorPassthruException(str(e))


def _push_observed(task):
    """Push the state built from task; the agent's observed state."""
    client = agent_client.AgentClient(task.node.uuid)
    try:
        result = desired.push(task, desired.build(task), client=client)
    except exception.DPUAgentError as e:
        raise _api_error(e)
    return (result or {}).get('observed')


class DPUVendor(base.VendorInterface):

    def get_properties(self):
        return {}

    def validate(self, task, method=None, http_method=None, **kwargs):
        # The conductor passes the request's http_method besides the
        # method's own arguments.
        if method in ('quiesce', 'unquiesce') and kwargs:
            raise ir_exc.InvalidParameterValue(
                '%s takes no arguments, got %s'
                % (method, ', '.join(sorted(kwargs))))
        if method == 'sync_state':
            desired.build(task)
        if method == 'detach_volume' and not kwargs.get('volume_id'):
            raise ir_exc.MissingParameterValue(
                'detach_volume needs volume_id')

    @base.passthru(['POST'], async_call=False,
                   description='Push the node\'s desired state (volume '
                               'targets and VIFs) to its DPU agent now; '
                               'returns the agent\'s observed state as it '
                               'admitted it (it converges asynchronously: '
                               'see agent_state).')
    def sync_state(self, task, **kwargs):
        return _push_observed(task)

    @base.passthru(['POST'], async_call=False,
                   description='Remove the volume targets of volume_id '
                               '(also from a powered-on node) and push the '
                               'node\'s state to its agent; returns the '
                               'agent\'s observed state.')
    def detach_volume(self, task, volume_id=None, **kwargs):
        gone = [t for t in task.volume_targets if t.volume_id == volume_id]
        task.volume_targets = [t for t in task.volume_targets
                               if t.volume_id != volume_id]
        observed = _push_observed(task)
        # Only once the agent took the state: a refused detach leaves
        # Ironic and the agent agreeing that the volume is still there.
        for target in gone:
            target.destroy()
        return observed

    @base.passthru(['GET'], async_call=False, require_exclusive_lock=False,
                   description='The DPU agent\'s status and state.')
    def agent_state(self, task, **kwargs):
        client = agent_client.AgentClient(task.node.uuid)
        try:
            return {'status': client.get_status(task.context),
                    'state': client.get_state(task.context)}
        except exception.DPUAgentError as e:
            raise _api_error(e)

    def _quiesce(self, task, method):
        node = task.node
        if node.provision_state != states.ACTIVE:
            raise ir_exc.InvalidState(
                'Node %s is %s: %s needs an active node'
                % (node.uuid, node.provision_state, method))
        client = agent_client.AgentClient(node.uuid)
        try:
            status = getattr(client, method)(task.context)
        except exception.DPUQuiesceNotSupported as e:
            raise ir_exc.UnsupportedDriverExtension(
                driver=node.driver, extension='%s (%s)' % (method, e))
        except exception.DPUAgentError as e:
            raise _api_error(e)
        status = dict(status or {})
        status['quiesced'] = bool(status.get('quiesced'))
        return status

    @base.passthru(['POST'], async_call=False, require_exclusive_lock=False,
                   description='Pause the host\'s emulated NVMe controllers '
                               '(host I/O stalls, nothing is lost) for a '
                               'block-consistent volume snapshot; the agent '
                               'resumes them itself at "until" at the '
                               'latest. No arguments; returns the agent\'s '
                               'quiesce status {"quiesced": true, ...}.')
    def quiesce(self, task, **kwargs):
        return self._quiesce(task, 'quiesce')

    @base.passthru(['POST'], async_call=False, require_exclusive_lock=False,
                   description='Resume the host\'s NVMe controllers after '
                               'quiesce (nothing paused is success). No '
                               'arguments; returns {"quiesced": false, ...}.')
    def unquiesce(self, task, **kwargs):
        return self._quiesce(task, 'unquiesce')

    @base.passthru(['POST'], async_call=False,
                   description='Drop every volume and VIF of the node (its '
                               'server moves to another node): its volume '
                               'targets and port VIFs are removed, an '
                               'empty desired state recorded and pushed to '
                               'its agent if it answers a ping. Returns '
                               '{volumes, vifs, agent}; agent is "dropped" '
                               'or why it was not reached.')
    def fence(self, task, **kwargs):
        """Fencing for an evacuation: what Ironic holds goes first, so a
        DPU that was down catches up with the empty state when it comes
        back; then the agent, bounded by ping_timeout when it is down
        (best effort: the caller also has Cinder remove the exports).
        Neutron ports stay bound: they move with the server."""
        volumes = sorted(t.volume_id for t in task.volume_targets)
        for target in task.volume_targets:
            target.destroy()
        task.volume_targets = []
        vifs = []
        for port in task.ports:
            vif = desired.port_vif_id(port)
            if not vif:
                continue
            vifs.append(vif)
            # as a VIF detach does: VIF id and its recorded Neutron MAC
            network.DPUNetwork._clear_vif_from_port_like_obj(port)
        state = {'node_uuid': task.node.uuid, 'volumes': [], 'vifs': []}
        client = agent_client.AgentClient(task.node.uuid)
        try:
            client.ping(task.context)
        except exception.DPUAgentError as e:
            desired.record(task, state)
            agent = 'unreachable: %s' % e
        else:
            try:
                desired.push(task, state, client=client)
                agent = 'dropped'
            except exception.DPUAgentError as e:
                agent = 'refused: %s' % e
        LOG.warning('Node %s fenced: volumes %s and VIFs %s dropped; agent '
                    '%s', task.node.uuid, volumes, vifs, agent)
        return {'volumes': volumes, 'vifs': vifs, 'agent': agent}
