"""Deploy interface 'dpu': no ramdisk, no PXE, no image written, one boot.

One deploy step. It pushes the desired state (volumes and VIFs) to the
node's agent, which admits it at once, and polls get_state for a bounded
[dpu_agent] inline_wait (the agent usually converges in milliseconds): once
the agent converged on the pushed generation (boot disk attached) the step
sets the boot device to disk and powers the host on, in the same worker.
Otherwise the step returns DEPLOYWAIT: nothing waits longer under the node
lock. A periodic task finds the nodes in DEPLOYWAIT from the database, asks
their agents concurrently (a dead DPU costs the pass one ping_timeout, not
one each), and locks only those with news; once an agent converged it
resumes the deploy, which runs the step again
(skip_current_deploy_step False, as Ironic's own async steps do) and the
step boots the host. The host then boots its cloud disk through the DPU's
emulated NVMe controller. An agent error, or no convergence within
[dpu_agent] state_wait_timeout, fails the deploy with the agent's reason.

Booting inside the step instead of a step of its own saves Ironic's node
save per step on every deploy (the fleet bench's conductor is bound by its
DB writes).
"""
import time

from eventlet import patcher
import futurist
from futurist import waiters
from oslo_log import log

from ironic.common import exception as ir_exc
from ironic.common import states
from ironic.conductor import periodics
from ironic.conductor import task_manager
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic.drivers import base
from ironic.drivers.modules import deploy_utils

from ironic_dpu import agent_client
from ironic_dpu import boot
from ironic_dpu import desired
from ironic_dpu import exception

LOG = log.getLogger(__name__)


