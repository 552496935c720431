"""The Nova compute driver nova/virt/ironic_dpu against Debian's Nova (Zed):
the package is loaded from the repository the way Nova loads it once it is
installed in nova/virt/. A process of its own (make python-unit): Nova and
Ironic register clashing options on oslo.config's one global CONF."""
import os
import types
import unittest
from unittest import mock

import nova.virt
from oslo_serialization import jsonutils

from nova import exception
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
    return types.SimpleNamespace(volume_id=volume_id, boot_index=boot_index)


def answer(*vols):
    return {'status': {}, 'state': {'observed': {'volumes': list(vols)}}}


class FakeIronic(object):
    """ironicclient calls as the wrapper makes them; records each call."""

    def __init__(self, states, targets=()):
        self.states = list(states)     # successive agent_state answers
        self.targets = list(targets)
        self.calls = []
        self.fail = {}                 # passthru method -> exception

    def call(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        if method == 'node.list_volume_targets':
            return list(self.targets)
        if method == 'volume_target.create':
            self.targets.append(target(kwargs['volume_id'],
                                       kwargs['boot_index']))
            return None
        if method == 'node.list_volume_connectors':
            return [types.SimpleNamespace(type='iqn', connector_id='iqn.x'),
                    types.SimpleNamespace(type='nqn', connector_id='nqn.host')]
        if method == 'node.vendor_passthru':
            name = args[1]
            if name in self.fail:
                raise self.fail[name]
            if name == 'agent_state':
                st = self.states.pop(0) if len(self.states) > 1 else self.states[0]
                return mock.Mock(to_dict=mock.Mock(return_value=st))
            return mock.Mock(to_dict=mock.Mock(return_value={}))
        raise AssertionError('unexpected call %s' % method)

    def passthrus(self):
        return [(a[1], k.get('args'), k.get('http_method'))
                for m, a, k in self.calls if m == 'node.vendor_passthru'
                and a[1] != 'agent_state']


class DriverTests(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.now = [0.0]
        fake_time = types.SimpleNamespace(
            monotonic=lambda: self.now[0],
            sleep=lambda s: self.now.__setitem__(0, self.now[0] + s))
        p = mock.patch.object(driver, 'time', fake_time)
        p.start()
        self.addCleanup(p.stop)
        self.instance = types.SimpleNamespace(node=NODE, uuid='inst-1')

    def drv(self, states, targets=()):
        d = driver.IronicDPUDriver.__new__(driver.IronicDPUDriver)
        d.ironicclient = FakeIronic(states, targets)
        return d

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

    def assertRaises(self, exc, fn, *args, **kwargs):
        with super().assertRaises(exc) as cm:
            fn(*args, **kwargs)
        return cm.exception
