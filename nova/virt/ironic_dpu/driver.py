"""Nova's ironic driver plus volume hot-plug through the node's DPU.

`openstack server add volume` / `server remove volume` / an in-use `volume
extend` reach a bare-metal server here. Nova's ironic driver cannot do them
(a host's disks are fixed once it boots); a node of Ironic's ``dpu``
hardware type can, because its DPU emulates the host's NVMe disks:

* attach: create the node's Ironic volume target (type nvmeof, properties =
  Cinder's connection data, a negative boot_index = a data disk), push the
  node's state to its agent (vendor passthru ``sync_state``), then poll the
  agent (passthru ``agent_state``) until it reports the volume attached;
* detach: vendor passthru ``detach_volume`` (Ironic's volume target API
  refuses deletions on a powered-on node), then poll until it is gone;
* extend: Cinder grew the volume; push the state so the agent looks again,
  then poll until the agent reports at least the new size.

A server booted from a Cinder volume also moves to another node (cold
migrate, resize to another bare-metal flavor, revert, confirm): nothing of
it lives in the source machine, its disks are Cinder volumes and its NICs
Neutron ports, both served by the node's DPU. Ironic keeps a node's
instance_uuid unique, so the source node is released (host off, undeployed:
its agent detached the volumes and unplugged the VIFs; volume targets
deleted, VIFs detached) before the destination node is deployed with the
same volumes (Cinder attachments re-made by Nova with the destination's
connector) and ports (rebound to the destination DPU's chassis on VIF
attach). A node used by an instance is not reserved in Placement (Nova's
ironic driver reserves it, which makes Placement refuse to move the
instance's allocation to the migration); see update_provider_tree.
A server's disks are Cinder volumes and its NICs Neutron ports, so it can
land on another node (see _land, rebuild):

* unshelve: Nova connects the volumes before the claim names the node (the
  connector comes from the node Placement allocated) and then only calls
  spawn: spawn does what a build does first (reserve the node, attach the
  VIFs to it), and releases the node if the deploy fails;
* evacuate: fence the failed node first (its DPU told to drop everything,
  best effort and bounded; its Cinder attachments replaced, so the target
  removes the exports its DPU used; the node released in Ironic), then
  connect the volumes for the new node and deploy it as a build would.

Every wait is bounded ([ironic_dpu] volume_timeout). A refusal or an agent
error raises Nova's VolumeAttachFailed / VolumeDetachFailed /
VolumeExtendFailed with the agent's reason: Nova records it as the
instance action's event details, which the tenant can read.
"""
import re
import time

from ironicclient import exc as ironic_exc
from oslo_config import cfg
from oslo_log import log as logging
from oslo_serialization import jsonutils
from oslo_utils import excutils

from nova.compute import task_states
from nova.compute import utils as compute_utils
from nova.compute import vm_states
import nova.conf
from nova import block_device
from nova import context as nova_context
from nova import exception
from nova.objects import fields as obj_fields
from nova.objects import instance as instance_obj
from nova.objects import migration as migration_obj
from nova.scheduler.client import report
from nova.virt import driver as virt_driver
from nova.virt.ironic import driver as ironic_driver
from nova.virt.ironic import ironic_states

LOG = logging.getLogger(__name__)
CONF = nova.conf.CONF

opts = [
    cfg.IntOpt('volume_timeout', default=60, min=1,
               help='Seconds attach, detach and extend wait for the DPU '
                    'agent to report the volume attached, gone or at its '
                    'new size.'),
    cfg.FloatOpt('poll_interval', default=0.5, min=0.05,
                 help='Seconds between polls of the agent\'s state.'),
    cfg.IntOpt('move_timeout', default=300, min=1,
               help='Seconds a cold migration, resize or revert waits for '
                    'the node it leaves to be undeployed and released, and '
                    'for the node it goes to to become available (e.g. '
                    'after automated cleaning).'),
]
CONF.register_opts(opts, group='ironic_dpu')

VOLUME_TYPE = 'nvmeof'
NQN_CONNECTOR = 'nqn'


# Nova cuts fault and event messages at 255 characters: drop what the
# tenant's server already says (which node) and HTTP noise, keep the reason.
_AGENT_PREFIX = re.compile(r'DPU agent of node [0-9a-fA-F-]{36} failed \w+: ')
_HTTP_SUFFIX = re.compile(r'\s*\(HTTP \d{3}\)\s*$')


