"""Network interface 'dpu': VIFs are representors plugged on the DPU.

A VIF is stored on a free port like Ironic's flat/neutron interfaces do
(port internal_info tenant_vif_port_id). On an ACTIVE node attach and
detach hot-plug through the agent (plug_vif / unplug_vif), and
port_changed (reached by `baremetal port set`) re-pushes the port's VIF.
With [dpu] neutron_binding the Neutron port is bound to the DPU's OVN
chassis (binding:host_id = driver_info dpu_hostname) so OVN lets the DPU
claim it, and its MAC is recorded on the Ironic port (internal_info
tenant_vif_mac) for the agent to give the host function. The port keeps
its identity: its vnic_type (Nova makes it 'normal': to ML2/OVN a VM-like
port, LSP type "" with requested-chassis = the DPU, which is what the DPU's
representor is; 'baremetal' would make Nova log an ERROR on every cache
refresh and, without the switchdev capability, an OVN external port) and
its MAC (the server keeps it on whichever node it runs); unbinding leaves
the MAC alone too.
"""
import contextlib

from oslo_log import log

from ironic.common import exception as ir_exc
from ironic.common import neutron
from ironic.common import states
from ironic.conf import CONF
from ironic.drivers import base
from ironic.drivers.modules.network import common
from ironic import objects

from ironic_dpu import agent_client
from ironic_dpu import desired
from ironic_dpu import exception

LOG = log.getLogger(__name__)

# Port fields whose change alters what the agent must plug.
_VIF_FIELDS = {'address', 'extra', 'local_link_connection',
               'physical_network'}


def _edit_vif(task, vif=None, remove_vif=None):
    """Plug (vif) or unplug (remove_vif) one VIF on the running host.

    The conductor mints generations: the call names the generation it
    recorded, so the agent's edit becomes the next one on both sides. An
    agent that holds another generation (an operator's CLI edit, or a state
    recorded while it was unreachable) answers Conflict: then the whole
    state, with this change, is pushed instead.
    """
    client = agent_client.AgentClient(task.node.uuid)
    gen = task.node.driver_internal_info.get(desired.GENERATION_KEY)
    try:
        if vif:
            client.plug_vif(task.context, vif, expected_generation=gen)
        else:
            client.unplug_vif(task.context, remove_vif,
                              expected_generation=gen)
    except exception.DPUAgentError as e:
        if getattr(e, 'remote_class', None) != 'Conflict':
            raise
        LOG.info('Node %s: the agent is not at generation %s (%s); pushing '
                 'the whole state', task.node.uuid, gen, e)
        desired.push(task, desired.with_vif_change(task, vif, remove_vif),
                     client=client)
        return
    desired.note_item_change(task, vif=vif, remove_vif=remove_vif)


def _port_of_vif(task, vif_id):
    """The port of task.node that carries vif_id, or None."""
    for port in task.ports:
        if desired.port_vif_id(port) == vif_id:
            return port
    return None


@contextlib.contextmanager
def neutron_client(context, auth_from_config=False):
    """Ironic's Neutron client for one operation; its connections are
    closed when the operation ends.

    Ironic's neutron.get_client makes a new keystoneauth session per call
    and nothing closes it: its keep-alive connection to Neutron stays open
    until Python's cycle collector happens to free the session. A conductor
    that binds and unbinds ports for many nodes piled up ~100 idle
    connections, a whole Neutron API worker's greenthread pool
    (wsgi_default_pool_size), and Neutron stopped taking new requests: a
    port binding hung forever (seen in the whole-OpenStack suite).
    """
    client = neutron.get_client(context=context,
                                auth_from_config=auth_from_config)
    try:
        yield client
    finally:
        close_client(client)


def close_client(client):
    """Close the HTTP connections of a client neutron.get_client made (its
    keystoneauth session's requests.Session, which is its own)."""
    http = getattr(getattr(client, 'session', None), 'session', None)
    try:
        http.close()
    except Exception as e:      # never fail an operation for this
        LOG.debug('Could not close a Neutron client session: %s', e)


def binding_attrs(node):
    """Neutron port update binding the VIF to the DPU's OVN chassis.

    Only the binding: neither vnic_type nor mac_address (see the module
    docstring). ML2/OVN ignores the profile of a 'normal' port; its
    switchdev capability keeps a port that an older conductor made
    'baremetal' from becoming an OVN external port when it is bound again.
    """
    return {'port': {
        'binding:host_id': node.driver_info['dpu_hostname'],
        'binding:profile': {'capabilities': ['switchdev'],
                            'ironic_node_uuid': node.uuid}}}


