"""Deploy interface 'dpu': no ramdisk, no PXE, no image written, one boot.

One deploy step. It pushes the desired state (volumes and VIFs) to the
node's agent, which admits it at once, and polls get_state for a bounded
[dpu_agent] inline_wait (the agent usually converges in milliseconds): once
the agent converged on the pushed generation (boot disk attached) the step
sets the boot device to disk and powers the host on, in the same worker.
Otherwise the step returns DEPLOYWAIT: nothing waits longer under the node
lock. A periodic task polls the agent for nodes in DEPLOYWAIT; once the
agent converged it resumes the deploy, which runs the step again
(skip_current_deploy_step False, as Ironic's own async steps do) and the
step boots the host. The host then boots its cloud disk through the DPU's
emulated NVMe controller. An agent error, or no convergence within
[dpu_agent] state_wait_timeout, fails the deploy with the agent's reason.

Booting inside the step instead of a step of its own saves Ironic's node
save per step on every deploy (the fleet bench's conductor is bound by its
DB writes).
"""
import time

from oslo_log import log

from ironic.common import exception as ir_exc
from ironic.common import states
from ironic.conductor import periodics
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic.drivers import base
from ironic.drivers.modules import deploy_utils

from ironic_dpu import agent_client
from ironic_dpu import boot
from ironic_dpu import configdrive
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
        """Nothing to stage: the agent gets everything in deploy.

        A wait record left by a failed or aborted deploy must not make this
        deploy's step boot the host without pushing (saved with the step).
        """
        task.node.del_driver_internal_info(desired.WAIT_KEY)

    def clean_up(self, task):
        """Nothing staged by prepare; tear_down does the work. A config
        drive still published for the agent (a failed deploy) goes."""
        configdrive.unpublish(task.node)

    @base.deploy_step(priority=100)
    def deploy(self, task):
        """Push the desired state and give the agent inline_wait seconds.

        Converged by then (the usual case: the agent reconciles in
        milliseconds): boot the host and return None. Still pending:
        DEPLOYWAIT; the periodic check resumes the deploy, which runs this
        step again to boot the host.
        """
        node = task.node
        wait = node.driver_internal_info.get(desired.WAIT_KEY)
        if wait and wait.get('converged'):
            # Resumed by check_convergence: the agent is there already.
            node.del_driver_internal_info(desired.WAIT_KEY)
            self.boot_host(task)
            return None
        state = desired.build(task)
        client = agent_client.AgentClient(node.uuid)
        task.driver.network.configure_tenant_networks(task)
        since = time.time()
        # Not saved here: every way out of this step saves the node (the
        # next step, the DEPLOYWAIT transition, a failure): one DB write
        # per deploy less.
        # An agent of API 1.1 answers once converged (or inline_wait ran
        # out): usually no get_state poll at all.
        wait = CONF.dpu_agent.inline_wait
        result = desired.push(task, state, client=client, save=False,
                              wait=wait or None)
        state = node.driver_internal_info[desired.STATE_KEY]
        generation = state['generation']
        try:
            errors, blocking, unbound, _ = desired.poll(
                task, state, result, max(0.0, wait - (time.time() - since)),
                client=client, timeout=CONF.dpu_agent.ping_timeout)
        except exception.DPUAgentUnreachable as e:
            # Restarting agent: the periodic keeps asking until the deadline.
            errors, blocking, unbound = [], [str(e)], []
        if errors:
            self._fail(task, generation, '; '.join(errors))
            return None
        if blocking or unbound:
            desired.start_wait(task, generation, since=since)
            # The resume runs this step again (then it boots the host).
            node.set_driver_internal_info('skip_current_deploy_step', False)
            LOG.info('Node %s: DPU agent admitted generation %s; waiting in '
                     'DEPLOYWAIT for %s', node.uuid, generation,
                     ', '.join(blocking + unbound))
            return states.DEPLOYWAIT
        self._converged(task, generation, since, 'in the deploy step')
        self.boot_host(task)
        return None

    def _fail(self, task, generation, reason):
        deploy_utils.set_failed_state(
            task, 'DPU agent of node %s did not converge on generation %s: '
            '%s' % (task.node.uuid, generation, reason), collect_logs=False)

    def _converged(self, task, generation, since, where):
        # The agent holds the config drive now: its URL has done its job.
        configdrive.unpublish(task.node)
        # The bench and e2e read this line: the DPU's share of the deploy.
        LOG.info('Node %s: DPU agent converged generation %s in %.3fs (%s)',
                 task.node.uuid, generation, time.time() - since, where)

    def boot_host(self, task):
        """The agent converged: boot the host from its (DPU) disk."""
        node = task.node
        boot.set_boot_disk(task)
        # Reboot a host that is already on so it enumerates the new disk.
        if node.power_state == states.POWER_ON:
            manager_utils.node_power_action(task, states.REBOOT)
        else:
            manager_utils.node_power_action(task, states.POWER_ON)
        state = node.driver_internal_info.get(desired.STATE_KEY) or {}
        LOG.info('Node %s deployed through its DPU: %d volume(s), %d VIF(s)',
                 node.uuid, len(state.get('volumes') or []),
                 len(state.get('vifs') or []))

    @periodics.node_periodic(
        purpose='checking DPU agent convergence',
        spacing=CONF.dpu_agent.state_check_interval,
        filters={'provision_state': states.DEPLOYWAIT, 'reserved': False,
                 'maintenance': False},
        predicate_extra_fields=['driver_internal_info'],
        predicate=lambda n: _due(n.uuid, n.driver_internal_info),
    )
    def _check_dpu_convergence(self, task, manager, context):
        self.check_convergence(task)

    def check_convergence(self, task):
        """Resume, fail, or keep waiting for a node in DEPLOYWAIT."""
        node = task.node
        errors, blocking, unbound, expired = _poll(
            node.uuid, node.driver_internal_info, task.context)
        if not errors and (blocking or unbound) and not expired:
            return
        task.upgrade_lock(purpose='resuming a deploy on a DPU')
        wait = node.driver_internal_info.get(desired.WAIT_KEY)
        if (node.provision_state != states.DEPLOYWAIT or not wait
                or wait.get('converged')):
            return  # someone else moved it on while we waited for the lock
        reason = desired.failure_reason(errors, blocking)
        if reason:
            node.del_driver_internal_info(desired.WAIT_KEY)
            self._fail(task, wait['generation'], reason)
            return
        # The resumed step reads this and boots the host.
        node.set_driver_internal_info(desired.WAIT_KEY,
                                      dict(wait, converged=True))
        node.save()
        desired.warn_unbound(task, unbound)
        self._converged(task, wait['generation'], wait['since'],
                        'in DEPLOYWAIT')
        manager_utils.notify_conductor_resume_deploy(task)

    def tear_down(self, task):
        """Detach volumes and unplug VIFs, then power the host off.

        The DPU goes first: on servers whose DPU is powered from the host,
        the agent is gone once the host is off.
        """
        node = task.node
        client = agent_client.AgentClient(node.uuid)
        state = {'node_uuid': node.uuid, 'volumes': [], 'vifs': []}
        t0 = time.monotonic()
        # Not saved here: the power-off below saves the node (and Ironic's
        # failure handling does if anything raises): one DB write less.
        result = desired.push(task, state, client=client, save=False)
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