def tenant_reason(text):
    """The agent's reason from an Ironic error, without the node UUID."""
    return _HTTP_SUFFIX.sub('', _AGENT_PREFIX.sub('DPU agent: ', str(text)))


class AgentError(Exception):
    """The agent reported the volume in error, or did not converge."""


def _body(res):
    # ironicclient wraps a passthru's JSON answer in a resource object
    return res.to_dict() if hasattr(res, 'to_dict') else res


def find_volume(answer, volume_id):
    """The agent's observed entry of volume_id in an agent_state answer."""
    observed = ((answer or {}).get('state') or {}).get('observed') or {}
    for vol in observed.get('volumes') or []:
        if vol.get('volume_id') == volume_id:
            return vol
    return None


def volume_id_of(connection_info):
    return (connection_info.get('serial')
            or (connection_info.get('data') or {}).get('volume_id'))


def free_data_index(targets):
    """A negative boot_index unused on the node (Ironic: unique per node;
    the dpu driver: negative = not a boot disk)."""
    return _next_negative({t.boot_index for t in targets})


def _next_negative(used):
    idx = -1
    while idx in used:
        idx -= 1
    return idx


def attached(vol):
    return vol is not None and vol.get('state') == 'attached'


def gone(vol):
    return vol is None


# Ironic lets a node in these states be undeployed (Nova's destroy list).
UNDEPLOY_STATES = ironic_driver._UNPROVISION_STATES


class MoveError(Exception):
    """A node did not reach the state a move needs (reason inside)."""


def vif_ids(network_info):
    return [str(vif['id']) for vif in network_info or []]


def volume_backed(block_device_info):
    """Whether the server boots from a volume (a boot_index 0 mapping)."""
    return block_device.get_root_bdm(virt_driver.block_device_info_get_mapping(
        block_device_info)) is not None


def _deployable(node):
    """Whether node can take an instance now; MoveError if waiting will
    not make it (maintenance, failed cleaning, another instance)."""
    if node.maintenance:
        raise MoveError('in maintenance (%s)' % (node.maintenance_reason or
                                                 'no reason given'))
    if node.instance_uuid:
        raise MoveError('holds instance %s' % node.instance_uuid)
    if node.provision_state in (ironic_states.CLEANFAIL, ironic_states.ERROR):
        raise MoveError('provision state %s: %s' % (
            node.provision_state, tenant_reason(node.last_error)))
    return node.provision_state == ironic_states.AVAILABLE


def _released(instance_uuid):
    def done(node):
        if node.instance_uuid != instance_uuid:
            return True    # Ironic's tear down cleared it
        if node.provision_state in (ironic_states.ERROR,
                                    ironic_states.DEPLOYFAIL):
            raise MoveError('undeploy failed: %s'
                            % tenant_reason(node.last_error))
        return False
    return done


def sized(size):
    def done(vol):
        return attached(vol) and int(vol.get('size_bytes') or 0) >= size
    return done


def allocated_nodes(allocations, exclude=None):
    """Resource providers holding the instance's allocations, but exclude:
    an Ironic node's resource provider has the node's UUID."""
    return sorted(rp for rp in (allocations or {}) if rp != exclude)


def on_node(instance, node):
    """A copy of instance on node: what the node-specific calls of Nova's
    driver read (instance.node) before the claim or the evacuation's end
    record the node on the instance itself."""
    copy = instance.obj_clone()
    copy.node = node
    return copy


