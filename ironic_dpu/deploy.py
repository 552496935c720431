"""Deploy interface 'dpu': no ramdisk, no PXE, no image written, one boot.

The core deploy step tells the node's agent the desired state (volumes and
VIFs), waits until the boot disk is attached, sets the boot device to disk
and powers the host on. The host then boots its cloud disk through the
DPU's emulated NVMe controller.
"""
import time

from oslo_log import log

from ironic.common import exception as ir_exc
from ironic.common import states
from ironic.conductor import utils as manager_utils
from ironic.drivers import base

from ironic_dpu import agent_client
from ironic_dpu import boot
from ironic_dpu import desired
from ironic_dpu import exception

LOG = log.getLogger(__name__)


class DPUDeploy(base.DeployInterface):

    def get_properties(self):
        return {}

    def validate(self, task):
        state = desired.build(task)
        # An image-based instance (Nova --image sets instance_info
        # image_source) boots what the host's own disk or firmware holds; the
        # DPU still serves its NICs and any data volumes. Without an image
        # the host boots its nvmeof boot volume (boot_index 0).
        image_boot = bool(task.node.instance_info.get('image_source'))
        if not image_boot and not any(v.get('boot_index') == 0
                                      for v in state['volumes']):
            raise ir_exc.InvalidParameterValue(
                'Node %s has no boot volume: the dpu deploy interface boots '
                'from a volume target of type nvmeof with boot_index 0'
                % task.node.uuid)
        task.driver.storage.validate(task)

    def prepare(self, task):
        """Nothing to stage: the agent gets everything in deploy."""

    def clean_up(self, task):
        """Nothing staged by prepare; tear_down does the work."""

    @base.deploy_step(priority=100)
    def deploy(self, task):
        node = task.node
        state = desired.build(task)
        client = agent_client.AgentClient(node.uuid)
        task.driver.network.configure_tenant_networks(task)
        t0 = time.monotonic()
        result = desired.push(task, state, client=client)
        state = node.driver_internal_info[desired.STATE_KEY]
        desired.wait_converged(task, state, result, client=client)
        # The bench reads this line: the DPU's share of the deploy step.
        LOG.info('Node %s: DPU agent converged generation %s in %.3fs',
                 node.uuid, state['generation'], time.monotonic() - t0)
        boot.set_boot_disk(task)
        # Reboot a host that is already on so it enumerates the new disk.
        if node.power_state == states.POWER_ON:
            manager_utils.node_power_action(task, states.REBOOT)
        else:
            manager_utils.node_power_action(task, states.POWER_ON)
        LOG.info('Node %s deployed through its DPU: %d volume(s), %d VIF(s)',
                 node.uuid, len(state['volumes']), len(state['vifs']))
        return None

    def tear_down(self, task):
        """Detach volumes and unplug VIFs, then power the host off.

        The DPU goes first: on servers whose DPU is powered from the host,
        the agent is gone once the host is off.
        """
        node = task.node
        client = agent_client.AgentClient(node.uuid)
        state = {'node_uuid': node.uuid, 'volumes': [], 'vifs': []}
        t0 = time.monotonic()
        result = desired.push(task, state, client=client)
        state = node.driver_internal_info[desired.STATE_KEY]
        desired.wait_converged(task, state, result, client=client)
        LOG.info('Node %s: DPU agent converged generation %s in %.3fs',
                 node.uuid, state['generation'], time.monotonic() - t0)
        manager_utils.node_power_action(task, states.POWER_OFF)
        task.driver.network.unconfigure_tenant_networks(task)
        return states.DELETED

    def take_over(self, task):
        """Another conductor owns the node now: re-assert its state.

        An unreachable agent is not fatal; it restores its persisted state
        and the recorded one is in driver_internal_info.
        """
        if task.node.provision_state != states.ACTIVE:
            return
        state = desired.build(task)
        try:
            desired.push(task, state)
        except exception.DPUAgentUnreachable as e:
            LOG.warning('Take-over of node %s: %s', task.node.uuid, e)
