"""The Nova compute driver nova/virt/ironic_dpu against Debian's Nova (Zed):
the package is loaded from the repository the way Nova loads it once it is
installed in nova/virt/. A process of its own (make python-unit): Nova and
Ironic register clashing options on oslo.config's one global CONF."""
import contextlib
import copy
import os
import types
import unittest
from unittest import mock

import nova.virt
from oslo_serialization import jsonutils

from nova.compute import task_states
from nova.compute import utils as compute_utils
from nova.compute import vm_states
from nova import exception
from nova.scheduler.client import report
from nova.virt import driver as virt_driver

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# first: an installed copy (or another checkout's symlink) must not win
nova.virt.__path__.insert(0, os.path.join(REPO, 'nova', 'virt'))

from nova.virt import ironic_dpu  # noqa: E402
from nova.virt.ironic_dpu import driver  # noqa: E402

NODE = 'node-1'
VOL = 'vol-1'
CONN = {'driver_volume_type': 'nvmeof', 'serial': VOL,
        'data': {'nqn': 'nqn.2016-06.io.spdk:cnode1', 'target_portal': '10.0.0.1',
                 'target_port': '4420', 'transport_type': 'tcp', 'ns_id': '1',
                 'qos_specs': {'total_iops_sec': '2000'}}}


def target(volume_id, boot_index):
    return types.SimpleNamespace(volume_id=volume_id, boot_index=boot_index,
                                 uuid='t-' + volume_id)


def answer(*vols):
    return {'status': {}, 'state': {'observed': {'volumes': list(vols)}}}


def ironic_node(state, instance='inst-1', maintenance=False, last_error=None):
    return types.SimpleNamespace(
        provision_state=state, instance_uuid=instance, maintenance=maintenance,
        last_error=last_error, maintenance_reason=None)