class IronicDPUDriver(ironic_driver.IronicDriver):

    capabilities = dict(ironic_driver.IronicDriver.capabilities,
                        supports_extend_volume=True,
                        supports_evacuate=True)

    # ---------------------------------- a server onto / off an Ironic node
    # Shared by every move (migrate/resize, revert, unshelve, evacuate): a
    # server's disks and NICs live in Cinder and Neutron, so "moving" it is
    # releasing one node (_release_node) and deploying another (_land).
    def _release_node(self, instance, node_uuid, vifs):
        """Leave node_uuid without instance: undeployed if it was deployed
        (the dpu deploy interface's tear down has the agent detach every
        volume and unplug every VIF, then powers the host off), its
        instance_uuid unset, its volume targets deleted and the VIFs vifs
        detached. Idempotent; a node another instance took is left alone.

        If the undeploy or a volume target's deletion fails, the rest still
        goes and the node's (now emptied) state is pushed to its agent, so
        that nothing stays attached on the DPU; the first error is raised.
        """
        node = self.ironicclient.call('node.get', node_uuid)
        if node.instance_uuid not in (None, instance.uuid):
            LOG.info('Node %s now holds instance %s: not releasing it',
                     node_uuid, node.instance_uuid, instance=instance)
            return
        failure = None
        try:
            if node.instance_uuid and node.provision_state in UNDEPLOY_STATES:
                self.ironicclient.call('node.set_provision_state', node_uuid,
                                       'deleted')
                self._wait_node(node_uuid, _released(instance.uuid),
                                'undeployed')
            elif node.instance_uuid:
                self.ironicclient.call('node.update', node_uuid, [
                    {'op': 'remove', 'path': '/instance_info'},
                    {'op': 'remove', 'path': '/instance_uuid'}])
        except Exception as e:
            failure = e
        refused = self._remove_volume_targets(node_uuid, instance)
        failure = failure or refused
        on_node = {v.id for v in self.ironicclient.call('node.vif_list',
                                                         node_uuid)}
        for vif in vifs:
            if vif in on_node:
                self.ironicclient.call('node.vif_detach', node_uuid, vif)
        if failure is None:
            LOG.info('Node %s released', node_uuid, instance=instance)
            return
        try:
            self._passthru(node_uuid, 'sync_state')
        except Exception as e:
            LOG.error('Pushing the emptied state of node %s to its agent '
                      'failed: %s', node_uuid, e, instance=instance)
        raise failure

    def _release_for_move(self, instance, node_uuid, network_info, which):
        """_release_node for a move step: Nova's MigrationError, with the
        reason the tenant can read."""
        try:
            self._release_node(instance, node_uuid, vif_ids(network_info))
        except Exception as e:
            raise exception.MigrationError(
                reason='releasing the %s node failed: %s'
                % (which, tenant_reason(e))) from e

    def _wait_node(self, node_uuid, done, what):
        """Poll node_uuid until done(node) is true (done raises MoveError
        when the node went where it will not come back from); bounded by
        [ironic_dpu] move_timeout."""
        deadline = time.monotonic() + CONF.ironic_dpu.move_timeout
        while True:
            node = self.ironicclient.call('node.get', node_uuid)
            if done(node):
                return node
            if time.monotonic() >= deadline:
                raise MoveError(
                    'not %s within %ss (provision state %s)'
                    % (what, CONF.ironic_dpu.move_timeout,
                       node.provision_state))
            time.sleep(CONF.ironic_dpu.poll_interval)

    # ---------------------------------------------------------- helpers
    def _passthru(self, node, method, args=None, http_method='POST'):
        return _body(self.ironicclient.call(
            'node.vendor_passthru', node, method, args=args,
            http_method=http_method))

    def _wait_volume(self, node, volume_id, done, what):
        """Poll the agent until done(observed volume); raise AgentError."""
        deadline = time.monotonic() + CONF.ironic_dpu.volume_timeout
        while True:
            vol = find_volume(self._passthru(node, 'agent_state',
                                             http_method='GET'), volume_id)
            if done(vol):
                return vol
            if vol is not None and vol.get('state') == 'error':
                raise AgentError('DPU agent: %s' % (vol.get('last_error')
                                                    or 'error'))
            if time.monotonic() >= deadline:
                raise AgentError(
                    'the DPU agent did not report the volume %s within %ss '
                    '(last seen: %s)' % (what, CONF.ironic_dpu.volume_timeout,
                                         vol))
            time.sleep(CONF.ironic_dpu.poll_interval)

    def _ensure_target(self, node, volume_id, connection_info):
        """Create the volume target unless the node has one (a retry)."""
        targets = self.ironicclient.call('node.list_volume_targets', node,
                                         detail=True)
        if any(t.volume_id == volume_id for t in targets):
            return
        self.ironicclient.call(
            'volume_target.create', node_uuid=node, volume_type=VOLUME_TYPE,
            properties=connection_info['data'], volume_id=volume_id,
            boot_index=free_data_index(targets))

    def _add_volume_target_info(self, context, instance, block_device_info):
        """Nova's, but each data disk gets its own negative boot_index:
        Nova marks them all -1 and Ironic keeps boot_index unique per node,
        so a second data disk at boot failed with Conflict."""
        used = set()
        for bdm in virt_driver.block_device_info_get_mapping(
                block_device_info):
            if not bdm.is_volume:
                continue
            obj = bdm._bdm_obj
            index = obj.boot_index
            if index is None or index < 0:
                index = _next_negative(used)
            used.add(index)
            info = jsonutils.loads(obj.connection_info)
            try:
                self.ironicclient.call(
                    'volume_target.create', node_uuid=instance.node,
                    volume_type=info['driver_volume_type'],
                    properties=info['data'], boot_index=index,
                    volume_id=obj.volume_id)
            except (ironic_exc.BadRequest, ironic_exc.Conflict) as e:
                raise exception.InstanceDeployFailure(
                    'Volume %s: Ironic refused its volume target: %s'
                    % (obj.volume_id, tenant_reason(e))) from e

    # ---------------------------------------------------------- virt API
    def get_volume_connector(self, instance):
        """Nova's connector plus the DPU's host NQN (connector type nqn),
        which NVMe-oF back ends that allow-list hosts need."""
        if not instance.node:
            instance = on_node(instance, self._allocated_node(instance))
        props = super().get_volume_connector(instance)
        conns = self.ironicclient.call('node.list_volume_connectors',
                                       instance.node, detail=True)
        nqns = [c.connector_id for c in conns if c.type == NQN_CONNECTOR]
        if nqns:
            props['nqn'] = nqns[0]
        return props

    def attach_volume(self, context, connection_info, instance, mountpoint,
                      disk_bus=None, device_type=None, encryption=None):
        volume_id = volume_id_of(connection_info)
        vtype = connection_info.get('driver_volume_type')
        if vtype != VOLUME_TYPE:
            raise exception.VolumeAttachFailed(
                volume_id=volume_id, reason='the DPU attaches %s volumes '
                'only, not %s' % (VOLUME_TYPE, vtype))
        if encryption:
            raise exception.VolumeAttachFailed(
                volume_id=volume_id, reason='encrypted volumes are not '
                'supported on bare metal')
        node = instance.node
        try:
            self._ensure_target(node, volume_id, connection_info)
            self._passthru(node, 'sync_state')
            self._wait_volume(node, volume_id, attached, 'attached')
        except Exception as e:
            reason = tenant_reason(e)
            LOG.warning('Attaching volume %s to node %s failed: %s',
                        volume_id, node, reason, instance=instance)
            self._undo_attach(node, volume_id, instance)
            raise exception.VolumeAttachFailed(volume_id=volume_id,
                                               reason=reason) from e
        LOG.info('Volume %s attached to node %s through its DPU', volume_id,
                 node, instance=instance)

    def _undo_attach(self, node, volume_id, instance):
        # Nova deletes the Cinder attachment: the DPU must not keep trying.
        try:
            self._passthru(node, 'detach_volume', {'volume_id': volume_id})
        except Exception as e:
            LOG.error('Could not roll back volume %s on node %s: %s',
                      volume_id, node, e, instance=instance)

    def detach_volume(self, context, connection_info, instance, mountpoint,
                      encryption=None):
        volume_id = volume_id_of(connection_info)
        node = instance.node
        try:
            self._passthru(node, 'detach_volume', {'volume_id': volume_id})
            self._wait_volume(node, volume_id, gone, 'detached')
        except Exception as e:
            raise exception.VolumeDetachFailed(volume_id=volume_id,
                                               reason=tenant_reason(e)) from e
        LOG.info('Volume %s detached from node %s', volume_id, node,
                 instance=instance)

    def extend_volume(self, context, connection_info, instance,
                      requested_size):
        volume_id = volume_id_of(connection_info)
        node = instance.node
        try:
            # the agent reads the DPU bdev's size when it reconciles
            self._passthru(node, 'sync_state')
            vol = self._wait_volume(node, volume_id, sized(requested_size),
                                    'at %d bytes' % requested_size)
        except Exception as e:
            raise exception.VolumeExtendFailed(volume_id=volume_id,
                                               reason=tenant_reason(e)) from e
        LOG.info('Volume %s on node %s is now %s bytes', volume_id, node,
                 vol.get('size_bytes'), instance=instance)

    def quiesce(self, context, instance, image_meta):
        """Before Nova snapshots the server's volumes: the DPU pauses the
        host's emulated NVMe controllers (vendor passthru ``quiesce``), so
        no write is in flight while Cinder takes the snapshots. Nova goes
        on without quiescing when this raises a NovaException (unless the
        image requires it); the agent resumes by itself after a bounded
        hold if unquiesce never comes."""
        self._quiesce_call(instance, 'quiesce')

    def unquiesce(self, context, instance, image_meta):
        """After the snapshots: the DPU resumes the host's controllers."""
        self._quiesce_call(instance, 'unquiesce')

    def _quiesce_call(self, instance, method):
        node = instance.node
        try:
            answer = self._passthru(node, method)
        except Exception as e:
            reason = tenant_reason(e)
            LOG.warning('%s of node %s failed: %s', method, node, reason,
                        instance=instance)
            # Nova's own class (RPC rebuilds only nova.exception ones), with
            # the agent's reason instead of its fixed message
            raise exception.InstanceQuiesceNotSupported(
                message='%s on the DPU failed: %s' % (method, reason),
                instance_id=instance.uuid) from e
        LOG.info('Node %s %sd by its DPU: %s', node, method, answer,
                 instance=instance)

    def _wait_for_active(self, instance):
        """Nova's wait, with a fault message that keeps Ironic's reason:
        Nova cuts fault messages at 255 characters, and its prefix (with
        the instance UUID the fault already belongs to) used a quarter."""
        try:
            return super()._wait_for_active(instance)
        except exception.InstanceDeployFailure as e:
            prefix = 'Failed to provision instance %s: ' % instance.uuid
            msg = e.format_message()
            if not msg.startswith(prefix):
                raise
            raise exception.InstanceDeployFailure(
                'Deploy failed: %s' % tenant_reason(msg[len(prefix):])) from e

    # ------------------------------------------ cold migrate / resize
    def get_host_ip_addr(self):
        """The resource tracker records it as the migration's dest_host."""
        return CONF.my_ip

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        """Source side of a cold migration or resize: stop the host and
        release its node (Ironic lets only one node hold the instance), so
        that the destination node can be deployed with it.

        Refused before any change for a server not booted from a volume
        (its disk is the node's own): the server stays ACTIVE with a fault.
        A failed power off changes nothing either. A failed release leaves
        the server in ERROR (Nova) with nothing attached on the DPU.
        """
        node_uuid = instance.node
        if not volume_backed(block_device_info):
            raise exception.InstanceFaultRollback(
                inner_exception=exception.MigrationPreCheckError(
                    reason='only a server booted from a Cinder volume moves '
                           'to another bare-metal node (a local disk stays '
                           'with its machine)'))
        try:
            self.power_off(instance, timeout, retry_interval)
        except Exception as e:
            raise exception.InstanceFaultRollback(
                inner_exception=exception.MigrationError(
                    reason='powering off failed: %s' % tenant_reason(e))
            ) from e
        self._release_for_move(instance, node_uuid, network_info, 'source')
        # Nova hands this to finish_migration on the destination.
        return jsonutils.dumps({'source_node': node_uuid})

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None, power_on=True):
        """Destination side: deploy instance.node (the destination node,
        Nova set it) with the server's volumes and ports, in the (new)
        flavor Nova applied. A failure leaves that node released."""
        self._land(context, instance, image_meta, network_info,
                   block_device_info, power_on=power_on,
                   allocations=allocations)

    def confirm_migration(self, context, migration, instance, network_info):
        """migrate_disk_and_power_off released the source already; make
        sure of it (a node still holding the instance, volume targets or
        VIFs of it is released now)."""
        self._release_for_move(instance, migration.source_node,
                               network_info, 'source')

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True):
        """Back on the source: Nova destroyed the server on the destination
        node and set instance.node to the source node again; make sure the
        destination is released, then deploy the source node with the old
        flavor."""
        self._release_for_move(instance, migration.dest_node, network_info,
                               'destination')
        self._land(context, instance, instance.image_meta, network_info,
                   block_device_info, power_on=power_on)

    # ------------------------------------------------------- Placement
    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        """Nova's, except that a node holding an instance is not reserved.

        Nova's ironic driver reserves the one unit of a node that is in use
        or not available (and an ACTIVE node is "not available", so
        [workarounds] skip_reserve_in_use_ironic_nodes does not change it).
        The instance's allocation consumes that unit already; reserving it
        too makes Placement refuse every rewrite of that allocation, which
        a move makes (cold migrate and resize move it to the migration, a
        revert moves it back). A node without an instance is still reserved
        while not available (cleaning, maintenance, errors), as in Nova.
        """
        super().update_provider_tree(provider_tree, nodename, allocations)
        if not self._node_resources_used(self._node_from_cache(nodename)):
            return
        inventory = provider_tree.data(nodename).inventory
        for rc in inventory.values():
            rc['reserved'] = 0
        provider_tree.update_inventory(nodename, inventory)
    # ------------------------------------------- landing on another node
    def _allocated_node(self, instance):
        """The node Placement allocated to instance (unshelve: Nova
        connects the volumes before its claim records the node)."""
        allocs = report.report_client_singleton().get_allocations_for_consumer(
            nova_context.get_admin_context(), instance.uuid)
        nodes = allocated_nodes(allocs)
        if len(nodes) > 1:
            nodes = [n for n in nodes if n in self.node_cache]
        if len(nodes) != 1:
            raise exception.NovaException(
                'Instance %s: no single Ironic node among its Placement '
                'allocations (%s)' % (instance.uuid, ', '.join(
                    allocated_nodes(allocs)) or 'none'))
        return nodes[0]

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        if instance.vm_state != vm_states.SHELVED_OFFLOADED:
            return super().spawn(
                context, instance, image_meta, injected_files,
                admin_password, allocations, network_info=network_info,
                block_device_info=block_device_info, power_on=power_on,
                accel_info=accel_info)
        # unshelve: Nova's _unshelve_instance goes straight to spawn
        LOG.info('Unshelving onto node %s', instance.node, instance=instance)
        self._land(context, instance, image_meta, network_info,
                   block_device_info, power_on=power_on,
                   allocations=allocations, injected_files=injected_files,
                   admin_password=admin_password, accel_info=accel_info)

    def _land(self, context, target, image_meta, network_info,
              block_device_info, power_on=True, allocations=None,
              injected_files=None, admin_password=None, accel_info=None):
        """Deploy target onto the Ironic node target.node as a build does;
        every move lands here (migrate/resize and revert, unshelve,
        evacuate). Wait (bounded) until the node is available, reserve it
        (prepare_for_spawn sets its instance_uuid and refuses a busy node),
        attach the VIFs (the dpu network interface binds each port to the
        node's DPU chassis), then Nova's spawn: it creates the volume
        targets from block_device_info (whose connection_info Nova made
        with this node's connector) and deploys.

        A failure after the reservation releases that node (see
        _release_node: nothing of the server stays on it or its DPU; the
        caller deletes the Cinder attachments) and raises
        InstanceDeployFailure with a reason the tenant can read.
        """
        node_uuid = target.node
        try:
            self._wait_node(node_uuid, _deployable, 'available')
        except MoveError as e:
            raise exception.InstanceDeployFailure(
                reason='node %s: %s' % (node_uuid, e)) from e
        self.prepare_for_spawn(target)
        try:
            self.prepare_networks_before_block_device_mapping(target,
                                                              network_info)
            super().spawn(context, target, image_meta, injected_files or [],
                          admin_password, allocations,
                          network_info=network_info,
                          block_device_info=block_device_info,
                          power_on=power_on, accel_info=accel_info)
            if not power_on:    # Nova's ironic spawn always powers on
                self.power_off(target)
        except Exception as e:
            LOG.error('Deploying node %s failed: %s; releasing it', node_uuid,
                      e, instance=target)
            try:
                self._release_node(target, node_uuid, vif_ids(network_info))
            except Exception as undo:
                LOG.error('Releasing node %s after its failed deploy failed: '
                          '%s', node_uuid, undo, instance=target)
            if isinstance(e, exception.InstanceDeployFailure):
                raise
            raise exception.InstanceDeployFailure(
                reason=tenant_reason(e)) from e

    def _cleanup_deploy(self, node, instance, network_info=None,
                        remove_instance_info=True):
        """Nova's, but the volume targets removed are those of the node
        cleaned up, not of instance.node (another node while the server
        moves)."""
        self._remove_volume_targets(node.uuid, instance)
        self._unplug_vifs(node, instance, network_info)
        if remove_instance_info:
            self._remove_instance_info_from_node(node, instance)

    def _remove_volume_targets(self, node_uuid, instance):
        """Delete every volume target of node_uuid; a refusal is logged and
        the others still go. Returns the first refusal (None if none)."""
        refused = None
        for t in self.ironicclient.call('node.list_volume_targets',
                                        node_uuid, detail=True):
            try:
                self.ironicclient.call('volume_target.delete', t.uuid)
            except ironic_exc.NotFound:
                pass
            except ironic_exc.ClientException as e:
                LOG.warning('Could not remove volume target %s (volume %s) '
                            'of node %s: %s', t.uuid, t.volume_id, node_uuid,
                            e, instance=instance)
                refused = refused or e
        return refused

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        """Nova's, except for a server another compute owns now: a compute
        back from a failure destroys what it finds of the servers
        evacuated from it, and Ironic finds this one on its new node."""
        if instance.host and instance.host != CONF.host:
            LOG.warning('Not destroying: the server belongs to compute %s '
                        'now (node %s); this compute (%s) leaves it alone',
                        instance.host, instance.node, CONF.host,
                        instance=instance)
            return
        super().destroy(context, instance, network_info,
                        block_device_info=block_device_info,
                        destroy_disks=destroy_disks,
                        destroy_secrets=destroy_secrets)

    def instance_exists(self, instance):
        """Evacuate refuses a server that exists on this compute: the failed
        node still holding it belongs to the compute that failed."""
        if instance.host and instance.host != CONF.host:
            return False
        return super().instance_exists(instance)

    def rebuild(self, context, instance, image_meta, injected_files,
                admin_password, allocations, bdms, detach_block_devices,
                attach_block_devices, network_info=None, evacuate=False,
                block_device_info=None, preserve_ephemeral=False,
                accel_uuids=None, reimage_boot_volume=False):
        if not evacuate:
            return super().rebuild(
                context, instance, image_meta, injected_files,
                admin_password, allocations, bdms, detach_block_devices,
                attach_block_devices, network_info=network_info,
                evacuate=evacuate, block_device_info=block_device_info,
                preserve_ephemeral=preserve_ephemeral,
                accel_uuids=accel_uuids,
                reimage_boot_volume=reimage_boot_volume)
        self._evacuate(context, instance, image_meta, injected_files,
                       admin_password, allocations, bdms,
                       detach_block_devices, attach_block_devices,
                       network_info)

    def _evacuate(self, context, instance, image_meta, injected_files,
                  admin_password, allocations, bdms, detach_block_devices,
                  attach_block_devices, network_info):
        """Rebuild onto the node Placement allocated on this compute.

        Until the evacuation ends Nova keeps the failed node in
        instance.node; both nodes hold allocations of the server."""
        old = instance.node
        new = allocated_nodes(allocations, exclude=old)
        if len(new) != 1:
            raise exception.InstanceDeployFailure(
                'Evacuation of %s from node %s: no single new node among '
                'its Placement allocations (%s)' % (instance.uuid, old,
                                                    ', '.join(new) or 'none'))
        new = new[0]
        node = self._get_node(new)
        if (self._node_resources_used(node)
                or self._node_resources_unavailable(node)):
            raise exception.ComputeResourcesUnavailable(
                reason='Chosen ironic node %s is not available' % new)
        LOG.warning('Evacuating from node %s to node %s: fencing node %s '
                    'first', old, new, old, instance=instance)
        with compute_utils.EventReporter(context, 'ironic_dpu_fence_node',
                                         CONF.host, instance.uuid,
                                         graceful_exit=True):
            self._fence(context, instance, old, bdms, detach_block_devices)

        instance.task_state = task_states.REBUILD_BLOCK_DEVICE_MAPPING
        instance.save(expected_task_state=[task_states.REBUILDING])
        try:
            block_device_info = attach_block_devices(
                context, on_node(instance, new), bdms)
            instance.task_state = task_states.REBUILD_SPAWNING
            instance.save(expected_task_state=[
                task_states.REBUILD_BLOCK_DEVICE_MAPPING])
            self._land(context, on_node(instance, new), image_meta,
                       network_info, block_device_info,
                       allocations=allocations,
                       injected_files=injected_files,
                       admin_password=admin_password)
        except Exception:
            with excutils.save_and_reraise_exception():
                # the new node is released (_land); its DPU's attachments
                # go as the old ones did: nothing stays attached anywhere
                self._detach_quietly(context, instance, bdms,
                                     detach_block_devices)
        LOG.info('Evacuated from node %s to node %s', old, new,
                 instance=instance)

    def _fence(self, context, instance, old, bdms, detach_block_devices):
        """Make sure the failed node's host reaches none of the server's
        volumes before they are connected elsewhere.

        1. Its DPU agent, through Ironic (vendor passthru fence): Ironic
           forgets the node's volume targets and VIFs and records an empty
           state, which a DPU that comes back catches up with; a reachable
           agent drops its controllers and ports now. Best effort: the
           agent may be as dead as the node; Ironic bounds the call.
        2. Cinder, whatever 1 gave: each volume's attachment is replaced by
           a reserved one without connector, so the target removes the
           export the old DPU used.
        3. Ironic: the old node no longer holds the server (instance_uuid
           is unique, and the failed compute must not find it there).
        """
        try:
            agent = (self._passthru(old, 'fence') or {}).get('agent')
        except Exception as e:
            agent = 'not reached (%s)' % tenant_reason(e)
        else:
            if agent == 'dropped':   # it took the empty state: wait for it
                try:
                    self._wait_dropped(old)
                    agent = 'dropped every volume'
                except Exception as e:
                    agent = 'took the empty state, no confirmation (%s)' % (
                        tenant_reason(e))
        LOG.warning('Fencing node %s: its DPU agent %s', old, agent,
                    instance=instance)
        detach_block_devices(context, bdms)
        LOG.warning('Fencing node %s: Cinder attachments of volumes %s '
                    'replaced, their exports removed', old,
                    ', '.join(b.volume_id for b in bdms if b.is_volume),
                    instance=instance)
        self._remove_instance_info_from_node(self._get_node(old), instance)

    def _wait_dropped(self, node):
        """Poll the agent until it reports no volume (bounded)."""
        deadline = time.monotonic() + CONF.ironic_dpu.volume_timeout
        while True:
            observed = ((self._passthru(node, 'agent_state',
                                        http_method='GET') or {})
                        .get('state') or {}).get('observed') or {}
            if not observed.get('volumes'):
                return
            if time.monotonic() >= deadline:
                raise AgentError('still holds volumes %s after %ss' % (
                    [v.get('volume_id') for v in observed['volumes']],
                    CONF.ironic_dpu.volume_timeout))
            time.sleep(CONF.ironic_dpu.poll_interval)

    def init_host(self, host):
        """Nova's, then complete the evacuations from this compute's nodes
        that Nova cannot (see _complete_fenced_evacuations)."""
        super().init_host(host)
        self._complete_fenced_evacuations(host)

    def _complete_fenced_evacuations(self, host):
        """Finish the evacuations away from this compute whose failed node
        was fenced: record 'done' -> 'completed', and the server's
        allocation on that node removed.

        Nova does this itself when the source compute starts again, but
        only for a node it still owns; Ironic nodes move between compute
        services by hash ring, and the other service took the failed node's
        record over while this one was down. Nova then logs "source node
        not found" and leaves the record 'done': the API refuses to force
        this compute up again (with all its other nodes) and the repaired
        node stays consumed in Placement. An evacuation by this driver
        released the failed node in Ironic before the server landed
        elsewhere (see _fence): if that node no longer holds the server and
        the server runs on another compute, nothing of it is left here.
        Never fails the start: whatever cannot be checked is left to Nova.
        """
        ctx = nova_context.get_admin_context()
        try:
            migrations = migration_obj.MigrationList.get_by_filters(ctx, {
                'source_compute': host, 'status': 'done',
                'migration_type': obj_fields.MigrationType.EVACUATION})
        except Exception as e:
            LOG.warning('Could not list the evacuations from %s: %s', host, e)
            return
        for mig in migrations:
            try:
                self._complete_evacuation(ctx, host, mig)
            except Exception as e:
                LOG.warning('Evacuation %s of instance %s from node %s left '
                            'to Nova: %s', mig.uuid, mig.instance_uuid,
                            mig.source_node, e)

    def _complete_evacuation(self, ctx, host, mig):
        try:
            node = self.ironicclient.call('node.get', mig.source_node,
                                          fields=('uuid', 'instance_uuid'))
        except ironic_exc.NotFound:
            node = None
        if node is not None and node.instance_uuid == mig.instance_uuid:
            LOG.info('Evacuation %s: node %s still holds instance %s (not '
                     'fenced); left to Nova', mig.uuid, mig.source_node,
                     mig.instance_uuid)
            return
        inst = instance_obj.Instance.get_by_uuid(ctx, mig.instance_uuid)
        if inst.host in (None, host):
            LOG.info('Evacuation %s: instance %s is not on another compute '
                     '(host %s); left to Nova', mig.uuid, mig.instance_uuid,
                     inst.host)
            return
        report.report_client_singleton(
            ).remove_provider_tree_from_instance_allocation(
                ctx, mig.instance_uuid, mig.source_node)
        mig.status = 'completed'
        mig.save()
        LOG.warning('Evacuation %s of instance %s completed: node %s was '
                    'fenced and its allocation removed; the instance runs on '
                    '%s (node %s)', mig.uuid, mig.instance_uuid,
                    mig.source_node, inst.host, inst.node)

    def _detach_quietly(self, context, instance, bdms, detach_block_devices):
        try:
            detach_block_devices(context, bdms)
        except Exception as e:
            LOG.error('Could not delete the new Cinder attachments after a '
                      'failed evacuation: %s', e, instance=instance)
