"""Test helpers: real Ironic objects (no DB; save() is a no-op mock) and a
fake task, so the driver code runs against the same object API as in the
conductor."""
import unittest
from unittest import mock
import uuid

from ironic.common import context
from ironic.conf import CONF
from ironic import objects

from ironic_dpu import conf as _conf  # noqa: F401

objects.register_all()

NODE_UUID = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123'
OLD_FORMAT = {'nqn': 'nqn.2014-08.org.example:vol-a', 'target_portal': '10.0.0.5',
              'target_port': 4420, 'transport_type': 'tcp', 'ns_id': 1}
NEW_FORMAT = {'target_nqn': 'nqn.2014-08.org.example:vol-b',
              'vol_uuid': '4c0f4b3e-8e5b-4a0b-9d8c-6a1b2c3d4e5f',
              'portals': [['10.0.0.6', 4420, 'tcp']]}


def _uuid():
    return str(uuid.uuid4())


class FakeTask(object):
    def __init__(self, node, ports=(), targets=(), connectors=()):
        self.context = context.RequestContext(
            auth_token='SECRET-TOKEN', request_id='req-abc',
            global_request_id='req-global')
        self.node = node
        self.ports = list(ports)
        self.portgroups = []
        self.volume_targets = list(targets)
        self.volume_connectors = list(connectors)
        self.driver = mock.MagicMock()


class TestCase(unittest.TestCase):

    def setUp(self):
        super().setUp()
        self.ctx = context.get_admin_context()
        for cls in (objects.Node, objects.Port, objects.VolumeTarget,
                    objects.VolumeConnector):
            p = mock.patch.object(cls, 'save', autospec=True)
            p.start()
            self.addCleanup(p.stop)
        self.addCleanup(CONF.reset)

    def patch(self, target, attribute, **kwargs):
        """mock.patch.object for the rest of the test; returns the mock."""
        p = mock.patch.object(target, attribute, **kwargs)
        self.addCleanup(p.stop)
        return p.start()

    def node(self, **kw):
        fields = dict(uuid=NODE_UUID, driver_internal_info={},
                      driver_info={}, provision_state='deploying',
                      power_state='power off', instance_info={},
                      network_interface='dpu')
        fields.update(kw)
        return objects.Node(self.ctx, **fields)

    def port(self, address='52:54:00:12:34:01', vif=None, extra=None,
             llc=None):
        p = objects.Port(self.ctx, uuid=_uuid(), address=address,
                         extra=dict(extra or {}),
                         internal_info={'tenant_vif_port_id': vif} if vif
                         else {},
                         local_link_connection=dict(llc or {}),
                         physical_network=None, portgroup_id=None,
                         pxe_enabled=True, is_smartnic=False)
        p.obj_reset_changes()
        return p

    def target(self, volume_id, boot_index=None, props=None,
               volume_type='nvmeof'):
        return objects.VolumeTarget(
            self.ctx, uuid=_uuid(), volume_type=volume_type,
            properties=dict(OLD_FORMAT if props is None else props),
            boot_index=boot_index, volume_id=volume_id)

    def connector(self, ctype='nqn', cid='nqn.2014-08.org.example:dpu-1'):
        return objects.VolumeConnector(self.ctx, uuid=_uuid(), type=ctype,
                                       connector_id=cid)

    def raises(self, exc, fn, *args, **kwargs):
        """assertRaises that returns the exception (unittest's does not)."""
        with self.assertRaises(exc) as cm:
            fn(*args, **kwargs)
        return cm.exception
