import contextlib
from unittest import mock

from ironic.common import boot_devices
from ironic.common import exception as ir_exc
from ironic.common import neutron
from ironic.common import states
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF
from ironic.drivers.modules import fake
from ironic.drivers.modules.network import noop as noop_net
from ironic.drivers.modules.storage import noop as noop_storage
from ironic import objects

from ironic_dpu import agent_client
from ironic_dpu import boot
from ironic_dpu import deploy
from ironic_dpu import desired
from ironic_dpu import exception
from ironic_dpu import hardware
from ironic_dpu import network
from ironic_dpu import storage
from ironic_dpu import vendor
from ironic_dpu.tests import base

ATTACHED = {'observed': {'generation': 1,
                         'volumes': [{'volume_id': 'boot', 'state': 'attached'}],
                         'vifs': [{'port_id': 'vif-1', 'state': 'plugged'}]}}


def unreachable():
    return exception.DPUAgentUnreachable(node='n', reason='no agent listening',
                                         exchange='e', topic='t', error='x')


def agent_error(text, cls='StorageError'):
    e = exception.DPUAgentError(node='n', method='apply_state', error=text)
    e.remote_class = cls
    return e


class AgentTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        p = mock.patch.object(agent_client, 'AgentClient', autospec=True)
        self.client_cls = p.start()
        self.addCleanup(p.stop)
        self.client = self.client_cls.return_value
        self.client.apply_state.return_value = ATTACHED
        self.client.get_state.return_value = ATTACHED
        for name in ('node_power_action', 'node_set_boot_device'):
            p = mock.patch.object(manager_utils, name, autospec=True)
            setattr(self, name, p.start())
            self.addCleanup(p.stop)

    def make_task(self, **node_kw):
        task = base.FakeTask(self.node(**node_kw),
                             [self.port(vif='vif-1'),
                              self.port(address='52:54:00:12:34:02')],
                             [self.target('boot', boot_index=0)],
                             [self.connector()])
        task.driver.management.get_supported_boot_devices.return_value = [
            boot_devices.PXE, boot_devices.DISK]
        return task


