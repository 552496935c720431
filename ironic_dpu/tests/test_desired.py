from unittest import mock

from ironic.common import exception as ir_exc
from ironic.conf import CONF
from ironic import objects

from ironic_dpu import desired
from ironic_dpu import exception
from ironic_dpu.tests import base


class FunctionTests(base.TestCase):

    def test_names(self):
        self.assertEqual({'pf': 0, 'vf': 3}, desired.parse_function('pf0vf3', 'x'))
        self.assertEqual({'pf': 1, 'sf': 88}, desired.parse_function('c1pf1sf88', 'x'))
        self.assertEqual({'pf': 0}, desired.parse_function('pf0hpf', 'x'))
        self.assertEqual({'pf': 0, 'vf': 2},
                         desired.parse_function({'pf': 0, 'vf': 2}, 'x'))

    def test_bad(self):
        for bad in ('eth0', {'vf': 1}, {'pf': 0, 'vf': 1, 'sf': 2},
                    {'pf': -1}, {'pf': True}, {'pf': 0, 'x': 1}, 3):
            self.assertRaises(ir_exc.InvalidParameterValue,
                              desired.parse_function, bad, 'x')

    def test_port_function_sources(self):
        self.assertEqual({'pf': 0, 'vf': 1}, desired.port_function(
            self.port(extra={'dpu_function': 'pf0vf1'},
                      llc={'port_id': 'pf0vf9'})))
        self.assertEqual({'pf': 0, 'vf': 9}, desired.port_function(
            self.port(llc={'port_id': 'pf0vf9'})))
        self.assertIsNone(desired.port_function(
            self.port(llc={'port_id': 'Ethernet1/3'})))


class BuildTests(base.TestCase):

    def test_build(self):
        node = self.node()
        ports = [self.port(vif='vif-1', extra={'dpu_function': {'pf': 0, 'vf': 3},
                                               'dpu_mtu': 1450}),
                 self.port(address='52:54:00:12:34:02'),            # no VIF
                 self.port(address='52:54:00:12:34:03',
                           extra={'vif_port_id': 'vif-legacy'})]
        targets = [self.target('data-1', props=base.NEW_FORMAT),
                   self.target('boot', boot_index=0)]
        task = base.FakeTask(node, ports, targets)
        state = desired.build(task)
        self.assertEqual(base.NODE_UUID, state['node_uuid'])
        self.assertEqual(['boot', 'data-1'],
                         [v['volume_id'] for v in state['volumes']])
        self.assertEqual(0, state['volumes'][0]['boot_index'])
        self.assertNotIn('boot_index', state['volumes'][1])
        self.assertEqual({'driver_volume_type': 'nvmeof', 'data': base.OLD_FORMAT},
                         state['volumes'][0]['connection_info'])
        self.assertEqual([{'port_id': 'vif-1', 'mac': '52:54:00:12:34:01',
                           'function': {'pf': 0, 'vf': 3}, 'mtu': 1450},
                          {'port_id': 'vif-legacy', 'mac': '52:54:00:12:34:03'}],
                         state['vifs'])
        self.assertNotIn('generation', state)   # build has no side effect
        self.assertEqual({}, node.driver_internal_info)

    def test_vif_mac_is_the_neutron_ports(self):
        # Recorded at attach: the host function gets the Neutron port's MAC,
        # not the Ironic port's (the node's hardware) address.
        port = self.port(vif='vif-1', extra={'dpu_function': 'pf0vf1'})
        port.internal_info = dict(port.internal_info,
                                  tenant_vif_mac='FA:16:3E:AA:BB:CC')
        task = base.FakeTask(self.node(), [port])
        self.assertEqual([{'port_id': 'vif-1', 'mac': 'fa:16:3e:aa:bb:cc',
                           'function': {'pf': 0, 'vf': 1}}],
                         desired.build(task)['vifs'])
        port.internal_info = dict(port.internal_info, tenant_vif_mac='junk')
        self.assertRaises(ir_exc.InvalidParameterValue, desired.build, task)

    def test_nested_connection_info(self):
        t = self.target('v', props={'driver_volume_type': 'nvmeof',
                                    'data': base.NEW_FORMAT})
        self.assertEqual(base.NEW_FORMAT,
                         desired.volume_for_target(t)['connection_info']['data'])

    def test_invalid_targets(self):
        for t in (self.target('v', volume_type='iscsi'),
                  self.target('v', props={'target_portal': '1.2.3.4'}),
                  self.target('v', props={'nqn': 'nqn.x'})):
            self.assertRaises(ir_exc.InvalidParameterValue,
                              desired.volume_for_target, t)

    def test_invalid_ports(self):
        task = base.FakeTask(self.node(), [self.port(vif='a'),
                                           self.port(vif='a')])
        self.assertRaises(ir_exc.InvalidParameterValue, desired.build, task)
        task = base.FakeTask(self.node(), [self.port(vif='a', address=None)])
        self.assertRaises(ir_exc.InvalidParameterValue, desired.build, task)
        task = base.FakeTask(self.node(), [self.port(vif='a',
                                                     extra={'dpu_mtu': 'big'})])
        self.assertRaises(ir_exc.InvalidParameterValue, desired.build, task)