def _poll(node_uuid, info, context):
    """(errors, blocking, unbound, expired) of the wait recorded in info
    (driver_internal_info), from one get_state."""
    wait = info[desired.WAIT_KEY]
    state = info.get(desired.STATE_KEY) or {}
    expired = (time.time() - wait['since']
               >= CONF.dpu_agent.state_wait_timeout)
    client = agent_client.AgentClient(node_uuid)
    try:
        # Short: get_state calls no backend, and a dead DPU must not hold
        # the periodic for the full RPC timeout.
        answer = client.get_state(context, timeout=CONF.dpu_agent.ping_timeout)
    except exception.DPUAgentUnreachable as e:
        # The agent may be restarting: keep waiting until the deadline.
        return [], [str(e)], [], expired
    except exception.DPUAgentError as e:
        return [str(e)], [], [], expired
    errors, blocking, unbound = desired.judge(
        state, wait['generation'], (answer or {}).get('observed'))
    return errors, blocking, unbound, expired


def _due(node_uuid, info):
    """The periodic's lock-free pre-check: does this node need its lock?

    Only a node waiting on its agent (the wait record is ours alone) whose
    agent converged or failed, or whose wait expired: a still-pending node
    costs one get_state, no lock, no node load and no DB write. A node
    already resumed (converged) waits for its step, not for the agent.
    """
    wait = (info or {}).get(desired.WAIT_KEY)
    if not wait or wait.get('converged'):
        return False
    errors, blocking, unbound, expired = _poll(node_uuid, info, None)
    return bool(errors or expired or not (blocking or unbound))
