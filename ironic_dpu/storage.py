"""Storage interface 'dpu': NVMe-oF volumes attached by the DPU.

Volume targets: volume_type 'nvmeof', properties = Cinder's connection
data. Connectors: type 'nqn' (the DPU's host NQN, what Cinder must allow).
Ironic calls attach_volumes before powering an ACTIVE node on and
detach_volumes after powering it off. A DPU powered from the host may be
down exactly then, so an agent that does not answer a short ping only gets
the state recorded in driver_internal_info (the agent restores its own
persisted state at boot, or pulls the recorded one from the Ironic API);
only an error answered by the agent fails the power action.
"""
from oslo_log import log

from ironic.common import exception as ir_exc
from ironic.drivers import base

from ironic_dpu import agent_client
from ironic_dpu import desired
from ironic_dpu import exception

LOG = log.getLogger(__name__)


class DPUStorage(base.StorageInterface):

    def get_properties(self):
        return {}

    def validate(self, task):
        targets = task.volume_targets
        for target in targets:
            desired.validate_target(target)
        if not targets:
            return
        nqns = [c for c in task.volume_connectors
                if c.type == desired.CONNECTOR_TYPE]
        if not nqns:
            raise ir_exc.StorageError(
                'Node %s has nvmeof volume targets but no volume connector '
                "of type 'nqn' (the DPU's host NQN)" % task.node.uuid)
        for c in nqns:
            if not str(c.connector_id).startswith('nqn.'):
                raise ir_exc.InvalidParameterValue(
                    'volume connector %s: %r is not an NVMe qualified name '
                    '(nqn.yyyy-mm.reverse.domain:...)' % (c.uuid,
                                                           c.connector_id))

    def should_write_image(self, task):
        return False

    def _push(self, task, state, what):
        client = agent_client.AgentClient(task.node.uuid)
        try:
            # A dead DPU's queue outlives it: ping with a short timeout
            # rather than leave a full-timeout apply_state queued for it.
            client.ping(task.context)
            return desired.push(task, state, client=client)
        except exception.DPUAgentUnreachable as e:
            desired.record(task, state)
            LOG.warning('%s for node %s recorded but not applied now: %s. '
                        'The agent restores it when it starts.',
                        what, task.node.uuid, e)
        except exception.DPUAgentError as e:
            raise ir_exc.StorageError(str(e))

    def attach_volumes(self, task):
        self._push(task, desired.build(task), 'Volume attachment')

    def detach_volumes(self, task):
        # The VIFs stay: only the disks follow Ironic's power-off detach.
        self._push(task, desired.build(task, volumes=False),
                   'Volume detachment')