def _recorded_vif(node, vif_id):
    """Whether the desired state last told the agent still lists vif_id.

    Undeploy pushes a state without VIFs before Ironic detaches each VIF
    (remove_vifs_from_node): the agent has unplugged it already, so one
    unplug_vif call and one node save per VIF would be spent for nothing.
    """
    state = node.driver_internal_info.get(desired.STATE_KEY)
    if state is None:
        return True    # nothing recorded: ask the agent
    return any(v.get('port_id') == vif_id for v in state.get('vifs') or [])


class DPUNetwork(common.VIFPortIDMixin, base.NetworkInterface):

    def get_properties(self):
        return {'dpu_hostname': 'Hostname of the DPU\'s OVN chassis '
                                '(its ovn-controller system hostname); '
                                'required with [dpu] neutron_binding.'}

    def validate(self, task):
        if CONF.dpu.neutron_binding and not task.node.driver_info.get(
                'dpu_hostname'):
            raise ir_exc.MissingParameterValue(
                'Node %s needs driver_info dpu_hostname (the DPU\'s OVN '
                'chassis) when [dpu] neutron_binding is enabled'
                % task.node.uuid)
        for port in task.ports:
            desired.port_function(port)

    # -- Neutron binding (optional) --
    def _neutron_mac(self, task, vif_id):
        """The MAC of Neutron port vif_id ([dpu] neutron_binding), or None
        without Neutron (the Ironic port's address is used then)."""
        if not CONF.dpu.neutron_binding:
            return None
        try:
            with neutron_client(task.context) as client:
                nport = client.get_port(vif_id)
        except Exception as e:
            raise ir_exc.NetworkError(
                'Could not read Neutron port %s for node %s: %s'
                % (vif_id, task.node.uuid, e))
        found = getattr(nport, 'mac_address', None)
        mac = desired.valid_mac(found)
        if mac is None:
            raise ir_exc.NetworkError(
                'Neutron port %s has no usable MAC address (%r)'
                % (vif_id, found))
        return mac

    @staticmethod
    def _record_vif(port, vif_id, mac):
        """Save vif_id (and its Neutron MAC, if known) on port: one save."""
        info = port.internal_info
        info[desired.TENANT_VIF_KEY] = vif_id
        if mac:
            info[desired.VIF_MAC_KEY] = mac
        else:
            info.pop(desired.VIF_MAC_KEY, None)
        port.internal_info = info
        port.save()

    @staticmethod
    def _clear_vif_from_port_like_obj(port_like_obj):
        info = port_like_obj.internal_info
        info.pop(desired.VIF_MAC_KEY, None)
        port_like_obj.internal_info = info
        common.VIFPortIDMixin._clear_vif_from_port_like_obj(port_like_obj)

    def _bind(self, task, port, vif_id, seen=False):
        """Bind vif_id's Neutron port to the node's DPU chassis. seen: the
        caller read the port with the requester's auth already
        (_neutron_mac), which is the check update_neutron_port makes."""
        if not CONF.dpu.neutron_binding:
            return
        try:
            # as update_neutron_port does without a client: the caller must
            # see the port; the update runs with the conductor's own auth
            if not seen:
                with neutron_client(task.context) as client:
                    client.get_port(vif_id)
            with neutron_client(task.context, auth_from_config=True) as client:
                neutron.update_neutron_port(task.context, vif_id,
                                            binding_attrs(task.node),
                                            client=client)
        except Exception as e:
            raise ir_exc.NetworkError(
                'Could not bind Neutron port %s to DPU chassis %s of node '
                '%s: %s' % (vif_id, task.node.driver_info.get(
                    'dpu_hostname'), task.node.uuid, e))

    def _unbind(self, task, vif_id):
        if not CONF.dpu.neutron_binding:
            return
        try:
            # reset_mac=False: the MAC is the server's, not the node's.
            with neutron_client(task.context, auth_from_config=True) as client:
                neutron.unbind_neutron_port(vif_id, client=client,
                                            context=task.context,
                                            reset_mac=False)
        except Exception as e:
            LOG.warning('Could not unbind Neutron port %s of node %s: %s',
                        vif_id, task.node.uuid, e)

    # -- VIFs --
    def vif_attach(self, task, vif_info):
        vif_id = vif_info['id']
        port = _port_of_vif(task, vif_id)
        if port is not None and task.node.provision_state == states.ACTIVE:
            self._replug(task, port, vif_id)
            return
        port = common.get_free_port_like_object(task, vif_id, set(),
                                                vif_info)
        if isinstance(port, objects.Portgroup):
            raise ir_exc.VifInvalidForAttach(
                node=task.node.uuid, vif=vif_id,
                reason='the dpu network interface plugs VIFs on ports, not '
                       'portgroups')
        # validate first (the Neutron port is only read)
        vif = desired.vif_for_port(port, vif_id)
        mac = self._neutron_mac(task, vif_id)
        if mac:
            vif['mac'] = mac
        self._record_vif(port, vif_id, mac)
        if task.node.provision_state != states.ACTIVE:
            return
        try:
            self._bind(task, port, vif_id, seen=True)   # _neutron_mac read it
            _edit_vif(task, vif=vif)
        except Exception as e:
            self._clear_vif_from_port_like_obj(port)
            self._unbind(task, vif_id)
            raise ir_exc.NetworkError(
                'Could not hot-plug VIF %s on node %s: %s'
                % (vif_id, task.node.uuid, e))

    def _replug(self, task, port, vif_id):
        """Attach of a VIF a port of this running node already carries.

        vif_attach saves the VIF on the port before it calls the agent: a
        conductor that died in between (SIGKILL, host loss) leaves the VIF
        recorded but perhaps never plugged, and the operator's retry lands
        on the conductor that took the node over. Plug it again instead of
        refusing with VifAlreadyAttached: the agent's generation check makes
        a plug it already did a push of the whole state. A failed retry
        keeps the VIF recorded, as it was before.
        """
        mac = self._neutron_mac(task, vif_id)
        if mac and mac != port.internal_info.get(desired.VIF_MAC_KEY):
            # Recorded by an older conductor (port address), or changed.
            self._record_vif(port, vif_id, mac)
        vif = desired.vif_for_port(port, vif_id)
        LOG.info('Node %s: VIF %s is already on port %s; plugging it again',
                 task.node.uuid, vif_id, port.uuid)
        try:
            self._bind(task, port, vif_id, seen=True)   # _neutron_mac read it
            _edit_vif(task, vif=vif)
        except Exception as e:
            raise ir_exc.NetworkError(
                'Could not hot-plug VIF %s on node %s: %s'
                % (vif_id, task.node.uuid, e))

    def vif_detach(self, task, vif_id):
        port = self._get_port_like_obj_by_vif_id(task, vif_id)
        if (task.node.provision_state in (states.ACTIVE, states.DELETING)
                and _recorded_vif(task.node, vif_id)):
            try:
                _edit_vif(task, remove_vif=vif_id)
            except exception.DPUAgentError as e:
                raise ir_exc.NetworkError(
                    'Could not unplug VIF %s from node %s: %s'
                    % (vif_id, task.node.uuid, e))
        self._clear_vif_from_port_like_obj(port)
        self._unbind(task, vif_id)

    def port_changed(self, task, port_obj):
        vif_id = desired.port_vif_id(port_obj)
        changed = set(port_obj.obj_what_changed())
        if (not vif_id or not changed & _VIF_FIELDS
                or task.node.provision_state != states.ACTIVE):
            return
        vif = desired.vif_for_port(port_obj, vif_id)
        try:
            _edit_vif(task, vif=vif)
        except exception.DPUAgentError as e:
            raise ir_exc.NetworkError(
                'Could not re-plug VIF %s of port %s: %s'
                % (vif_id, port_obj.uuid, e))

    def portgroup_changed(self, task, portgroup_obj):
        """Portgroups are not used by the dpu interface."""

    def configure_tenant_networks(self, task):
        """Bind every VIF's Neutron port (plugging is done by deploy)."""
        for port in task.ports:
            vif_id = desired.port_vif_id(port)
            if vif_id:
                self._bind(task, port, vif_id)

    def unconfigure_tenant_networks(self, task):
        for port in task.ports:
            vif_id = desired.port_vif_id(port)
            if vif_id:
                self._unbind(task, vif_id)

    # No provisioning, cleaning, rescue or inspection networks: the host
    # never boots a ramdisk.
    def add_provisioning_network(self, task):
        pass

    def remove_provisioning_network(self, task):
        pass

    def add_cleaning_network(self, task):
        pass

    def remove_cleaning_network(self, task):
        pass

    def add_rescuing_network(self, task):
        pass

    def remove_rescuing_network(self, task):
        pass

    def add_inspection_network(self, task):
        pass

    def remove_inspection_network(self, task):
        pass