class PushTests(base.TestCase):

    def setUp(self):
        super().setUp()
        self.task = base.FakeTask(self.node(), [self.port(vif='vif-1')],
                                  [self.target('boot', boot_index=0)])
        self.client = mock.Mock()

    def test_push_records_and_bumps_generation(self):
        self.client.apply_state.return_value = {'observed': {}}
        desired.push(self.task, desired.build(self.task), client=self.client)
        desired.push(self.task, desired.build(self.task), client=self.client)
        sent = [c.args[1] for c in self.client.apply_state.call_args_list]
        self.assertEqual([1, 2], [s['generation'] for s in sent])
        dii = self.task.node.driver_internal_info
        self.assertEqual(2, dii['dpu_generation'])
        self.assertEqual(sent[1], dii['dpu_desired_state'])
        self.assertIs(self.task.context, self.client.apply_state.call_args.args[0])

    def test_conflict_bumps_past_agent(self):
        conflict = exception.DPUAgentError(node='n', method='apply_state',
                                           error='generation 1 is older')
        conflict.remote_class = 'Conflict'
        self.client.apply_state.side_effect = [conflict, {'observed': {}}]
        self.client.get_state.return_value = {'desired': {'generation': 41}}
        desired.push(self.task, desired.build(self.task), client=self.client)
        self.assertEqual(42, self.client.apply_state.call_args.args[1]['generation'])
        self.assertEqual(42, self.task.node.driver_internal_info['dpu_generation'])

    def test_conflict_without_save_keeps_the_record_for_the_caller(self):
        # The deploy step's push(save=False): the bump past the agent's
        # generation is recorded on the node object, the save is Ironic's.
        conflict = exception.DPUAgentError(node='n', method='apply_state',
                                           error='used with other content')
        conflict.remote_class = 'Conflict'
        self.client.apply_state.side_effect = [conflict, {'observed': {}}]
        self.client.get_state.return_value = {'desired': {'generation': 1}}
        desired.push(self.task, desired.build(self.task), client=self.client,
                     save=False)
        self.assertEqual(2, self.task.node.driver_internal_info[
            'dpu_desired_state']['generation'])
        objects.Node.save.assert_not_called()

    def test_other_errors_propagate(self):
        err = exception.DPUAgentError(node='n', method='apply_state', error='x')
        err.remote_class = 'StorageError'
        self.client.apply_state.side_effect = err
        self.assertRaises(exception.DPUAgentError, desired.push, self.task,
                          desired.build(self.task), client=self.client)
        self.client.get_state.assert_not_called()
        # recorded even though the agent refused: the agent can pull it
        self.assertEqual(1, self.task.node.driver_internal_info[
            'dpu_desired_state']['generation'])

    def test_push_saves_the_generation_before_the_agent_sees_it(self):
        saved = []
        objects.Node.save.side_effect = lambda node, *a: saved.append(
            node.driver_internal_info['dpu_generation'])
        self.client.apply_state.side_effect = lambda *a, **kw: self.assertEqual(
            [1], saved)
        desired.push(self.task, desired.build(self.task), client=self.client)
        self.assertEqual([1], saved)

    def test_start_wait_leaves_the_save_to_the_deploywait_transition(self):
        desired.start_wait(self.task, 3, since=12.5)
        self.assertEqual({'generation': 3, 'since': 12.5},
                         self.task.node.driver_internal_info['dpu_wait'])
        objects.Node.save.assert_not_called()  # process_event('wait') saves

    def test_note_item_change(self):
        desired.record(self.task, desired.build(self.task))
        desired.note_item_change(self.task, vif={'port_id': 'vif-2', 'mac': 'm'})
        desired.note_item_change(self.task, remove_vif='vif-1')
        st = self.task.node.driver_internal_info['dpu_desired_state']
        self.assertEqual(['vif-2'], [v['port_id'] for v in st['vifs']])
        self.assertEqual(3, st['generation'])