class DeployTests(AgentTestCase):
    # apply_state's answer: the view before the reconcile of generation 1.
    BEHIND = {'observed': dict(ATTACHED['observed'], generation=0)}

    def setUp(self):
        super().setUp()
        # One fake clock for time() and monotonic(); sleep() advances it.
        self.now = [1000.0]
        self.slept = []
        for name, fn in (('time', lambda: self.now[0]),
                         ('monotonic', lambda: self.now[0]),
                         ('sleep', self.sleep)):
            p = mock.patch.object(deploy.time, name, fn)
            p.start()
            self.addCleanup(p.stop)
        self.resume = self.patch(manager_utils,
                                 'notify_conductor_resume_deploy',
                                 autospec=True)
        self.failed = self.patch(deploy.deploy_utils, 'set_failed_state',
                                 autospec=True)

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now[0] += seconds

    def check(self, task):
        """One pass of the convergence periodic over task's node, which the
        pass locks as task."""
        iface = deploy.DPUDeploy()
        task.driver.deploy = iface
        with mock.patch.object(deploy.task_manager, 'acquire',
                               return_value=contextlib.nullcontext(task)):
            iface.check_waiting(task.context, [
                (task.node.uuid, task.node.driver_internal_info)])

    def periodic(self, task):
        """One whole pass of the convergence periodic, with task's node the
        only one this conductor maps, locked as task."""
        iface = deploy.DPUDeploy()
        task.driver.deploy = iface
        manager = mock.Mock()
        manager.iter_nodes.return_value = [
            (task.node.uuid, 'dpu', '', task.node.driver_internal_info)]
        with mock.patch.object(deploy.task_manager, 'acquire',
                               return_value=contextlib.nullcontext(task)):
            iface._check_dpu_convergence(manager, task.context)

    def deploying(self, **kw):
        """A task whose deploy step ran: the node waits in DEPLOYWAIT."""
        CONF.set_override('inline_wait', 0, group='dpu_agent')
        self.client.apply_state.return_value = self.BEHIND
        task = self.make_task(**kw)
        task.upgrade_lock = mock.Mock()
        self.assertEqual(states.DEPLOYWAIT, deploy.DPUDeploy().deploy(task))
        task.node.provision_state = states.DEPLOYWAIT
        return task

    def test_deploy_converged_goes_on_in_the_step(self):
        # apply_state answers before the reconcile (generation 0 seen); the
        # step polls quickly, boots the host and returns None: no
        # DEPLOYWAIT, no periodic, no second step.
        task = self.make_task()
        self.client.apply_state.return_value = self.BEHIND
        self.client.get_state.side_effect = [self.BEHIND, ATTACHED]
        with self.assertLogs('ironic_dpu.deploy', 'INFO') as logs:
            self.assertIsNone(deploy.DPUDeploy().deploy(task))
        self.assertEqual([0.05, 0.1], self.slept)
        self.client.get_state.assert_called_with(
            task.context, timeout=CONF.dpu_agent.ping_timeout)
        self.assertNotIn('dpu_wait', task.node.driver_internal_info)
        self.assertIn('converged generation 1 in 0.150s (in the deploy step)',
                      ''.join(logs.output))
        self.failed.assert_not_called()
        self.node_set_boot_device.assert_called_once_with(
            task, boot_devices.DISK, persistent=True)
        self.node_power_action.assert_called_once_with(task, states.POWER_ON)
        # Recorded, not saved here: Ironic saves the node after the step.
        self.assertEqual(1, task.node.driver_internal_info[
            'dpu_desired_state']['generation'])
        objects.Node.save.assert_not_called()

    def test_deploy_pending_goes_to_deploywait(self):
        CONF.set_override('inline_wait', 2, group='dpu_agent')
        task = self.make_task()
        pending = {'observed': {'generation': 1, 'volumes': [
            {'volume_id': 'boot', 'state': 'pending'}], 'vifs': []}}
        self.client.apply_state.return_value = pending
        self.client.get_state.return_value = pending
        self.assertEqual(states.DEPLOYWAIT, deploy.DPUDeploy().deploy(task))
        # Bounded: 2 s of polls growing to state_poll_interval (0.5 s).
        self.assertEqual([0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.25], self.slept)
        self.assertEqual(7, self.client.get_state.call_count)
        # The wait counts from the push, not from the end of the inline poll.
        self.assertEqual({'generation': 1, 'since': 1000.0},
                         task.node.driver_internal_info['dpu_wait'])
        # Ironic's resume runs this step again instead of the next one.
        self.assertIs(False, task.node.driver_internal_info[
            'skip_current_deploy_step'])
        self.failed.assert_not_called()
        self.node_power_action.assert_not_called()
        objects.Node.save.assert_not_called()  # process_event('wait') saves

    def test_deploy_agent_error_fails_in_the_step(self):
        task = self.make_task()
        self.client.apply_state.return_value = {'observed': {'generation': 0}}
        self.client.get_state.return_value = {'observed': {
            'generation': 1, 'volumes': [
                {'volume_id': 'boot', 'state': 'error',
                 'last_error': 'bdev_nvme_attach_controller: no route'}],
            'vifs': []}}
        self.assertIsNone(deploy.DPUDeploy().deploy(task))
        msg = self.failed.call_args.args[1]
        self.assertIn('did not converge on generation 1: volume boot: '
                      'bdev_nvme_attach_controller: no route', msg)
        self.assertEqual([0.05], self.slept)  # failed at the first answer
        self.assertNotIn('dpu_wait', task.node.driver_internal_info)
        self.node_power_action.assert_not_called()

    def test_deploy_unreachable_while_polling_waits_in_deploywait(self):
        task = self.make_task()
        self.client.apply_state.return_value = {'observed': {'generation': 0}}
        self.client.get_state.side_effect = unreachable()
        self.assertEqual(states.DEPLOYWAIT, deploy.DPUDeploy().deploy(task))
        self.assertEqual(1, self.client.get_state.call_count)
        self.assertIn('dpu_wait', task.node.driver_internal_info)
        self.failed.assert_not_called()

    def test_deploy_pushes_and_waits_without_sleeping(self):
        CONF.set_override('inline_wait', 0, group='dpu_agent')
        self.client.apply_state.return_value = self.BEHIND
        task = self.make_task()
        self.assertEqual(states.DEPLOYWAIT, deploy.DPUDeploy().deploy(task))
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual(['boot'], [v['volume_id'] for v in state['volumes']])
        self.assertEqual(['vif-1'], [v['port_id'] for v in state['vifs']])
        self.assertEqual(1, state['generation'])
        self.assertEqual({'generation': 1, 'since': 1000.0},
                         task.node.driver_internal_info['dpu_wait'])
        # inline_wait 0: no polling, no boot yet: the periodic resumes the
        # step, which boots then.
        self.client.get_state.assert_not_called()
        self.assertEqual([], self.slept)
        self.node_power_action.assert_not_called()
        self.node_set_boot_device.assert_not_called()
        self.client_cls.assert_called_with(base.NODE_UUID)
        task.driver.network.configure_tenant_networks.assert_called_once_with(task)

    def test_converged_resumes(self):
        task = self.deploying()
        self.now[0] += 2.5
        self.check(task)
        self.client.get_state.assert_called_once_with(
            task.context, timeout=CONF.dpu_agent.ping_timeout)
        task.upgrade_lock.assert_called_once()
        self.resume.assert_called_once_with(task)
        self.assertEqual({'generation': 1, 'since': 1000.0,
                          'converged': True, 'resumed': 1002.5},
                         task.node.driver_internal_info['dpu_wait'])
        self.assertEqual(1, objects.Node.save.call_count)
        self.failed.assert_not_called()
        self.node_power_action.assert_not_called()
        # Already resumed: the periodic leaves it to the step.
        self.assertIsNone(deploy._waiting(task.node.driver_internal_info))
        self.check(task)
        self.resume.assert_called_once_with(task)
        # The resumed step boots the host without pushing again.
        self.client.apply_state.reset_mock()
        self.assertIsNone(deploy.DPUDeploy().deploy(task))
        self.client.apply_state.assert_not_called()
        self.node_power_action.assert_called_once_with(task, states.POWER_ON)
        self.assertNotIn('dpu_wait', task.node.driver_internal_info)

    def test_lost_resume_is_resumed_again(self):
        # The conductor that resumed the deploy died before it ran its own
        # continue_node_deploy cast: once it is off the hash ring
        # (heartbeat_timeout), the node's new owner resumes it again.
        CONF.set_override('heartbeat_timeout', 10, group='conductor')
        task = self.deploying()
        self.periodic(task)
        self.resume.assert_called_once_with(task)
        info = task.node.driver_internal_info
        self.client.get_state.reset_mock()
        self.now[0] += 9
        self.assertFalse(deploy._resume_lost(info))
        self.periodic(task)
        self.resume.assert_called_once_with(task)
        self.now[0] += 1
        self.assertTrue(deploy._resume_lost(info))
        self.periodic(task)
        self.assertEqual(2, self.resume.call_count)
        self.assertEqual(2, task.upgrade_lock.call_count)
        self.assertEqual({'generation': 1, 'since': 1000.0,
                          'converged': True, 'resumed': 1010.0},
                         task.node.driver_internal_info['dpu_wait'])
        # The agent converged already: no RPC for a lost resume.
        self.client.get_state.assert_not_called()
        self.failed.assert_not_called()
        # Stamped again: not before another heartbeat_timeout.
        self.assertFalse(deploy._resume_lost(info))

    def test_lost_resume_of_a_node_moved_on(self):
        CONF.set_override('heartbeat_timeout', 10, group='conductor')
        task = self.deploying()
        self.periodic(task)
        self.now[0] += 10
        task.upgrade_lock.side_effect = lambda **k: setattr(
            task.node, 'provision_state', states.DEPLOYING)
        self.periodic(task)
        self.resume.assert_called_once_with(task)

    def test_prepare_forgets_a_wait_of_an_earlier_deploy(self):
        # A resumed-but-aborted deploy must not make the next one boot
        # without pushing its state.
        task = self.make_task()
        task.node.set_driver_internal_info(
            'dpu_wait', {'generation': 1, 'since': 1.0, 'converged': True})
        deploy.DPUDeploy().prepare(task)
        self.client.apply_state.return_value = ATTACHED
        self.assertIsNone(deploy.DPUDeploy().deploy(task))
        self.client.apply_state.assert_called_once()

    def test_older_generation_keeps_waiting(self):
        task = self.deploying()
        behind = {'observed': dict(ATTACHED['observed'], generation=0)}
        self.client.get_state.return_value = behind
        self.check(task)
        self.resume.assert_not_called()
        self.failed.assert_not_called()
        task.upgrade_lock.assert_not_called()
        self.assertIn('dpu_wait', task.node.driver_internal_info)

    def test_pending_volume_waits_then_times_out(self):
        CONF.set_override('state_wait_timeout', 30, group='dpu_agent')
        task = self.deploying()
        self.client.get_state.return_value = {'observed': {
            'generation': 1, 'volumes': [{'volume_id': 'boot',
                                          'state': 'pending'}],
            'vifs': [{'port_id': 'vif-1', 'state': 'plugged'}]}}
        self.check(task)
        self.resume.assert_not_called()
        self.failed.assert_not_called()
        self.now[0] += 31
        self.check(task)
        self.resume.assert_not_called()
        msg = self.failed.call_args.args[1]
        self.assertIn('not converged after 30s: volume boot', msg)
        self.assertNotIn('dpu_wait', task.node.driver_internal_info)

    def test_agent_error_fails_with_its_reason(self):
        task = self.deploying()
        self.client.get_state.return_value = {'observed': {
            'generation': 1, 'volumes': [
                {'volume_id': 'boot', 'state': 'error',
                 'last_error': 'bdev_nvme_attach_controller: no route'}],
            'vifs': []}}
        self.check(task)
        self.resume.assert_not_called()
        self.failed.assert_called_once()
        self.assertIn('volume boot: bdev_nvme_attach_controller: no route',
                      self.failed.call_args.args[1])
        self.assertFalse(self.failed.call_args.kwargs['collect_logs'])

    def test_component_error_fails(self):
        task = self.deploying()
        self.client.get_state.return_value = {'observed': {
            'generation': 1, 'volumes': [{'volume_id': 'boot',
                                          'state': 'attached'}],
            'vifs': [{'port_id': 'vif-1', 'state': 'plugged'}],
            'components': {'storage': {'generation': 1,
                                       'last_error': 'spdk: remove nsid 2'}}}}
        self.check(task)
        self.assertIn('storage: spdk: remove nsid 2',
                      self.failed.call_args.args[1])

    def test_unreachable_agent_waits_until_the_deadline(self):
        CONF.set_override('state_wait_timeout', 30, group='dpu_agent')
        task = self.deploying()
        self.client.get_state.side_effect = unreachable()
        self.check(task)
        self.failed.assert_not_called()
        self.now[0] += 30
        self.check(task)
        self.assertIn('no agent listening', self.failed.call_args.args[1])

    def test_unbound_vif_waits_then_continues(self):
        CONF.set_override('state_wait_timeout', 30, group='dpu_agent')
        task = self.deploying()
        self.client.get_state.return_value = {'observed': {
            'generation': 1, 'volumes': [{'volume_id': 'boot',
                                          'state': 'attached'}],
            'vifs': [{'port_id': 'vif-1', 'state': 'pending'}]}}
        self.check(task)
        self.resume.assert_not_called()
        self.now[0] += 30
        self.check(task)
        self.resume.assert_called_once_with(task)
        self.failed.assert_not_called()

    def test_node_moved_on_while_locking(self):
        task = self.deploying()
        task.upgrade_lock.side_effect = lambda **k: setattr(
            task.node, 'provision_state', states.DEPLOYFAIL)
        self.check(task)
        self.resume.assert_not_called()
        self.failed.assert_not_called()

    def test_pending_agent_is_not_locked(self):
        # A pending agent costs one get_state, no lock; converged, failed
        # or expired nodes are locked.
        CONF.set_override('state_wait_timeout', 30, group='dpu_agent')
        task = self.deploying()
        info = task.node.driver_internal_info
        pending = {'observed': {'generation': 1, 'volumes': [
            {'volume_id': 'boot', 'state': 'pending'}], 'vifs': []}}
        self.client.get_state.return_value = pending
        verdict = deploy._ask(task.node.uuid, info, None, 5)
        self.client.get_state.assert_called_once_with(None, timeout=5)
        self.assertFalse(deploy._needs_lock(info, verdict))
        self.client.get_state.return_value = ATTACHED
        self.assertTrue(deploy._needs_lock(
            info, deploy._ask(task.node.uuid, info, None, 5)))
        self.client.get_state.return_value = {'observed': {
            'generation': 1, 'volumes': [{'volume_id': 'boot',
                                          'state': 'error'}]}}
        self.assertTrue(deploy._needs_lock(
            info, deploy._ask(task.node.uuid, info, None, 5)))
        self.client.get_state.return_value = pending
        self.now[0] += 30
        self.assertTrue(deploy._needs_lock(
            info, deploy._ask(task.node.uuid, info, None, 5)))

    def test_boot_host_boots_from_disk(self):
        task = self.make_task()
        order = mock.Mock()
        self.node_set_boot_device.side_effect = lambda *a, **k: order.boot()
        self.node_power_action.side_effect = lambda *a, **k: order.power(a[1])
        self.assertIsNone(deploy.DPUDeploy().boot_host(task))
        self.assertEqual([mock.call.boot(), mock.call.power(states.POWER_ON)],
                         order.mock_calls)
        self.node_set_boot_device.assert_called_once_with(
            task, boot_devices.DISK, persistent=True)

    def test_boot_host_reboots_a_running_host(self):
        task = self.make_task(power_state=states.POWER_ON)
        deploy.DPUDeploy().boot_host(task)
        self.node_power_action.assert_called_once_with(task, states.REBOOT)

    def test_deploy_fails_before_power_on(self):
        task = self.make_task()
        self.client.apply_state.side_effect = unreachable()
        self.assertRaises(exception.DPUAgentUnreachable,
                          deploy.DPUDeploy().deploy, task)
        self.node_power_action.assert_not_called()
        self.node_set_boot_device.assert_not_called()
        self.assertNotIn('dpu_wait', task.node.driver_internal_info)

    def test_deploy_steps(self):
        steps = deploy.DPUDeploy().get_deploy_steps(mock.Mock())
        self.assertEqual([('deploy', 'deploy', 100)],
                         sorted([(s['interface'], s['step'], s['priority'])
                                 for s in steps], key=lambda s: -s[2]))

    def test_periodic_is_registered_for_deploywait(self):
        # Ironic collects an interface's periodics from these attributes.
        fn = deploy.DPUDeploy()._check_dpu_convergence
        self.assertTrue(getattr(fn, '_is_periodic', False))
        self.assertEqual(CONF.dpu_agent.state_check_interval,
                         fn._periodic_spacing)

    def test_tear_down(self):
        task = self.make_task(provision_state=states.DELETING)
        self.client.apply_state.return_value = {'observed': {
            'generation': 0, 'volumes': [{'volume_id': 'boot',
                                          'state': 'attached'}], 'vifs': []}}
        self.client.get_state.return_value = {'observed': {
            'generation': 1, 'volumes': [], 'vifs': []}}
        self.assertEqual(states.DELETED, deploy.DPUDeploy().tear_down(task))
        self.client.get_state.assert_called()  # waited for the agent
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual(([], []), (state['volumes'], state['vifs']))
        self.node_power_action.assert_called_once_with(task, states.POWER_OFF)
        task.driver.network.unconfigure_tenant_networks.assert_called_once_with(task)
        # Recorded for the power-off's save, not saved on its own.
        self.assertEqual(1, task.node.driver_internal_info[
            'dpu_desired_state']['generation'])
        objects.Node.save.assert_not_called()

    def test_tear_down_agent_error_keeps_power(self):
        task = self.make_task(provision_state=states.DELETING)
        self.client.apply_state.side_effect = agent_error('detach failed')
        self.assertRaises(exception.DPUAgentError,
                          deploy.DPUDeploy().tear_down, task)
        self.node_power_action.assert_not_called()

    def test_take_over_tolerates_unreachable(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.apply_state.side_effect = unreachable()
        deploy.DPUDeploy().take_over(task)
        self.assertEqual(1, task.node.driver_internal_info['dpu_desired_state']
                         ['generation'])

    def test_take_over_survives_a_refusal(self):
        # Raising would keep the old conductor_affinity: every
        # sync_local_state pass would take the node over again and mint a
        # generation.
        task = self.make_task(provision_state=states.ACTIVE,
                              driver_internal_info={'dpu_generation': 4})
        self.client.apply_state.side_effect = agent_error(
            'volume boot: unknown NVMe-oF transport', 'InvalidParameterValue')
        with self.assertLogs('ironic_dpu.deploy', 'WARNING') as logs:
            deploy.DPUDeploy().take_over(task)
        self.assertIn('unknown NVMe-oF transport', logs.output[0])
        self.client.apply_state.assert_called_once()
        self.assertEqual(5, task.node.driver_internal_info['dpu_generation'])

    def test_take_over_of_a_node_not_active_pushes_nothing(self):
        task = self.make_task(provision_state=states.DEPLOYWAIT)
        deploy.DPUDeploy().take_over(task)
        self.client.apply_state.assert_not_called()

    def test_validate_requires_boot_volume(self):
        task = self.make_task()
        task.volume_targets = [self.target('data')]
        e = self.raises(ir_exc.InvalidParameterValue,
                        deploy.DPUDeploy().validate, task)
        self.assertIn('no boot volume', str(e))
        task.volume_targets = [self.target('boot', boot_index=0)]
        deploy.DPUDeploy().validate(task)
        task.driver.storage.validate.assert_called_once_with(task)

    def test_validate_image_instance_needs_no_boot_volume(self):
        # Nova's `server create --image`: the DPU serves NICs (and data
        # volumes); the host boots what its own disk or firmware holds.
        task = self.make_task()
        task.volume_targets = []
        task.node.instance_info = {'image_source': 'glance-image-uuid'}
        deploy.DPUDeploy().validate(task)
        task.node.instance_info = {}
        self.raises(ir_exc.InvalidParameterValue,
                    deploy.DPUDeploy().validate, task)


class BootTests(AgentTestCase):

    def test_prepare_instance(self):
        task = self.make_task()
        boot.DPUBoot().prepare_instance(task)
        self.node_set_boot_device.assert_called_once_with(
            task, boot_devices.DISK, persistent=True)
        boot.DPUBoot().validate(task)

    def test_management_without_disk(self):
        task = self.make_task()
        task.driver.management.get_supported_boot_devices.return_value = [
            boot_devices.PXE]
        with self.assertLogs('ironic_dpu.boot', 'WARNING'):
            deploy.DPUDeploy().boot_host(task)
        self.node_set_boot_device.assert_not_called()
        self.node_power_action.assert_called_once_with(task, states.POWER_ON)


class StorageTests(AgentTestCase):

    def test_validate(self):
        s = storage.DPUStorage()
        task = self.make_task()
        s.validate(task)
        task.volume_connectors = [self.connector(ctype='iqn', cid='iqn.x')]
        self.assertRaises(ir_exc.StorageError, s.validate, task)
        task.volume_connectors = [self.connector(cid='host-1')]
        self.assertRaises(ir_exc.InvalidParameterValue, s.validate, task)
        task.volume_targets = [self.target('x', volume_type='iscsi')]
        self.assertRaises(ir_exc.InvalidParameterValue, s.validate, task)
        self.assertFalse(s.should_write_image(task))

    def test_attach_pushes_everything(self):
        task = self.make_task(provision_state=states.ACTIVE)
        storage.DPUStorage().attach_volumes(task)
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual((['boot'], ['vif-1']),
                         ([v['volume_id'] for v in state['volumes']],
                          [v['port_id'] for v in state['vifs']]))

    def test_detach_keeps_vifs(self):
        task = self.make_task(provision_state=states.ACTIVE)
        storage.DPUStorage().detach_volumes(task)
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual([], state['volumes'])
        self.assertEqual(['vif-1'], [v['port_id'] for v in state['vifs']])

    def test_unreachable_is_recorded_not_raised(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.apply_state.side_effect = unreachable()
        with self.assertLogs('ironic_dpu.storage', 'WARNING') as logs:
            storage.DPUStorage().attach_volumes(task)
        self.assertIn('recorded but not applied', logs.output[0])
        rec = task.node.driver_internal_info['dpu_desired_state']
        self.assertEqual(['boot'], [v['volume_id'] for v in rec['volumes']])

    def test_dead_dpu_does_not_get_a_queued_call(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.ping.side_effect = unreachable()
        storage.DPUStorage().detach_volumes(task)
        self.client.apply_state.assert_not_called()
        rec = task.node.driver_internal_info['dpu_desired_state']
        self.assertEqual(([], ['vif-1']), (rec['volumes'],
                                           [v['port_id'] for v in rec['vifs']]))

    def test_agent_error_is_storage_error(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.apply_state.side_effect = agent_error('bad portal')
        e = self.raises(ir_exc.StorageError, storage.DPUStorage().attach_volumes,
                        task)
        self.assertIn('bad portal', str(e))


class NetworkTests(AgentTestCase):

    def setUp(self):
        super().setUp()
        self.net = network.DPUNetwork()

    def test_attach_inactive_only_records(self):
        task = self.make_task(provision_state=states.AVAILABLE)
        self.net.vif_attach(task, {'id': 'vif-2'})
        self.assertEqual('vif-2', task.ports[1].internal_info['tenant_vif_port_id'])
        self.client.plug_vif.assert_not_called()
        self.assertEqual([{'id': 'vif-1'}, {'id': 'vif-2'}], self.net.vif_list(task))

    def test_attach_active_hot_plugs(self):
        task = self.make_task(provision_state=states.ACTIVE)
        task.ports[1].extra = {'dpu_function': 'pf0vf2'}
        self.net.vif_attach(task, {'id': 'vif-2'})
        self.client.plug_vif.assert_called_once_with(
            task.context, {'port_id': 'vif-2', 'mac': '52:54:00:12:34:02',
                           'function': {'pf': 0, 'vf': 2}},
            expected_generation=None)
        rec = task.node.driver_internal_info['dpu_desired_state']
        self.assertEqual(['vif-1', 'vif-2'], [v['port_id'] for v in rec['vifs']])

    def test_attach_names_the_recorded_generation(self):
        task = self.make_task(provision_state=states.ACTIVE,
                              driver_internal_info={'dpu_generation': 6})
        self.net.vif_attach(task, {'id': 'vif-2'})
        self.assertEqual(6, self.client.plug_vif.call_args.kwargs[
            'expected_generation'])
        # The agent's edit is 7; so is what the conductor records.
        rec = task.node.driver_internal_info['dpu_desired_state']
        self.assertEqual(7, rec['generation'])
        self.client.apply_state.assert_not_called()

    def test_attach_conflict_pushes_the_whole_state(self):
        task = self.make_task(provision_state=states.ACTIVE,
                              driver_internal_info={'dpu_generation': 6})
        self.client.plug_vif.side_effect = agent_error(
            'expected generation 6 but the agent holds 9', 'Conflict')
        self.client.apply_state.side_effect = [
            agent_error('generation 7 is older than 9', 'Conflict'),
            ATTACHED]
        self.client.get_state.return_value = {'desired': {'generation': 9}}
        self.net.vif_attach(task, {'id': 'vif-2'})
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual(10, state['generation'])
        self.assertEqual(['vif-1', 'vif-2'],
                         [v['port_id'] for v in state['vifs']])
        self.assertEqual('vif-2',
                         task.ports[1].internal_info['tenant_vif_port_id'])

    def test_attach_failure_rolls_back(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.plug_vif.side_effect = agent_error('no representor', 'NotFound')
        e = self.raises(ir_exc.NetworkError, self.net.vif_attach, task, {'id': 'vif-2'})
        self.assertIn('no representor', str(e))
        self.assertNotIn('tenant_vif_port_id', task.ports[1].internal_info)

    def test_attach_no_free_port(self):
        task = self.make_task(provision_state=states.ACTIVE)
        task.ports = task.ports[:1]
        self.assertRaises(ir_exc.NoFreePhysicalPorts, self.net.vif_attach,
                          task, {'id': 'vif-2'})

    def test_attach_twice_before_deploy_is_refused(self):
        # Nothing to plug yet: Ironic's answer (Nova takes it as attached).
        task = self.make_task(provision_state=states.AVAILABLE)
        self.assertRaises(ir_exc.VifAlreadyAttached, self.net.vif_attach,
                          task, {'id': 'vif-1'})
        self.client.plug_vif.assert_not_called()

    def test_attach_retry_on_a_running_node_plugs_again(self):
        # The conductor that saved vif-2 on the port died before the agent
        # call returned; the retry reaches the one that took the node over.
        # The agent did take the dead conductor's plug (generation 7): the
        # retry's plug names 6, is refused, and the whole state goes as 8.
        task = self.make_task(provision_state=states.ACTIVE,
                              driver_internal_info={'dpu_generation': 6})
        task.ports[1].internal_info = {'tenant_vif_port_id': 'vif-2'}
        self.client.plug_vif.side_effect = agent_error(
            'expected generation 6 but the agent holds 7', 'Conflict')
        self.client.apply_state.side_effect = [
            agent_error('generation 7 was already applied with other '
                        'content', 'Conflict'), ATTACHED]
        self.client.get_state.return_value = {'desired': {'generation': 7}}
        self.net.vif_attach(task, {'id': 'vif-2'})
        self.assertEqual({'port_id': 'vif-2', 'mac': '52:54:00:12:34:02'},
                         self.client.plug_vif.call_args.args[1])
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual(8, state['generation'])
        self.assertEqual(['vif-1', 'vif-2'],
                         [v['port_id'] for v in state['vifs']])
        rec = task.node.driver_internal_info
        self.assertEqual(8, rec['dpu_generation'])
        self.assertEqual(8, rec['dpu_desired_state']['generation'])

    def test_attach_retry_failure_keeps_the_vif(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.plug_vif.side_effect = unreachable()
        e = self.raises(ir_exc.NetworkError, self.net.vif_attach, task,
                        {'id': 'vif-1'})
        self.assertIn('no agent listening', str(e))
        self.assertEqual('vif-1',
                         task.ports[0].internal_info['tenant_vif_port_id'])

    def test_detach_active_unplugs(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.net.vif_detach(task, 'vif-1')
        self.client.unplug_vif.assert_called_once_with(
            task.context, 'vif-1', expected_generation=None)
        self.assertNotIn('tenant_vif_port_id', task.ports[0].internal_info)

    def test_detach_after_tear_down_skips_the_agent(self):
        # tear_down pushed a state without VIFs; Ironic then detaches each
        task = self.make_task(provision_state=states.DELETING)
        task.node.set_driver_internal_info(
            'dpu_desired_state', {'generation': 3, 'volumes': [], 'vifs': []})
        self.net.vif_detach(task, 'vif-1')
        self.client.unplug_vif.assert_not_called()
        self.assertEqual(3, task.node.driver_internal_info[
            'dpu_desired_state']['generation'])
        self.assertNotIn('tenant_vif_port_id', task.ports[0].internal_info)

    def test_detach_recorded_vif_unplugs(self):
        task = self.make_task(provision_state=states.DELETING)
        task.node.set_driver_internal_info(
            'dpu_desired_state', {'generation': 3, 'volumes': [],
                                  'vifs': [{'port_id': 'vif-1'}]})
        self.net.vif_detach(task, 'vif-1')
        self.client.unplug_vif.assert_called_once_with(
            task.context, 'vif-1', expected_generation=None)
        self.assertEqual([], task.node.driver_internal_info[
            'dpu_desired_state']['vifs'])

    def test_detach_failure_keeps_vif(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.unplug_vif.side_effect = unreachable()
        self.assertRaises(ir_exc.NetworkError, self.net.vif_detach, task, 'vif-1')
        self.assertEqual('vif-1', task.ports[0].internal_info['tenant_vif_port_id'])

    def test_detach_inactive(self):
        task = self.make_task(provision_state=states.AVAILABLE)
        self.net.vif_detach(task, 'vif-1')
        self.client.unplug_vif.assert_not_called()
        self.assertRaises(ir_exc.VifNotAttached, self.net.vif_detach, task, 'vif-1')

    def test_port_changed_replugs(self):
        task = self.make_task(provision_state=states.ACTIVE)
        port = task.ports[0]
        port.extra = {'dpu_function': 'pf0sf7'}
        self.net.port_changed(task, port)
        self.client.plug_vif.assert_called_once_with(
            task.context, {'port_id': 'vif-1', 'mac': '52:54:00:12:34:01',
                           'function': {'pf': 0, 'sf': 7}},
            expected_generation=None)

    def test_port_changed_ignored(self):
        task = self.make_task(provision_state=states.ACTIVE)
        task.ports[0].pxe_enabled = False           # not a VIF field
        self.net.port_changed(task, task.ports[0])
        task.ports[1].extra = {'dpu_function': 'pf0vf1'}   # no VIF
        self.net.port_changed(task, task.ports[1])
        task = self.make_task(provision_state=states.AVAILABLE)
        task.ports[0].extra = {'dpu_function': 'pf0vf1'}   # not active
        self.net.port_changed(task, task.ports[0])
        self.client.plug_vif.assert_not_called()

    def neutron(self, mac='fa:16:3e:00:00:02'):
        """[dpu] neutron_binding on; Neutron's ports have MAC mac."""
        CONF.set_override('neutron_binding', True, group='dpu')
        client = self.patch(neutron, 'get_client', autospec=True).return_value
        client.get_port.return_value = mock.Mock(mac_address=mac)
        return (client,
                self.patch(neutron, 'update_neutron_port', autospec=True),
                self.patch(neutron, 'unbind_neutron_port', autospec=True))

    def test_neutron_binding(self):
        client, update, _ = self.neutron()
        task = self.make_task(provision_state=states.ACTIVE)
        self.assertRaises(ir_exc.MissingParameterValue, self.net.validate, task)
        task.node.driver_info = {'dpu_hostname': 'dpu-chassis-1'}
        self.net.validate(task)
        self.net.vif_attach(task, {'id': 'vif-2'})
        # read once with the caller's auth, for its MAC: that is also the
        # check update_neutron_port makes (the caller sees the port); the
        # update runs with the conductor's auth
        client.get_port.assert_called_once_with('vif-2')
        self.assertEqual([{'context': task.context, 'auth_from_config': a}
                          for a in (False, True)],
                         [c.kwargs for c in neutron.get_client.call_args_list])
        # Only the binding: the port keeps the vnic_type Nova gave it
        # ('normal': ML2/OVN makes it a VM-like LSP pinned to the DPU) and
        # its MAC (the server's, not the node's).
        update.assert_called_once_with(task.context, 'vif-2', {'port': {
            'binding:host_id': 'dpu-chassis-1',
            'binding:profile': {'capabilities': ['switchdev'],
                                'ironic_node_uuid': base.NODE_UUID}}},
            client=client)
        # The agent gives the host function the Neutron port's MAC.
        self.client.plug_vif.assert_called_once_with(
            task.context, {'port_id': 'vif-2', 'mac': 'fa:16:3e:00:00:02'},
            expected_generation=None)
        self.assertEqual('fa:16:3e:00:00:02',
                         task.ports[1].internal_info['tenant_vif_mac'])

    def test_neutron_mac_recorded_before_deploy(self):
        client, update, _ = self.neutron('FA:16:3E:00:00:09')
        task = self.make_task(provision_state=states.AVAILABLE,
                              driver_info={'dpu_hostname': 'dpu-chassis-1'})
        self.net.vif_attach(task, {'id': 'vif-2'})
        update.assert_not_called()              # bound by deploy
        state = desired.build(task)
        self.assertEqual(['52:54:00:12:34:01', 'fa:16:3e:00:00:09'],
                         [v['mac'] for v in state['vifs']])
        client.get_port.reset_mock()
        self.net.configure_tenant_networks(task)
        # deploy binds without a MAC read: it checks the caller sees each
        self.assertEqual([mock.call('vif-1'), mock.call('vif-2')],
                         client.get_port.call_args_list)
        for call in update.call_args_list:
            self.assertNotIn('mac_address', call.args[2]['port'])
            self.assertNotIn('binding:vnic_type', call.args[2]['port'])

    def test_unbind_keeps_the_mac(self):
        _, _, unbind = self.neutron()
        task = self.make_task(provision_state=states.ACTIVE,
                              driver_info={'dpu_hostname': 'dpu-chassis-1'})
        self.net.vif_attach(task, {'id': 'vif-2'})
        self.net.vif_detach(task, 'vif-2')
        unbind.assert_called_once_with('vif-2', client=mock.ANY,
                                       context=task.context,
                                       reset_mac=False)
        self.assertNotIn('tenant_vif_mac', task.ports[1].internal_info)
        self.assertNotIn('tenant_vif_port_id', task.ports[1].internal_info)
        self.net.unconfigure_tenant_networks(task)   # vif-1
        self.assertEqual({'reset_mac': False, 'context': task.context,
                          'client': neutron.get_client.return_value},
                         unbind.call_args.kwargs)

    def test_every_neutron_client_is_closed(self):
        # Ironic's get_client opens a new session per call: left open, a
        # conductor exhausted Neutron's greenthread pool with idle
        # keep-alive connections
        client, update, unbind = self.neutron()
        http = client.session.session
        task = self.make_task(provision_state=states.ACTIVE,
                              driver_info={'dpu_hostname': 'dpu-chassis-1'})
        self.net.vif_attach(task, {'id': 'vif-2'})
        self.net.configure_tenant_networks(task)
        self.net.vif_detach(task, 'vif-2')
        update.side_effect = Exception('Neutron said no')
        self.assertRaises(ir_exc.NetworkError, self.net.vif_attach, task,
                          {'id': 'vif-2'})
        made = neutron.get_client.call_count
        self.assertGreaterEqual(made, 9)
        self.assertEqual(made, http.close.call_count)

    def test_closing_a_client_never_fails_the_operation(self):
        client = mock.Mock()
        client.session.session.close.side_effect = OSError('closed already')
        network.close_client(client)
        network.close_client(object())      # no session at all

    def test_neutron_port_unreadable_records_nothing(self):
        client, update, _ = self.neutron()
        client.get_port.side_effect = Exception('port vif-2 not found')
        task = self.make_task(provision_state=states.ACTIVE,
                              driver_info={'dpu_hostname': 'dpu-chassis-1'})
        e = self.raises(ir_exc.NetworkError, self.net.vif_attach, task,
                        {'id': 'vif-2'})
        self.assertIn('not found', str(e))
        self.assertEqual({}, task.ports[1].internal_info)
        update.assert_not_called()
        self.client.plug_vif.assert_not_called()
        client.get_port.side_effect = None
        client.get_port.return_value = mock.Mock(mac_address=None)
        self.assertRaises(ir_exc.NetworkError, self.net.vif_attach, task,
                          {'id': 'vif-2'})
        self.assertEqual({}, task.ports[1].internal_info)

    def test_replug_records_the_neutron_mac(self):
        # A VIF an older conductor attached (no recorded MAC): the retry
        # records the Neutron port's and plugs with it.
        client, _, _ = self.neutron('fa:16:3e:00:00:07')
        task = self.make_task(provision_state=states.ACTIVE,
                              driver_info={'dpu_hostname': 'dpu-chassis-1'})
        self.net.vif_attach(task, {'id': 'vif-1'})
        self.assertEqual({'port_id': 'vif-1', 'mac': 'fa:16:3e:00:00:07'},
                         self.client.plug_vif.call_args.args[1])
        self.assertEqual('fa:16:3e:00:00:07',
                         task.ports[0].internal_info['tenant_vif_mac'])

    @mock.patch('ironic.common.neutron.update_neutron_port', autospec=True)
    def test_no_neutron_by_default(self, update):
        task = self.make_task(provision_state=states.ACTIVE)
        self.net.vif_attach(task, {'id': 'vif-2'})
        self.net.configure_tenant_networks(task)
        update.assert_not_called()


class VendorTests(AgentTestCase):

    def test_sync_state(self):
        task = self.make_task(provision_state=states.ACTIVE)
        task.volume_targets.append(self.target('data-2'))
        obs = vendor.DPUVendor().sync_state(task)
        self.assertEqual(ATTACHED['observed'], obs)
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual(['boot', 'data-2'], [v['volume_id'] for v in state['volumes']])

    def test_agent_state(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.get_status.return_value = {'agent_version': '0.1'}
        out = vendor.DPUVendor().agent_state(task)
        self.assertEqual({'status': {'agent_version': '0.1'}, 'state': ATTACHED}, out)
        self.assertIn('sync_state', vendor.DPUVendor().vendor_routes)

    def test_detach_volume_of_a_powered_on_node(self):
        task = self.make_task(provision_state=states.ACTIVE,
                              power_state=states.POWER_ON)
        data = self.target('data-2', boot_index=-1)
        task.volume_targets.append(data)
        with mock.patch.object(type(data), 'destroy', autospec=True) as d:
            obs = vendor.DPUVendor().detach_volume(task, volume_id='data-2')
            d.assert_called_once_with(data)
        self.assertEqual(ATTACHED['observed'], obs)
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual(['boot'], [v['volume_id'] for v in state['volumes']])

    def test_detach_volume_refused_keeps_the_target(self):
        task = self.make_task(provision_state=states.ACTIVE)
        data = self.target('data-2', boot_index=-1)
        task.volume_targets.append(data)
        self.client.apply_state.side_effect = agent_error('busy')
        with mock.patch.object(type(data), 'destroy', autospec=True) as d:
            e = self.raises(ir_exc.VendorPassthruException,
                            vendor.DPUVendor().detach_volume, task,
                            volume_id='data-2')
            d.assert_not_called()
        self.assertIn('busy', str(e))

    def test_detach_volume_needs_volume_id(self):
        task = self.make_task()
        self.assertRaises(ir_exc.MissingParameterValue,
                          vendor.DPUVendor().validate, task,
                          method='detach_volume')
        vendor.DPUVendor().validate(task, method='detach_volume',
                                    volume_id='v')

    def test_errors_cross_the_api(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.apply_state.side_effect = unreachable()
        e = self.raises(ir_exc.VendorPassthruException,
                        vendor.DPUVendor().sync_state, task)
        self.assertIn('unreachable', str(e))
        self.client.get_status.side_effect = agent_error('down')
        self.assertRaises(ir_exc.VendorPassthruException,
                          vendor.DPUVendor().agent_state, task)


    def fence_task(self):
        task = self.make_task(provision_state=states.ACTIVE,
                              power_state=states.POWER_ON, maintenance=True)
        task.volume_targets.append(self.target('data-2', boot_index=-1))
        task.ports[1].extra = {'vif_port_id': 'vif-legacy'}
        task.ports[0].internal_info['tenant_vif_mac'] = 'fa:16:3e:00:00:01'
        return task

    def test_fence_drops_every_volume_and_vif(self):
        task = self.fence_task()
        targets = list(task.volume_targets)
        with mock.patch.object(type(targets[0]), 'destroy',
                               autospec=True) as d:
            out = vendor.DPUVendor().fence(task)
        self.assertEqual(targets, [c.args[0] for c in d.call_args_list])
        self.assertEqual({'volumes': ['boot', 'data-2'],
                          'vifs': ['vif-1', 'vif-legacy'],
                          'agent': 'dropped'}, out)
        self.assertEqual([{}, {}], [p.internal_info for p in task.ports])
        self.assertEqual([{}, {}], [p.extra for p in task.ports])
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual(([], []), (state['volumes'], state['vifs']))
        # Neutron ports stay bound: they move with the server
        self.assertIn('fence', vendor.DPUVendor().vendor_routes)

    def test_fence_of_an_unreachable_agent_records_the_empty_state(self):
        # a DPU that comes back catches up with what Ironic recorded
        task = self.fence_task()
        self.client.ping.side_effect = unreachable()
        with mock.patch.object(objects.VolumeTarget, 'destroy',
                               autospec=True):
            out = vendor.DPUVendor().fence(task)
        self.assertTrue(out['agent'].startswith('unreachable: '), out)
        self.client.apply_state.assert_not_called()
        recorded = task.node.driver_internal_info[desired.STATE_KEY]
        self.assertEqual(([], []), (recorded['volumes'], recorded['vifs']))
        self.assertEqual([], task.volume_targets)
    def test_quiesce_and_unquiesce_routes(self):
        routes = vendor.DPUVendor().vendor_routes
        for name in ('quiesce', 'unquiesce'):
            self.assertEqual(['POST'], routes[name]['http_methods'])
            self.assertFalse(routes[name]['async'])
            self.assertFalse(routes[name]['require_exclusive_lock'])

    def test_quiesce_of_an_active_node(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.quiesce.return_value = {
            'quiesced': True, 'until': '2026-12-07T12:01:00Z',
            'functions': ['pf0'], 'max_hold_seconds': 60}
        out = vendor.DPUVendor().quiesce(task)
        self.assertEqual({'quiesced': True, 'until': '2026-12-07T12:01:00Z',
                          'functions': ['pf0'], 'max_hold_seconds': 60}, out)
        self.client.quiesce.assert_called_once_with(task.context)
        self.client.unquiesce.return_value = {'quiesced': False,
                                              'resume_reason': 'unquiesce'}
        out = vendor.DPUVendor().unquiesce(task)
        self.assertEqual({'quiesced': False, 'resume_reason': 'unquiesce'},
                         out)
        self.client_cls.assert_called_with(base.NODE_UUID)

    def test_quiesce_needs_an_active_node(self):
        task = self.make_task(provision_state=states.DEPLOYING)
        e = self.raises(ir_exc.InvalidState, vendor.DPUVendor().quiesce, task)
        self.assertIn('quiesce needs an active node', str(e))
        self.client.quiesce.assert_not_called()

    def test_quiesce_takes_no_arguments(self):
        task = self.make_task(provision_state=states.ACTIVE)
        # as the conductor's vendor_passthru calls it
        vendor.DPUVendor().validate(task, method='quiesce',
                                    http_method='POST')
        e = self.raises(ir_exc.InvalidParameterValue,
                        vendor.DPUVendor().validate, task,
                        method='unquiesce', http_method='POST',
                        hold='forever')
        self.assertIn('unquiesce takes no arguments, got hold', str(e))

    def test_quiesce_not_supported_is_unsupported_extension(self):
        task = self.make_task(provision_state=states.ACTIVE, driver='dpu')
        self.client.quiesce.side_effect = exception.DPUQuiesceNotSupported(
            node=base.NODE_UUID, reason='the agent is older than RPC API '
                                        '1.3 (UnsupportedVersion)')
        e = self.raises(ir_exc.UnsupportedDriverExtension,
                        vendor.DPUVendor().quiesce, task)
        self.assertEqual(400, e.code)
        self.assertTrue(str(e).startswith('Driver dpu does not support '
                                          'quiesce ('), str(e))
        self.assertIn('older than RPC API 1.3', str(e))

    def test_quiesce_failure_is_a_passthru_error(self):
        task = self.make_task(provision_state=states.ACTIVE)
        self.client.unquiesce.side_effect = agent_error('resume pf0: EIO')
        e = self.raises(ir_exc.VendorPassthruException,
                        vendor.DPUVendor().unquiesce, task)
        self.assertIn('resume pf0: EIO', str(e))


class HardwareTests(base.TestCase):

    def test_interfaces(self):
        hw = hardware.DPUHardware()
        self.assertEqual([deploy.DPUDeploy], hw.supported_deploy_interfaces)
        self.assertEqual([boot.DPUBoot], hw.supported_boot_interfaces)
        self.assertEqual([storage.DPUStorage, noop_storage.NoopStorage],
                         hw.supported_storage_interfaces)
        self.assertEqual([network.DPUNetwork, noop_net.NoopNetwork],
                         hw.supported_network_interfaces)
        self.assertIn(fake.FakePower, hw.supported_power_interfaces)
        self.assertIn(fake.FakeManagement, hw.supported_management_interfaces)
        self.assertEqual(['IPMIPower', 'RedfishPower', 'FakePower'],
                         [c.__name__ for c in hw.supported_power_interfaces])