class FakeIronic(object):
    """ironicclient calls as the wrapper makes them; records each call."""

    def __init__(self, states, targets=()):
        self.states = list(states)     # successive agent_state answers
        self.targets = list(targets)
        self.calls = []
        self.fail = {}                 # passthru method -> exception
        self.nodes = {}                # node -> successive node.get answers
        self.vifs = {}                 # node -> VIF ids attached
        self.conn = None               # the FakeConnection beside it
        self.answers = {}              # passthru method -> its answer

    def call(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        if method == 'node.get':
            if args[0] not in self.nodes and self.conn is not None:
                n = self.conn.nodes[args[0]]     # one node, two clients
                return ironic_node(n.provision_state, instance=n.instance_id,
                                   maintenance=n.is_maintenance)
            seq = self.nodes[args[0]]
            return seq.pop(0) if len(seq) > 1 else seq[0]
        if method == 'node.vif_list':
            return [types.SimpleNamespace(id=v)
                    for v in self.vifs.get(args[0], [])]
        if method in ('node.set_provision_state', 'node.update',
                      'node.vif_attach', 'node.vif_detach',
                      'volume_target.delete'):
            if method in self.fail:
                raise self.fail[method]
            if method == 'node.update' and self.conn is not None:
                if {'path': '/instance_uuid', 'op': 'remove'} in args[1]:
                    self.conn.nodes[args[0]].instance_id = None
            if method == 'node.vif_detach' and args[0] in self.vifs:
                self.vifs[args[0]].remove(args[1])
            if method == 'node.vif_attach':
                self.vifs.setdefault(args[0], []).append(args[1])
            if method == 'volume_target.delete':
                self.targets = [t for t in self.targets
                                if getattr(t, 'uuid', None) != args[0]]
            return None
        if method == 'node.list_volume_targets':
            return list(self.targets)
        if method == 'volume_target.create':
            self.targets.append(target(kwargs['volume_id'],
                                       kwargs['boot_index']))
            return None
        if method == 'node.list_volume_connectors':
            if args[0] == NODE2:
                return [types.SimpleNamespace(type='nqn',
                                              connector_id='nqn.host-2')]
            return [types.SimpleNamespace(type='iqn', connector_id='iqn.x'),
                    types.SimpleNamespace(type='nqn', connector_id='nqn.host')]
        if method == 'node.vendor_passthru':
            name = args[1]
            if name in self.fail:
                raise self.fail[name]
            if name == 'agent_state':
                st = self.states.pop(0) if len(self.states) > 1 else self.states[0]
                return mock.Mock(to_dict=mock.Mock(return_value=st))
            return mock.Mock(to_dict=mock.Mock(
                return_value=self.answers.get(name, {})))
        raise AssertionError('unexpected call %s' % method)

    def passthrus(self):
        return [(a[1], k.get('args'), k.get('http_method'))
                for m, a, k in self.calls if m == 'node.vendor_passthru'
                and a[1] != 'agent_state']


NODE2 = 'node-2'


def bm_node(uuid, instance=None, maintenance=False, state='available'):
    return types.SimpleNamespace(id=uuid, instance_id=instance,
                                 is_maintenance=maintenance,
                                 power_state='power off',
                                 provision_state=state)


class FakeConnection(object):
    """The openstacksdk calls Nova's ironic driver makes; records them in
    the FakeIronic's list, so one list shows the order of both."""

    def __init__(self, calls, *nodes):
        self.calls = calls
        self.nodes = {n.id: n for n in nodes}

    def get_node(self, node_id, fields=None):
        self.calls.append(('sdk.get_node', (node_id,), {}))
        return copy.copy(self.nodes[node_id])

    def update_node(self, node, retry_on_conflict=True, **kwargs):
        self.calls.append(('sdk.update_node', (node.id,), kwargs))
        self.nodes[node.id].instance_id = kwargs['instance_id']

    def nodes(self, instance_id=None, fields=None):
        return [copy.copy(n) for n in self.nodes.values()
                if n.instance_id == instance_id]


class FakeInstance(types.SimpleNamespace):
    """What the driver reads of a Nova Instance; obj_clone as Nova's."""

    def get(self, key, default=None):
        return getattr(self, key, default)

    def obj_clone(self):
        return copy.copy(self)

    def save(self, expected_task_state=None):
        self.saves.append((self.task_state, expected_task_state))


def fake_clock(test):
    """The driver's time module for test: test.now[0] is the clock, which
    sleep advances (bounded waits end at once)."""
    test.now = [0.0]
    return types.SimpleNamespace(
        monotonic=lambda: test.now[0],
        sleep=lambda s: test.now.__setitem__(0, test.now[0] + s))


class Base(unittest.TestCase):

    def setUp(self):
        super().setUp()
        p = mock.patch.object(driver, 'time', fake_clock(self))
        p.start()
        self.addCleanup(p.stop)
        self.instance = types.SimpleNamespace(node=NODE, uuid='inst-1')

    def drv(self, states, targets=()):
        d = driver.IronicDPUDriver.__new__(driver.IronicDPUDriver)
        d.ironicclient = FakeIronic(states, targets)
        d.node_cache = {}
        return d

    def assertRaises(self, exc, fn, *args, **kwargs):
        with super().assertRaises(exc) as cm:
            fn(*args, **kwargs)
        return cm.exception


class DriverTests(Base):

    def test_loaded_as_nova_loads_it(self):
        self.assertIs(ironic_dpu.IronicDPUDriver, driver.IronicDPUDriver)
        self.assertTrue(issubclass(driver.IronicDPUDriver,
                                   virt_driver.ComputeDriver))
        caps = driver.IronicDPUDriver.capabilities
        self.assertTrue(caps['supports_extend_volume'])
        self.assertTrue(caps['supports_attach_interface'])
        self.assertIn('COMPUTE_VOLUME_EXTEND',
                      driver.IronicDPUDriver.__new__(
                          driver.IronicDPUDriver).capabilities_as_traits())

    def test_attach_creates_data_target_pushes_and_waits(self):
        d = self.drv([answer(), answer({'volume_id': VOL, 'state': 'pending'}),
                      answer({'volume_id': VOL, 'state': 'attached', 'nsid': 2})],
                     targets=[target('boot', 0), target('data', -1)])
        d.attach_volume(None, CONN, self.instance, '/dev/sdb')
        create = [k for m, a, k in d.ironicclient.calls
                  if m == 'volume_target.create'][0]
        self.assertEqual({'node_uuid': NODE, 'volume_type': 'nvmeof',
                          'properties': CONN['data'], 'volume_id': VOL,
                          'boot_index': -2}, create)
        self.assertEqual([('sync_state', None, 'POST')],
                         d.ironicclient.passthrus())
        self.assertEqual(3, sum(1 for m, a, k in d.ironicclient.calls
                                if m == 'node.vendor_passthru'
                                and a[1] == 'agent_state'))

    def test_attach_retry_keeps_existing_target(self):
        d = self.drv([answer({'volume_id': VOL, 'state': 'attached'})],
                     targets=[target(VOL, -1)])
        d.attach_volume(None, CONN, self.instance, '/dev/sdb')
        self.assertFalse([c for c in d.ironicclient.calls
                          if c[0] == 'volume_target.create'])

    def test_attach_agent_error_carries_reason_and_rolls_back(self):
        d = self.drv([answer({'volume_id': VOL, 'state': 'error',
                              'last_error': 'qos_specs total_iops_sec: "x" '
                                            'is not a number'})])
        e = self.assertRaises(exception.VolumeAttachFailed, d.attach_volume,
                              None, CONN, self.instance, '/dev/sdb')
        self.assertIn('qos_specs total_iops_sec: "x" is not a number',
                      e.format_message())
        self.assertEqual([('sync_state', None, 'POST'),
                          ('detach_volume', {'volume_id': VOL}, 'POST')],
                         d.ironicclient.passthrus())

    def test_attach_refused_by_ironic(self):
        d = self.drv([answer()])
        d.ironicclient.fail['sync_state'] = RuntimeError(
            'DPU agent of node 1be26c0b-03f2-4d2e-ae87-c02d7f33c123 failed '
            'apply_state: volume v: bad qos (HTTP 500)')
        e = self.assertRaises(exception.VolumeAttachFailed, d.attach_volume,
                              None, CONN, self.instance, '/dev/sdb')
        # Nova keeps 255 characters: the node's UUID and HTTP noise go
        self.assertEqual('Volume vol-1 could not be attached. Reason: DPU '
                         'agent: volume v: bad qos', e.format_message())

    def test_attach_times_out(self):
        d = self.drv([answer({'volume_id': VOL, 'state': 'pending'})])
        e = self.assertRaises(exception.VolumeAttachFailed, d.attach_volume,
                              None, CONN, self.instance, '/dev/sdb')
        self.assertIn('within 60s', e.format_message())
        self.assertGreaterEqual(self.now[0], 60)

    def test_attach_refuses_other_types_and_encryption(self):
        d = self.drv([answer()])
        iscsi = dict(CONN, driver_volume_type='iscsi')
        self.assertRaises(exception.VolumeAttachFailed, d.attach_volume,
                          None, iscsi, self.instance, '/dev/sdb')
        self.assertRaises(exception.VolumeAttachFailed, d.attach_volume,
                          None, CONN, self.instance, '/dev/sdb',
                          encryption={'provider': 'luks'})
        self.assertEqual([], d.ironicclient.calls)   # nothing touched

    def test_detach_uses_passthru_and_waits_until_gone(self):
        d = self.drv([answer({'volume_id': VOL, 'state': 'attached'}),
                      answer()])
        d.detach_volume(None, CONN, self.instance, '/dev/sdb')
        self.assertEqual([('detach_volume', {'volume_id': VOL}, 'POST')],
                         d.ironicclient.passthrus())

    def test_detach_error(self):
        d = self.drv([answer({'volume_id': VOL, 'state': 'error',
                              'last_error': 'nvmf_subsystem_remove_ns: busy'})])
        e = self.assertRaises(exception.VolumeDetachFailed, d.detach_volume,
                              None, CONN, self.instance, '/dev/sdb')
        self.assertIn('nvmf_subsystem_remove_ns: busy', e.format_message())

    def test_extend_waits_for_the_new_size(self):
        gib = 1 << 30
        d = self.drv([answer({'volume_id': VOL, 'state': 'attached',
                              'size_bytes': gib}),
                      answer({'volume_id': VOL, 'state': 'attached',
                              'size_bytes': 2 * gib})])
        d.extend_volume(None, CONN, self.instance, 2 * gib)
        self.assertEqual([('sync_state', None, 'POST')],
                         d.ironicclient.passthrus())

    def test_extend_never_grows(self):
        d = self.drv([answer({'volume_id': VOL, 'state': 'attached',
                              'size_bytes': 1 << 30})])
        e = self.assertRaises(exception.VolumeExtendFailed, d.extend_volume,
                              None, CONN, self.instance, 2 << 30)
        self.assertIn('at 2147483648 bytes', e.format_message())

    def test_connector_has_the_dpu_host_nqn(self):
        d = self.drv([answer()])
        with mock.patch.object(driver.ironic_driver.IronicDriver,
                               'get_volume_connector',
                               return_value={'initiator': 'iqn.x'}):
            props = d.get_volume_connector(self.instance)
        self.assertEqual({'initiator': 'iqn.x', 'nqn': 'nqn.host'}, props)

    def test_quiesce_and_unquiesce_ask_the_dpu(self):
        d = self.drv([answer()])
        d.quiesce(None, self.instance, None)
        d.unquiesce(None, self.instance, None)
        self.assertEqual([('quiesce', None, 'POST'),
                          ('unquiesce', None, 'POST')],
                         d.ironicclient.passthrus())

    def test_quiesce_refused_is_not_supported_with_the_reason(self):
        # Nova's snapshot goes on without quiescing on a NovaException
        d = self.drv([answer()])
        d.ironicclient.fail['quiesce'] = Exception(
            'DPU agent of node 1be26c0b-03f2-4d2e-ae87-c02d7f33c123 failed '
            'quiesce: the driver cannot pause controllers (HTTP 400)')
        e = self.assertRaises(exception.InstanceQuiesceNotSupported,
                              d.quiesce, None, self.instance, None)
        self.assertIsInstance(e, exception.NovaException)
        self.assertIn('DPU agent: the driver cannot pause controllers',
                      e.format_message())
        self.assertNotIn('1be26c0b', e.format_message())

    def test_deploy_failure_message_keeps_the_reason(self):
        d = self.drv([answer()])
        err = exception.InstanceDeployFailure(
            'Failed to provision instance inst-1: Deploy step deploy.deploy '
            'failed: DPU agent of node 1be26c0b-03f2-4d2e-ae87-c02d7f33c123 '
            'failed apply_state: ' + 'x' * 150)
        with mock.patch.object(driver.ironic_driver.IronicDriver,
                               '_wait_for_active', side_effect=err):
            e = self.assertRaises(exception.InstanceDeployFailure,
                                  d._wait_for_active, self.instance)
        self.assertEqual('Deploy failed: Deploy step deploy.deploy failed: '
                         'DPU agent: ' + 'x' * 150, e.format_message())

    def test_other_deploy_failures_pass_unchanged(self):
        d = self.drv([answer()])
        err = exception.InstanceDeployFailure('Instance inst-1 provisioning '
                                              'was aborted')
        with mock.patch.object(driver.ironic_driver.IronicDriver,
                               '_wait_for_active', side_effect=err):
            e = self.assertRaises(exception.InstanceDeployFailure,
                                  d._wait_for_active, self.instance)
        self.assertIs(err, e)

    def test_data_disks_at_boot_get_distinct_indexes(self):
        d = self.drv([answer()])

        def bdm(vid, index, is_volume=True):
            obj = types.SimpleNamespace(
                volume_id=vid, boot_index=index,
                connection_info=jsonutils.dumps(CONN))
            return types.SimpleNamespace(is_volume=is_volume, _bdm_obj=obj)
        info = {'block_device_mapping': [bdm('data-a', -1), bdm('boot', 0),
                                         bdm('data-b', -1),
                                         bdm('data-c', None)]}
        with mock.patch.object(driver.virt_driver,
                               'block_device_info_get_mapping',
                               side_effect=lambda i: i['block_device_mapping']):
            d._add_volume_target_info(None, self.instance, info)
        made = {k['volume_id']: k['boot_index']
                for m, a, k in d.ironicclient.calls
                if m == 'volume_target.create'}
        self.assertEqual({'data-a': -1, 'boot': 0, 'data-b': -2,
                          'data-c': -3}, made)

    def test_refused_target_fails_the_deploy(self):
        d = self.drv([answer()])
        obj = types.SimpleNamespace(volume_id='v', boot_index=0,
                                    connection_info=jsonutils.dumps(CONN))
        bdm = types.SimpleNamespace(is_volume=True, _bdm_obj=obj)
        d.ironicclient.call = mock.Mock(
            side_effect=driver.ironic_exc.Conflict('boot_index 0 is taken'))
        with mock.patch.object(driver.virt_driver,
                               'block_device_info_get_mapping',
                               return_value=[bdm]):
            e = self.assertRaises(exception.InstanceDeployFailure,
                                  d._add_volume_target_info, None,
                                  self.instance, {})
        self.assertIn('boot_index 0 is taken', e.format_message())

    def test_free_data_index(self):
        self.assertEqual(-1, driver.free_data_index([target('a', 0)]))
        self.assertEqual(-3, driver.free_data_index(
            [target('a', -1), target('b', -2), target('c', 0)]))


SRC, DST = 'node-src', 'node-dst'
NET = [{'id': 'port-1'}]
AGENT_FAIL = ('DPU agent of node 1be26c0b-03f2-4d2e-ae87-c02d7f33c123 failed '
              'apply_state: nvmf_subsystem_remove_ns: busy')


def bdi(*mappings):
    """block_device_info with mappings (volume_id, boot_index)."""
    return {'block_device_mapping': [{'boot_index': i, 'volume_id': v}
                                     for v, i in mappings]}


class MoveTests(Base):
    """Cold migrate / resize (source then destination), confirm, revert."""

    def setUp(self):
        super().setUp()
        self.instance = types.SimpleNamespace(node=SRC, uuid='inst-1',
                                              image_meta='image-meta')
        self.events = []

    def drv(self, targets=()):
        d = super().drv([answer()], targets)
        ev = self.events

        def rec(name, fail=None):
            def fn(*args, **kwargs):
                ev.append((name, args, kwargs))
                if fail:
                    raise fail
            return mock.Mock(side_effect=fn)
        d.rec = rec
        d.power_off = rec('power_off')
        d.prepare_for_spawn = rec('prepare_for_spawn')
        d._get_node = mock.Mock(side_effect=lambda u: 'node:' + u)
        d._plug_vifs = rec('plug_vifs')
        # Nova's ironic spawn (what _land calls after the VIFs), recorded
        # without the driver itself; a test may swap self.nova_spawn
        self.nova_spawn = rec('spawn')
        p = mock.patch.object(
            driver.ironic_driver.IronicDriver, 'spawn', autospec=True,
            side_effect=lambda drv, *a, **k: self.nova_spawn(*a, **k))
        p.start()
        self.addCleanup(p.stop)
        return d

    def ironic(self, d, skip=('node.get', 'node.list_volume_targets',
                              'node.vif_list')):
        return [(m, a) for m, a, k in d.ironicclient.calls if m not in skip]

    # -- source side
    def test_migrate_refuses_a_server_not_booted_from_a_volume(self):
        d = self.drv()
        e = self.assertRaises(exception.InstanceFaultRollback,
                              d.migrate_disk_and_power_off, None,
                              self.instance, '10.0.0.2', None, NET,
                              bdi(('data', -1)))
        self.assertIsInstance(e.inner_exception,
                              exception.MigrationPreCheckError)
        self.assertIn('booted from a Cinder volume', str(e))
        self.assertEqual([], self.events)             # nothing touched
        self.assertEqual([], d.ironicclient.calls)

    def test_migrate_powers_off_undeploys_and_releases_the_source(self):
        d = self.drv(targets=[target('boot', 0), target('data', -1)])
        d.ironicclient.nodes[SRC] = [ironic_node('active'),
                                     ironic_node('deleting'),
                                     ironic_node('cleaning', instance=None)]
        d.ironicclient.vifs[SRC] = ['port-1', 'other']
        info = d.migrate_disk_and_power_off(
            None, self.instance, '10.0.0.2', None, NET,
            bdi(('boot', 0), ('data', -1)), 30, 2)
        self.assertEqual({'source_node': SRC}, jsonutils.loads(info))
        self.assertEqual([('power_off', (self.instance, 30, 2), {})],
                         self.events)
        self.assertEqual([('node.set_provision_state', (SRC, 'deleted')),
                          ('volume_target.delete', ('t-boot',)),
                          ('volume_target.delete', ('t-data',)),
                          ('node.vif_detach', (SRC, 'port-1'))],
                         self.ironic(d))
        self.assertEqual(['other'], d.ironicclient.vifs[SRC])

    def test_migrate_power_off_failure_changes_nothing(self):
        d = self.drv()
        d.power_off = d.rec('power_off', RuntimeError('BMC unreachable'))
        e = self.assertRaises(exception.InstanceFaultRollback,
                              d.migrate_disk_and_power_off, None,
                              self.instance, '10.0.0.2', None, NET,
                              bdi(('boot', 0)))
        self.assertIn('powering off failed: BMC unreachable', str(e))
        self.assertEqual([], d.ironicclient.calls)

    def test_migrate_undeploy_failure_empties_the_dpu_and_says_why(self):
        d = self.drv(targets=[target('boot', 0)])
        d.ironicclient.nodes[SRC] = [ironic_node('active'),
                                     ironic_node('error',
                                                 last_error=AGENT_FAIL)]
        d.ironicclient.vifs[SRC] = ['port-1']
        e = self.assertRaises(exception.MigrationError,
                              d.migrate_disk_and_power_off, None,
                              self.instance, '10.0.0.2', None, NET,
                              bdi(('boot', 0)))
        self.assertEqual('Migration error: releasing the source node failed: '
                         'undeploy failed: DPU agent: '
                         'nvmf_subsystem_remove_ns: busy',
                         e.format_message())
        self.assertEqual([('node.set_provision_state', (SRC, 'deleted')),
                          ('volume_target.delete', ('t-boot',)),
                          ('node.vif_detach', (SRC, 'port-1')),
                          ('node.vendor_passthru', (SRC, 'sync_state'))],
                         self.ironic(d))

    def test_migrate_refused_target_deletion_fails_the_release(self):
        # undeployed, but Ironic keeps a volume target: the source is not
        # released (a stale target would reach the node's next server)
        d = self.drv(targets=[target('boot', 0), target('data', -1)])
        d.ironicclient.nodes[SRC] = [ironic_node('active'),
                                     ironic_node('cleaning', instance=None)]
        d.ironicclient.vifs[SRC] = ['port-1']
        d.ironicclient.fail['volume_target.delete'] = ironic_exc_internal(
            'target busy')
        e = self.assertRaises(exception.MigrationError,
                              d.migrate_disk_and_power_off, None,
                              self.instance, '10.0.0.2', None, NET,
                              bdi(('boot', 0)))
        self.assertIn('releasing the source node failed: target busy',
                      e.format_message())
        self.assertEqual([('node.set_provision_state', (SRC, 'deleted')),
                          ('volume_target.delete', ('t-boot',)),
                          ('volume_target.delete', ('t-data',)),
                          ('node.vif_detach', (SRC, 'port-1')),
                          ('node.vendor_passthru', (SRC, 'sync_state'))],
                         self.ironic(d))

    def test_migrate_undeploy_wait_is_bounded(self):
        d = self.drv()
        d.ironicclient.nodes[SRC] = [ironic_node('active'),
                                     ironic_node('deleting')]
        e = self.assertRaises(exception.MigrationError,
                              d.migrate_disk_and_power_off, None,
                              self.instance, '10.0.0.2', None, NET,
                              bdi(('boot', 0)))
        self.assertIn('not undeployed within 300s (provision state '
                      'deleting)', e.format_message())
        self.assertGreaterEqual(self.now[0], 300)

    # -- destination side
    def test_finish_migration_deploys_the_destination_node(self):
        d = self.drv()
        self.instance.node = DST
        d.ironicclient.nodes[DST] = [ironic_node('cleaning', instance=None),
                                     ironic_node('available', instance=None)]
        info = bdi(('boot', 0))
        d.finish_migration(None, None, self.instance, '{}', NET, 'img', True,
                           {'rp': {}}, info, True)
        self.assertEqual(
            [('prepare_for_spawn', (self.instance,), {}),
             ('plug_vifs', ('node:' + DST, self.instance, NET), {}),
             ('spawn', (None, self.instance, 'img', [], None, {'rp': {}}),
              {'network_info': NET, 'block_device_info': info,
               'power_on': True, 'accel_info': None})],
            self.events)
        self.assertEqual([], self.ironic(d))   # waited for cleaning only

    def test_finish_migration_stopped_server_stays_off(self):
        d = self.drv()
        self.instance.node = DST
        d.ironicclient.nodes[DST] = [ironic_node('available', instance=None)]
        d.finish_migration(None, None, self.instance, '{}', NET, 'img', False,
                           {}, bdi(('boot', 0)), False)
        self.assertEqual(['prepare_for_spawn', 'plug_vifs', 'spawn',
                          'power_off'], [e[0] for e in self.events])

    def test_finish_migration_refuses_a_node_in_maintenance(self):
        d = self.drv()
        self.instance.node = DST
        d.ironicclient.nodes[DST] = [ironic_node('available', instance=None,
                                                 maintenance=True)]
        e = self.assertRaises(exception.InstanceDeployFailure,
                              d.finish_migration, None, None, self.instance,
                              '{}', NET, 'img', True, {}, bdi(('boot', 0)))
        self.assertIn('node-dst: in maintenance', e.format_message())
        self.assertEqual([], self.events)

    def test_finish_migration_failure_releases_the_destination(self):
        d = self.drv(targets=[target('boot', 0)])
        self.instance.node = DST
        d.ironicclient.nodes[DST] = [
            ironic_node('available', instance=None),      # the wait
            ironic_node('deploy failed'),                  # the release
            ironic_node('available', instance=None)]
        d.ironicclient.vifs[DST] = ['port-1']
        err = exception.InstanceDeployFailure('Deploy failed: DPU agent: x')
        self.nova_spawn = d.rec('spawn', err)
        e = self.assertRaises(exception.InstanceDeployFailure,
                              d.finish_migration, None, None, self.instance,
                              '{}', NET, 'img', True, {}, bdi(('boot', 0)))
        self.assertIs(err, e)
        self.assertEqual([('node.set_provision_state', (DST, 'deleted')),
                          ('volume_target.delete', ('t-boot',)),
                          ('node.vif_detach', (DST, 'port-1'))],
                         self.ironic(d))

    def test_finish_migration_other_failure_gets_a_readable_fault(self):
        d = self.drv()
        self.instance.node = DST
        d.ironicclient.nodes[DST] = [ironic_node('available', instance=None)]
        d._plug_vifs = d.rec('plug_vifs', RuntimeError(
            'Cannot attach VIF port-1: ' + AGENT_FAIL + ' (HTTP 400)'))
        e = self.assertRaises(exception.InstanceDeployFailure,
                              d.finish_migration, None, None, self.instance,
                              '{}', NET, 'img', True, {}, bdi(('boot', 0)))
        self.assertEqual('Failed to deploy instance: Cannot attach VIF '
                         'port-1: DPU agent: nvmf_subsystem_remove_ns: busy',
                         e.format_message())

    # -- confirm / revert
    def test_confirm_checks_the_source_is_released(self):
        d = self.drv()
        self.instance.node = DST
        d.ironicclient.nodes[SRC] = [ironic_node('available', instance=None)]
        mig = types.SimpleNamespace(source_node=SRC, dest_node=DST)
        d.confirm_migration(None, mig, self.instance, NET)
        self.assertEqual([], self.ironic(d))
        self.assertEqual([('node.get', (SRC,)),
                          ('node.list_volume_targets', (SRC,)),
                          ('node.vif_list', (SRC,))],
                         [(m, a) for m, a, k in d.ironicclient.calls])

    def test_confirm_releases_a_source_still_holding_the_instance(self):
        d = self.drv(targets=[target('boot', 0)])
        self.instance.node = DST
        d.ironicclient.nodes[SRC] = [ironic_node('available')]
        mig = types.SimpleNamespace(source_node=SRC, dest_node=DST)
        d.confirm_migration(None, mig, self.instance, NET)
        self.assertEqual([('node.update', (SRC, [
                              {'op': 'remove', 'path': '/instance_info'},
                              {'op': 'remove', 'path': '/instance_uuid'}])),
                          ('volume_target.delete', ('t-boot',))],
                         self.ironic(d))

    def test_confirm_leaves_a_node_another_instance_took(self):
        d = self.drv(targets=[target('boot', 0)])
        d.ironicclient.nodes[SRC] = [ironic_node('active', instance='inst-2')]
        mig = types.SimpleNamespace(source_node=SRC, dest_node=DST)
        d.confirm_migration(None, mig, self.instance, NET)
        self.assertEqual([('node.get', (SRC,))],
                         [(m, a) for m, a, k in d.ironicclient.calls])

    def test_revert_releases_the_destination_and_redeploys_the_source(self):
        d = self.drv()
        d.ironicclient.nodes[DST] = [ironic_node('available', instance=None)]
        d.ironicclient.nodes[SRC] = [ironic_node('available', instance=None)]
        mig = types.SimpleNamespace(source_node=SRC, dest_node=DST)
        info = bdi(('boot', 0))
        d.finish_revert_migration(None, self.instance, NET, mig, info, True)
        self.assertEqual(
            [('prepare_for_spawn', (self.instance,), {}),
             ('plug_vifs', ('node:' + SRC, self.instance, NET), {}),
             ('spawn', (None, self.instance, 'image-meta', [], None, None),
              {'network_info': NET, 'block_device_info': info,
               'power_on': True, 'accel_info': None})],
            self.events)
        self.assertEqual(
            [DST, SRC], [a[0] for m, a, k in d.ironicclient.calls
                         if m == 'node.get'])

    def test_revert_refuses_while_the_destination_holds_the_server(self):
        d = self.drv()
        d.ironicclient.nodes[DST] = [ironic_node('active'),
                                     ironic_node('error',
                                                 last_error=AGENT_FAIL)]
        mig = types.SimpleNamespace(source_node=SRC, dest_node=DST)
        e = self.assertRaises(exception.MigrationError,
                              d.finish_revert_migration, None, self.instance,
                              NET, mig, bdi(('boot', 0)), True)
        self.assertIn('releasing the destination node failed: undeploy '
                      'failed: DPU agent: nvmf_subsystem_remove_ns: busy',
                      e.format_message())
        self.assertEqual([], self.events)          # the source not touched

    def test_host_ip(self):
        with mock.patch.object(driver.CONF, 'my_ip', '192.0.2.7'):
            self.assertEqual('192.0.2.7', self.drv().get_host_ip_addr())


class PlacementTests(Base):
    """A node holding an instance is not reserved (moves rewrite its
    allocation); one without an instance is, while not available."""

    def inventory(self, node):
        from nova.compute import provider_tree
        tree = provider_tree.ProviderTree()
        tree.new_root(NODE, NODE)
        d = self.drv([answer()])
        node.uuid = NODE
        node.resource_class = 'baremetal'
        node.properties = {'cpu_arch': 'x86_64'}
        node.traits = []
        node.power_state = 'power on'
        d._node_from_cache = mock.Mock(return_value=node)
        d.update_provider_tree(tree, NODE)
        return tree.data(NODE).inventory['CUSTOM_BAREMETAL']

    def test_deployed_node_is_not_reserved(self):
        inv = self.inventory(ironic_node('active'))
        self.assertEqual((1, 0), (inv['total'], inv['reserved']))

    def test_node_in_maintenance_with_an_instance_is_not_reserved(self):
        inv = self.inventory(ironic_node('active', maintenance=True))
        self.assertEqual(0, inv['reserved'])

    def test_free_node_still_reserved_while_not_available(self):
        self.assertEqual(1, self.inventory(
            ironic_node('cleaning', instance=None))['reserved'])
        self.assertEqual(0, self.inventory(
            ironic_node('available', instance=None))['reserved'])


OLD_HOST, NEW_HOST = 'nova-ironic-1', 'nova-ironic-2'
VIFS = [{'id': 'port-a'}, {'id': 'port-b'}]


class LandingTests(unittest.TestCase):
    """unshelve onto another node and evacuate with fencing."""

    def setUp(self):
        super().setUp()
        for target, name, value in (
                (driver, 'time', fake_clock(self)),
                (compute_utils, 'EventReporter', self.event)):
            p = mock.patch.object(target, name, value)
            p.start()
            self.addCleanup(p.stop)
        driver.CONF.set_override('host', NEW_HOST)
        self.addCleanup(driver.CONF.clear_override, 'host')
        self.d = driver.IronicDPUDriver.__new__(driver.IronicDPUDriver)
        self.d.node_cache = {}
        self.ironic = self.d.ironicclient = FakeIronic([answer()])
        self.conn = self.ironic.conn = self.d._ironic_connection = \
            FakeConnection(self.ironic.calls, bm_node(NODE2))
        self.calls = self.ironic.calls
        self.spawned = []
        p = mock.patch.object(driver.ironic_driver.IronicDriver, 'spawn',
                              autospec=True, side_effect=self.fake_spawn)
        self.spawn = p.start()
        self.addCleanup(p.stop)
        p = mock.patch.object(driver.ironic_driver.IronicDriver, 'destroy',
                              autospec=True, side_effect=self.fake_destroy)
        self.destroy = p.start()
        self.addCleanup(p.stop)

    @contextlib.contextmanager
    def event(self, context, name, host, *uuids, graceful_exit=False):
        self.calls.append(('event.start', (name, host) + uuids, {}))
        yield
        self.calls.append(('event.finish', (name,), {}))

    def fake_spawn(self, drv, context, instance, *args, **kwargs):
        self.calls.append(('spawn', (instance.node,), {
            'block_device_info': kwargs.get('block_device_info')}))

    def fake_destroy(self, drv, context, instance, network_info, *a, **k):
        self.calls.append(('destroy', (instance.uuid,), {}))

    def instance(self, **kw):
        fields = dict(uuid='inst-1', node=None, host=None, hostname='srv',
                      vm_state=vm_states.SHELVED_OFFLOADED,
                      task_state=task_states.SPAWNING, saves=[])
        fields.update(kw)
        return FakeInstance(**fields)

    def names(self):
        out = []
        for m, a, k in self.calls:
            if m == 'node.vendor_passthru':
                out.append('passthru %s %s' % (a[1], a[0]))
            elif m in ('node.list_volume_targets',
                       'node.list_volume_connectors'):
                continue
            elif m in ('sdk.get_node', 'node.get', 'node.vif_list'):
                continue
            else:
                out.append('%s %s' % (m, a[0]))
        return out

    # ------------------------------------------------------------ unshelve
    def test_unshelve_connector_uses_the_node_placement_allocated(self):
        # Nova connects the volumes before the claim records instance.node
        inst = self.instance()
        seen = []

        def nova_connector(drv, instance):
            seen.append(instance.node)
            return {'host': 'srv'}
        reports = mock.Mock()
        reports.get_allocations_for_consumer.return_value = {
            NODE2: {'resources': {'CUSTOM_BAREMETAL': 1}}}
        with mock.patch.object(report, 'report_client_singleton',
                               return_value=reports), \
                mock.patch.object(driver.ironic_driver.IronicDriver,
                                  'get_volume_connector', autospec=True,
                                  side_effect=nova_connector):
            props = self.d.get_volume_connector(inst)
        self.assertEqual({'host': 'srv', 'nqn': 'nqn.host-2'}, props)
        self.assertEqual([NODE2], seen)
        self.assertIsNone(inst.node)     # the claim records it, not we
        self.assertEqual('inst-1', reports.get_allocations_for_consumer
                         .call_args.args[1])

    def test_connector_without_a_single_allocated_node_is_refused(self):
        reports = mock.Mock()
        reports.get_allocations_for_consumer.return_value = {}
        with mock.patch.object(report, 'report_client_singleton',
                               return_value=reports):
            e = self.assertRaises(exception.NovaException,
                                  self.d.get_volume_connector,
                                  self.instance())
        self.assertIn('no single Ironic node', e.format_message())

    def test_unshelve_reserves_the_node_and_plugs_vifs_before_deploying(self):
        inst = self.instance(node=NODE2)
        self.d.spawn(None, inst, {}, [], None, {}, network_info=VIFS,
                     block_device_info={'bdi': 1})
        self.assertEqual(['sdk.update_node node-2',
                          'node.vif_attach node-2', 'node.vif_attach node-2',
                          'spawn node-2'], self.names())
        self.assertEqual('inst-1', self.conn.nodes[NODE2].instance_id)
        self.assertEqual({'bdi': 1}, self.calls[-1][2]['block_device_info'])

    def test_unshelve_failure_releases_the_node(self):
        self.spawn.side_effect = exception.InstanceDeployFailure('boom')
        inst = self.instance(node=NODE2)
        self.assertRaises(exception.InstanceDeployFailure, self.d.spawn,
                          None, inst, {}, [], None, {}, network_info=VIFS)
        self.assertEqual(['node.vif_attach node-2', 'node.update node-2',
                          'node.vif_detach node-2', 'node.vif_detach node-2'],
                         self.names()[-4:])
        self.assertIsNone(self.conn.nodes[NODE2].instance_id)
        self.assertEqual([], self.ironic.vifs[NODE2])

    def test_unshelve_onto_a_busy_node_touches_nothing(self):
        self.conn.nodes[NODE2].instance_id = 'other'
        e = self.assertRaises(exception.InstanceDeployFailure,
                              self.d.spawn, None, self.instance(node=NODE2),
                              {}, [], None, {}, network_info=VIFS)
        self.assertIn('node-2: holds instance other', e.format_message())
        self.assertEqual([], self.names())
        self.assertEqual('other', self.conn.nodes[NODE2].instance_id)

    def test_unshelve_waits_while_the_node_cleans(self):
        # shelved and unshelved at once onto the node it just left
        self.conn.nodes[NODE2].provision_state = 'cleaning'
        waits = []

        def sleep(s):
            waits.append(s)
            self.conn.nodes[NODE2].provision_state = 'available'
        with mock.patch.object(driver.time, 'sleep', sleep):
            self.d.spawn(None, self.instance(node=NODE2), {}, [], None, {},
                         network_info=VIFS)
        self.assertEqual(1, len(waits))
        self.assertEqual('spawn node-2', self.names()[-1])

    def test_a_build_spawns_as_nova_does(self):
        inst = self.instance(node=NODE2, vm_state=vm_states.BUILDING)
        self.d.spawn(None, inst, {}, [], None, {}, network_info=VIFS)
        self.assertEqual(['spawn node-2'], self.names())

    def test_cleanup_removes_the_targets_of_the_node_it_cleans(self):
        # instance.node may name another node while the server moves
        self.ironic.targets = [types.SimpleNamespace(uuid='t1',
                                                     volume_id='v')]
        node = types.SimpleNamespace(uuid=NODE2)
        self.d._cleanup_deploy(node, self.instance(node=NODE),
                               remove_instance_info=False)
        listed = [a[0] for m, a, k in self.calls
                  if m == 'node.list_volume_targets']
        self.assertEqual([NODE2], listed)
        self.assertIn('volume_target.delete t1', self.names())

    # ------------------------------------------------------------ evacuate
    def evacuate(self, inst, allocations=None):
        bdms = [types.SimpleNamespace(volume_id='root', is_volume=True),
                types.SimpleNamespace(volume_id='data', is_volume=True)]

        def detach(context, bdms, detach_root_bdm=True):
            self.calls.append(('cinder.replace_attachments',
                               (len(bdms),), {}))

        def attach(context, instance, bdms):
            self.calls.append(('cinder.connect', (instance.node,), {}))
            return {'bdi': instance.node}
        self.d.rebuild(None, inst, {}, [], None, allocations or {
            NODE: {}, NODE2: {}}, bdms, detach, attach, network_info=VIFS,
            evacuate=True)

    def evacuee(self):
        self.conn.nodes[NODE] = bm_node(NODE, instance='inst-1',
                                        maintenance=True, state='active')
        self.ironic.answers['fence'] = {'agent': 'dropped'}
        return self.instance(node=NODE, host=OLD_HOST,
                             vm_state=vm_states.ACTIVE,
                             task_state=task_states.REBUILDING)

    def test_evacuate_fences_the_failed_node_before_connecting_elsewhere(self):
        inst = self.evacuee()
        self.evacuate(inst)
        self.assertEqual([
            'event.start ironic_dpu_fence_node',
            'passthru fence node-1',
            'passthru agent_state node-1',      # until it holds no volume
            'cinder.replace_attachments 2',     # the target drops exports
            'node.update node-1',               # instance_uuid released
            'event.finish ironic_dpu_fence_node',
            'cinder.connect node-2',            # the new DPU's host NQN
            'sdk.update_node node-2',           # reserved as a build does
            'node.vif_attach node-2', 'node.vif_attach node-2',
            'spawn node-2'], self.names())
        self.assertIsNone(self.conn.nodes[NODE].instance_id)
        self.assertEqual('inst-1', self.conn.nodes[NODE2].instance_id)
        self.assertEqual({'bdi': NODE2}, self.calls[-1][2]['block_device_info'])
        self.assertEqual(NODE, inst.node)   # Nova's claim moves it at the end
        self.assertEqual([(task_states.REBUILD_BLOCK_DEVICE_MAPPING,
                           [task_states.REBUILDING]),
                          (task_states.REBUILD_SPAWNING,
                           [task_states.REBUILD_BLOCK_DEVICE_MAPPING])],
                         inst.saves)

    def test_evacuate_waits_until_the_old_dpu_dropped_its_volumes(self):
        inst = self.evacuee()
        self.ironic.states = [answer({'volume_id': 'root',
                                      'state': 'attached'}), answer()]
        self.evacuate(inst)
        names = self.names()
        self.assertEqual(2, names.count('passthru agent_state node-1'))
        self.assertLess(names.index('passthru agent_state node-1') + 1,
                        names.index('cinder.replace_attachments 2'))

    def test_evacuate_with_the_old_dpu_unreachable_still_fences_in_cinder(self):
        inst = self.evacuee()
        self.ironic.fail['fence'] = ironic_exc_internal('agent unreachable')
        with self.assertLogs(driver.LOG.logger, 'WARNING') as logs:
            self.evacuate(inst)
        names = self.names()
        self.assertNotIn('passthru agent_state node-1', names)
        self.assertLess(names.index('cinder.replace_attachments 2'),
                        names.index('cinder.connect node-2'))
        self.assertTrue(any('not reached' in line for line in logs.output))

    def test_evacuate_to_an_unavailable_node_fences_nothing(self):
        inst = self.evacuee()
        self.conn.nodes[NODE2].is_maintenance = True
        self.assertRaises(exception.ComputeResourcesUnavailable,
                          self.evacuate, inst)
        self.assertEqual([], self.names())

    def test_evacuate_without_a_new_allocation_fences_nothing(self):
        inst = self.evacuee()
        self.assertRaises(exception.InstanceDeployFailure, self.evacuate,
                          inst, {NODE: {}})
        self.assertEqual([], self.names())

    def test_failed_evacuation_leaves_nothing_attached(self):
        inst = self.evacuee()

        def failing_spawn(*args, **kwargs):
            self.fake_spawn(*args, **kwargs)
            raise exception.InstanceDeployFailure('boom')
        self.spawn.side_effect = failing_spawn
        self.assertRaises(exception.InstanceDeployFailure, self.evacuate,
                          inst)
        self.assertEqual(['spawn node-2', 'node.update node-2',
                          'node.vif_detach node-2', 'node.vif_detach node-2',
                          'cinder.replace_attachments 2'],
                         self.names()[-5:])
        self.assertIsNone(self.conn.nodes[NODE2].instance_id)

    def test_rebuild_in_place_is_novas(self):
        inst = self.instance(node=NODE2, host=NEW_HOST)
        with mock.patch.object(driver.ironic_driver.IronicDriver, 'rebuild',
                               autospec=True) as rebuild:
            self.d.rebuild(None, inst, {}, [], None, {}, [], None, None)
        rebuild.assert_called_once()
        self.assertEqual([], self.names())

    def test_capabilities_allow_evacuate(self):
        self.assertTrue(driver.IronicDPUDriver.capabilities[
            'supports_evacuate'])

    def test_returning_compute_leaves_the_evacuated_server_alone(self):
        # nova-ironic-1 back: Ironic finds the server on its new node
        driver.CONF.set_override('host', OLD_HOST)
        inst = self.instance(node=NODE2, host=NEW_HOST,
                             vm_state=vm_states.ACTIVE)
        self.conn.nodes[NODE2].instance_id = 'inst-1'
        self.d.destroy(None, inst, VIFS)
        self.assertEqual([], self.names())
        self.assertFalse(self.d.instance_exists(inst))

    # ------------------------------------- evacuations Nova cannot finish
    def start(self, migrations, inst_host=NEW_HOST):
        """The failed node's compute (OLD_HOST) starts again; migrations
        are its 'done' evacuation records."""
        driver.CONF.set_override('host', OLD_HOST)
        reports = mock.Mock()
        inst = types.SimpleNamespace(host=inst_host, node=NODE2)
        with mock.patch.object(driver.ironic_driver.IronicDriver,
                               'init_host', autospec=True) as nova_init, \
                mock.patch.object(driver.migration_obj.MigrationList,
                                  'get_by_filters',
                                  side_effect=migrations) as listed, \
                mock.patch.object(driver.instance_obj.Instance,
                                  'get_by_uuid', return_value=inst), \
                mock.patch.object(report, 'report_client_singleton',
                                  return_value=reports):
            self.d.init_host(OLD_HOST)
        nova_init.assert_called_once_with(self.d, OLD_HOST)
        return listed, reports.remove_provider_tree_from_instance_allocation

    def evacuation(self):
        mig = mock.Mock(uuid='mig-1', instance_uuid='inst-1',
                        source_node=NODE, status='done')
        return mig

    def test_start_completes_an_evacuation_whose_node_was_fenced(self):
        self.conn.nodes[NODE] = bm_node(NODE, maintenance=True,
                                        state='active')   # fenced: no instance
        mig = self.evacuation()
        listed, remove = self.start([[mig]])
        self.assertEqual({'source_compute': OLD_HOST, 'status': 'done',
                          'migration_type': 'evacuation'},
                         listed.call_args.args[1])
        remove.assert_called_once_with(mock.ANY, 'inst-1', NODE)
        self.assertEqual('completed', mig.status)
        mig.save.assert_called_once_with()

    def test_start_leaves_an_unfenced_evacuation_to_nova(self):
        self.conn.nodes[NODE] = bm_node(NODE, instance='inst-1')
        mig = self.evacuation()
        _, remove = self.start([[mig]])
        remove.assert_not_called()
        self.assertEqual('done', mig.status)

    def test_start_leaves_a_server_not_on_another_compute_to_nova(self):
        self.conn.nodes[NODE] = bm_node(NODE)
        for host in (OLD_HOST, None):
            mig = self.evacuation()
            _, remove = self.start([[mig]], inst_host=host)
            remove.assert_not_called()
            self.assertEqual('done', mig.status)

    def test_start_never_fails_for_an_evacuation(self):
        mig = self.evacuation()              # its node: unknown to Ironic
        self.ironic.nodes[NODE] = []         # node.get raises IndexError
        with self.assertLogs(driver.LOG.logger, 'WARNING') as logs:
            self.start([[mig]])
            self.start(RuntimeError('database down'))
        self.assertEqual('done', mig.status)
        self.assertEqual(2, len(logs.output))

    def test_destroy_of_its_own_server_is_novas(self):
        inst = self.instance(node=NODE2, host=NEW_HOST)
        self.d.destroy(None, inst, VIFS)
        self.assertEqual(['destroy inst-1'], self.names())

    def assertRaises(self, exc, fn, *args, **kwargs):
        with super().assertRaises(exc) as cm:
            fn(*args, **kwargs)
        return cm.exception


def ironic_exc_internal(text):
    return driver.ironic_exc.InternalServerError(text)