class DPUDeploy(base.DeployInterface):

    def __init__(self):
        super().__init__()
        # node uuid -> clock() when check_waiting last asked its agent.
        self._last_asked = {}

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
        """Nothing staged by prepare; tear_down does the work."""

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
            # Resumed by the periodic: the agent is there already.
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

    @periodics.periodic(spacing=CONF.dpu_agent.state_check_interval)
    def _check_dpu_convergence(self, manager, context):
        """Resume or fail the deploys waiting on their agent (DEPLOYWAIT).

        Which nodes wait comes from the database alone (the wait record in
        driver_internal_info); their agents are then asked at once, each
        answer judged as it arrives, and only a node whose agent converged
        or failed, or whose wait expired, is locked.
        """
        waiting, lost = [], []
        for uuid, _drv, _grp, info in manager.iter_nodes(
                filters=_WAITING_FILTERS, fields=['driver_internal_info']):
            if _waiting(info):
                waiting.append((uuid, info))
            elif _resume_lost(info):
                lost.append(uuid)
        for uuid in lost:
            self._resume_lost_node(context, uuid)
        self.check_waiting(context, waiting)

    def _resume_lost_node(self, context, node_uuid):
        """Resume again a node whose converged deploy's resume was lost
        (_resume_lost); one node's failure does not end the pass."""
        try:
            with task_manager.acquire(context, node_uuid, shared=True,
                                      purpose=_PURPOSE) as task:
                if isinstance(task.driver.deploy, DPUDeploy):
                    self._resume_again(task)
        except (ir_exc.NodeNotFound, ir_exc.NodeLocked) as e:
            LOG.info('Node %s: %s; its lost resume is retried next pass',
                     node_uuid, e)
        except Exception:
            LOG.exception('Node %s: resuming its deploy again failed; '
                          'retrying next pass', node_uuid)

    def check_waiting(self, context, waiting, clock=None):
        """One pass over waiting, a list of (node uuid, driver_internal_info).

        At most [dpu_agent] state_check_workers get_state calls are in
        flight, each bounded by ping_timeout, and none starts later than
        one ping_timeout after the pass began: unreachable agents cost the
        pass about one ping_timeout (two when they outnumber the workers),
        not one each. Nodes not asked this pass go first in the next
        (returned, for the tests). A failure on one node is logged and the
        node is retried next pass.
        """
        clock = clock or time.monotonic
        last = self._last_asked
        # Never asked or asked longest ago first, then the oldest wait.
        waiting = sorted(waiting, key=lambda w: (
            last.get(w[0], float('-inf')),
            _number(w[1][desired.WAIT_KEY].get('since'))))
        timeout = CONF.dpu_agent.ping_timeout
        deadline = clock() + timeout
        asked, unasked = {}, []
        workers = max(1, min(CONF.dpu_agent.state_check_workers,
                             len(waiting)))
        with _executor(workers) as pool:
            futures = {pool.submit(_ask, uuid, info, context, timeout,
                                   deadline, clock): (uuid, info)
                       for uuid, info in waiting}
            pending = set(futures)
            while pending:
                done, pending = waiters.wait_for_any(pending)
                for fut in done:
                    uuid, info = futures[fut]
                    asked[uuid] = clock()
                    try:
                        verdict = fut.result()
                        if verdict is None:
                            unasked.append(uuid)
                            asked[uuid] = last.get(uuid, float('-inf'))
                        elif _needs_lock(info, verdict):
                            self._settle_node(context, uuid, info, verdict)
                    except Exception:
                        LOG.exception('Node %s: checking its DPU agent\'s '
                                      'convergence failed; retrying next '
                                      'pass', uuid)
        if unasked:
            LOG.warning('%d of %d nodes in DEPLOYWAIT not asked within '
                        'ping_timeout (%ss; [dpu_agent] state_check_workers '
                        '%s): first in the next pass', len(unasked),
                        len(waiting), timeout,
                        CONF.dpu_agent.state_check_workers)
        # Only nodes still waiting: the record does not outgrow them.
        self._last_asked = asked
        return unasked

    def _settle_node(self, context, node_uuid, info, verdict):
        try:
            with task_manager.acquire(context, node_uuid, shared=True,
                                      purpose=_PURPOSE) as task:
                if not isinstance(task.driver.deploy, DPUDeploy):
                    return
                self.settle(task, info[desired.WAIT_KEY], verdict)
        except (ir_exc.NodeNotFound, ir_exc.NodeLocked) as e:
            LOG.info('Node %s: %s; its DPU agent\'s convergence is '
                     'checked again next pass', node_uuid, e)

    def settle(self, task, wait, verdict):
        """Act on the agent's verdict (errors, blocking, unbound) on the
        wait record wait, under the node's exclusive lock."""
        node = task.node
        errors, blocking, unbound = verdict
        task.upgrade_lock(purpose='resuming a deploy on a DPU')
        current = node.driver_internal_info.get(desired.WAIT_KEY)
        if (node.provision_state != states.DEPLOYWAIT or not current
                or current.get('converged')
                or current.get('generation') != wait['generation']
                or current.get('since') != wait['since']):
            return  # moved on (or pushed again) while we asked and locked
        reason = desired.failure_reason(errors, blocking)
        if reason:
            node.del_driver_internal_info(desired.WAIT_KEY)
            self._fail(task, wait['generation'], reason)
            return
        # The resumed step reads this and boots the host.
        node.set_driver_internal_info(
            desired.WAIT_KEY, dict(wait, converged=True, resumed=time.time()))
        node.save()
        desired.warn_unbound(task, unbound)
        self._converged(task, wait['generation'], wait['since'],
                        'in DEPLOYWAIT')
        manager_utils.notify_conductor_resume_deploy(task)

    def _resume_again(self, task):
        """Resume a converged deploy whose resume never ran.

        The resume is a cast to this conductor's own queue: a conductor
        killed after it saved the converged wait and before its worker took
        the cast leaves the node in DEPLOYWAIT with nothing to move it on.
        Once heartbeat_timeout passed, that conductor is off the hash ring
        and the node's new owner resumes it here (a live one runs its cast
        within seconds; a late duplicate finds the node moved on).
        """
        if not _resume_lost(task.node.driver_internal_info):
            return
        task.upgrade_lock(purpose='resuming a deploy on a DPU')
        node = task.node
        if (node.provision_state != states.DEPLOYWAIT
                or not _resume_lost(node.driver_internal_info)):
            return
        wait = node.driver_internal_info[desired.WAIT_KEY]
        LOG.warning('Node %s: its deploy was resumed (DPU agent converged '
                    'on generation %s) but is still waiting after %ss; '
                    'resuming it again', node.uuid, wait['generation'],
                    CONF.conductor.heartbeat_timeout)
        node.set_driver_internal_info(desired.WAIT_KEY,
                                      dict(wait, resumed=time.time()))
        node.save()
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

        The agent's answer is not fatal: an unreachable agent restores its
        persisted state and the recorded one is in driver_internal_info; a
        refusal is logged. Raising would leave the node's
        conductor_affinity unchanged, and every sync_local_state pass
        would take it over again, minting a generation each time.
        """
        if task.node.provision_state != states.ACTIVE:
            return
        state = desired.build(task)
        try:
            desired.push(task, state)
        except exception.DPUAgentError as e:
            LOG.warning('Take-over of node %s: %s', task.node.uuid, e)


_PURPOSE = 'checking DPU agent convergence'
_WAITING_FILTERS = {'provision_state': states.DEPLOYWAIT, 'reserved': False,
                    'maintenance': False}


def _executor(workers):
    """A pool for the get_state calls: green threads in the conductor
    (eventlet monkey-patched), OS threads elsewhere."""
    if patcher.is_monkey_patched('thread'):
        return futurist.GreenThreadPoolExecutor(max_workers=workers)
    return futurist.ThreadPoolExecutor(max_workers=workers)


def _number(value):
    return value if isinstance(value, (int, float)) else 0


def _waiting(info):
    """The wait record of a node whose deploy waits on its agent, or None.

    Database fields only (driver_internal_info; the record is ours alone):
    the periodic's filter before any RPC, lock or node load. A node already
    resumed (converged) waits for its step, not for the agent.
    """
    wait = (info or {}).get(desired.WAIT_KEY)
    if not isinstance(wait, dict) or wait.get('converged'):
        return None
    return wait


def _ask(node_uuid, info, context, timeout, deadline=None, clock=None):
    """(errors, blocking, unbound) of the wait recorded in info
    (driver_internal_info), from one get_state bounded by timeout; None
    when deadline (of clock) passed before the call could start."""
    if deadline is not None and (clock or time.monotonic)() >= deadline:
        return None
    generation = info[desired.WAIT_KEY]['generation']
    state = info.get(desired.STATE_KEY) or {}
    client = agent_client.AgentClient(node_uuid)
    try:
        # Short: get_state calls no backend, and a dead DPU must not hold
        # the periodic for the full RPC timeout.
        answer = client.get_state(context, timeout=timeout)
    except exception.DPUAgentUnreachable as e:
        # The agent may be restarting: keep waiting until the deadline.
        return [], [str(e)], []
    except exception.DPUAgentError as e:
        return [str(e)], [], []
    return desired.judge(state, generation, (answer or {}).get('observed'))


def _expired(wait):
    return (time.time() - wait['since']
            >= CONF.dpu_agent.state_wait_timeout)


def _needs_lock(info, verdict):
    """Does the verdict (errors, blocking, unbound) on info's wait call for
    the node's lock: converged, failed, or the wait expired?"""
    errors, blocking, unbound = verdict
    return bool(errors or not (blocking or unbound)
                or _expired(info[desired.WAIT_KEY]))


def _resume_lost(info):
    """Whether the wait in info (driver_internal_info) was resumed more
    than heartbeat_timeout ago and the node still waits: the conductor that
    resumed it died before its own resume cast ran (database fields only)."""
    wait = (info or {}).get(desired.WAIT_KEY)
    if not isinstance(wait, dict) or not wait.get('converged'):
        return False
    resumed = wait.get('resumed', wait.get('since', 0))
    return time.time() - _number(resumed) >= CONF.conductor.heartbeat_timeout