class ConvergeTests(base.TestCase):

    def setUp(self):
        super().setUp()
        CONF.set_override('state_wait_timeout', 5, group='dpu_agent')
        self.task = base.FakeTask(self.node())
        self.state = {'generation': 2, 'volumes': [{'volume_id': 'boot'}],
                      'vifs': [{'port_id': 'vif-1'}]}
        self.now = [0.0]
        self.client = mock.Mock()

    def sleep(self, s):
        self.now[0] += s

    def wait(self, first, *later):
        gen = lambda o: dict(o, generation=o.get('generation', 2))  # noqa
        self.client.get_state.side_effect = [{'observed': gen(o)}
                                             for o in later]
        return desired.wait_converged(
            self.task, self.state, {'observed': gen(first)},
            client=self.client, sleep=self.sleep, clock=lambda: self.now[0])

    def test_converged_at_once(self):
        obs = {'volumes': [{'volume_id': 'boot', 'state': 'attached'}],
               'vifs': [{'port_id': 'vif-1', 'state': 'plugged'}]}
        self.assertEqual(dict(obs, generation=2), self.wait(obs))
        self.client.get_state.assert_not_called()

    def test_polls_pending(self):
        pend = {'volumes': [{'volume_id': 'boot', 'state': 'pending'}]}
        done = {'volumes': [{'volume_id': 'boot', 'state': 'attached'}],
                'vifs': [{'port_id': 'vif-1', 'state': 'plugged'}]}
        self.assertEqual(dict(done, generation=2),
                         self.wait(pend, pend, done))
        self.assertEqual(2, self.client.get_state.call_count)

    def test_waits_for_the_generation(self):
        # apply_state answers before the reconcile: what it reports is the
        # previous generation's view, even when it looks converged.
        done = {'volumes': [{'volume_id': 'boot', 'state': 'attached'}],
                'vifs': [{'port_id': 'vif-1', 'state': 'plugged'}]}
        old = dict(done, generation=1,
                   volumes=[{'volume_id': 'boot', 'state': 'error',
                             'last_error': 'of generation 1'}])
        self.assertEqual(dict(done, generation=2), self.wait(old, old, done))
        self.assertEqual(2, self.client.get_state.call_count)
        e = self.raises(exception.DPUStateError, self.wait,
                        *([dict(done, generation=1)] * 100))
        self.assertIn('reconciled generation 1, not 2', str(e))

    def test_error_raises_with_agent_text(self):
        obs = {'volumes': [{'volume_id': 'boot', 'state': 'error',
                            'last_error': 'bdev_nvme_attach_controller: '
                                          'connection refused'}]}
        e = self.raises(exception.DPUStateError, self.wait, obs)
        self.assertIn('volume boot: bdev_nvme_attach_controller: connection '
                      'refused', str(e))

    def test_component_error_raises(self):
        self.state = {'generation': 2, 'volumes': [], 'vifs': []}
        obs = {'volumes': [], 'vifs': [], 'components': {
            'storage': {'generation': 2, 'last_error': 'spdk unreachable'},
            'network': {'generation': 2}}}
        e = self.raises(exception.DPUStateError, self.wait, obs)
        self.assertIn('storage: spdk unreachable', str(e))

    def test_volume_pending_times_out(self):
        pend = {'volumes': [{'volume_id': 'boot', 'state': 'pending'}],
                'vifs': [{'port_id': 'vif-1', 'state': 'plugged'}]}
        e = self.raises(exception.DPUStateError, self.wait,
                        *([pend] * 100))
        self.assertIn('not converged after 5s: volume boot', str(e))
        self.assertGreaterEqual(self.now[0], 5)

    def test_vif_pending_only_warns(self):
        obs = {'volumes': [{'volume_id': 'boot', 'state': 'attached'}],
               'vifs': [{'port_id': 'vif-1', 'state': 'pending'}]}
        with self.assertLogs('ironic_dpu.desired', 'WARNING'):
            self.assertEqual(dict(obs, generation=2),
                             self.wait(*([obs] * 100)))

    def test_unwanted_item_must_go(self):
        self.state = {'generation': 2, 'volumes': [], 'vifs': []}
        left = {'volumes': [], 'vifs': [{'port_id': 'old',
                                         'state': 'plugged'}]}
        e = self.raises(exception.DPUStateError, self.wait,
                        *([left] * 100))
        self.assertIn('VIF old', str(e))
        gone = {'volumes': [], 'vifs': []}
        self.now[0] = 0
        self.assertEqual(dict(gone, generation=2), self.wait(left, gone))

    def test_config_drive_must_converge_too(self):
        self.state = {'generation': 2, 'volumes': [], 'vifs': [],
                      'config_drive': {'sha256': 'ab'}}
        pend = {'volumes': [], 'vifs': [],
                'config_drive': {'sha256': 'ab', 'state': 'pending'}}
        done = dict(pend, config_drive={'sha256': 'ab', 'state': 'attached',
                                        'nsid': 3})
        self.assertEqual(dict(done, generation=2), self.wait(pend, done))
        e = self.raises(exception.DPUStateError, self.wait,
                        dict(pend, config_drive={'sha256': 'ab',
                                                 'state': 'error',
                                                 'last_error': 'aio: EIO'}))
        self.assertIn('config drive: aio: EIO', str(e))
        self.state = {'generation': 2, 'volumes': [], 'vifs': []}
        self.now[0] = 0
        e = self.raises(exception.DPUStateError, self.wait, *([done] * 100))
        self.assertIn('config drive still attached', str(e))
