import json
from unittest import mock

import oslo_messaging as messaging
from oslo_messaging._drivers import common as om_common

from ironic.conf import CONF

from ironic_dpu import agent_client
from ironic_dpu import exception
from ironic_dpu.tests import base


def remote(cls, module, message):
    """The exception oslo raises in the caller for a Go agent's failure."""
    data = json.dumps({'class': cls, 'module': module, 'message': message,
                       'tb': ['agent.go:42\n'], 'args': [message],
                       'kwargs': {}})
    return om_common.deserialize_remote_exception(
        data, agent_client.ALLOWED_EXMODS)


class ClientWiringTests(base.TestCase):

    def setUp(self):
        super().setUp()
        self.transport = mock.sentinel.transport
        p = mock.patch.object(messaging, 'get_rpc_client', autospec=True)
        self.get_client = p.start()
        self.addCleanup(p.stop)
        self.prepared = self.get_client.return_value.prepare.return_value

    def test_target_options_and_context(self):
        CONF.set_override('timeout', 17, group='dpu_agent')
        CONF.set_override('call_monitor_timeout', 9, group='dpu_agent')
        CONF.set_override('retry', 1, group='dpu_agent')
        self.prepared.call.return_value = {'observed': {}}
        task = base.FakeTask(self.node())
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        client.apply_state(task.context, {'generation': 1})
        transport, target = self.get_client.call_args.args
        self.assertIs(self.transport, transport)
        self.assertEqual(('ironic_dpu', 'ironic-dpu-agent', base.NODE_UUID, '1.0'),
                         (target.exchange, target.topic, target.server,
                          target.version))
        opts = self.get_client.call_args.kwargs['transport_options']
        self.assertTrue(opts.at_least_once)
        self.get_client.return_value.prepare.assert_called_once_with(
            version='1.0', timeout=17, call_monitor_timeout=9, retry=1)
        self.assertEqual('1.3', self.get_client.call_args.kwargs['version_cap'])
        ctxt, method = self.prepared.call.call_args.args
        self.assertEqual('apply_state', method)
        self.assertEqual({'state': {'generation': 1}},
                         self.prepared.call.call_args.kwargs)
        # request ids only: never the token Ironic's context carries
        self.assertEqual({'request_id': 'req-abc',
                          'global_request_id': 'req-global'}, ctxt)

    def test_method_names_and_kwargs(self):
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        calls = [(client.get_status, (), 'get_status', {}),
                 (client.get_state, (), 'get_state', {}),
                 (client.attach_volume, ({'volume_id': 'v'},), 'attach_volume',
                  {'volume': {'volume_id': 'v'}}),
                 (client.detach_volume, ('v',), 'detach_volume', {'volume_id': 'v'}),
                 (client.plug_vif, ({'port_id': 'p'},), 'plug_vif',
                  {'vif': {'port_id': 'p'}}),
                 (client.unplug_vif, ('p',), 'unplug_vif', {'port_id': 'p'}),
                 # The conductor's generation rides along when it has one.
                 (client.plug_vif, ({'port_id': 'p'}, 4), 'plug_vif',
                  {'vif': {'port_id': 'p'}, 'expected_generation': 4}),
                 (client.unplug_vif, ('p', 0), 'unplug_vif',
                  {'port_id': 'p', 'expected_generation': 0}),
                 (client.attach_volume, ({'volume_id': 'v'}, 2),
                  'attach_volume', {'volume': {'volume_id': 'v'},
                                    'expected_generation': 2}),
                 (client.detach_volume, ('v', 9), 'detach_volume',
                  {'volume_id': 'v', 'expected_generation': 9})]
        for fn, args, method, kwargs in calls:
            fn(None, *args)
            self.assertEqual(method, self.prepared.call.call_args.args[1])
            self.assertEqual(kwargs, self.prepared.call.call_args.kwargs)

    def test_get_state_timeout(self):
        agent_client.AgentClient(base.NODE_UUID, self.transport).get_state(
            None, timeout=4)
        self.assertEqual(4, self.get_client.return_value.prepare.call_args
                         .kwargs['timeout'])

    def test_ping_is_short(self):
        CONF.set_override('ping_timeout', 3, group='dpu_agent')
        agent_client.AgentClient(base.NODE_UUID, self.transport).ping(None)
        self.assertEqual(3, self.get_client.return_value.prepare.call_args
                         .kwargs['timeout'])
        self.assertEqual('oslo_rpc_server_ping',
                         self.prepared.call.call_args.args[1])

    def test_zero_call_monitor_means_none(self):
        CONF.set_override('call_monitor_timeout', 0, group='dpu_agent')
        CONF.set_override('retry', -1, group='dpu_agent')
        agent_client.AgentClient(base.NODE_UUID, self.transport).get_status(None)
        self.get_client.return_value.prepare.assert_called_once_with(
            version='1.0', timeout=60, call_monitor_timeout=None, retry=None)

    def test_own_transport_url(self):
        CONF.set_override('transport_url', 'rabbit://dpu:pw@10.0.0.1:5672/dpu',
                          group='dpu_agent')
        with mock.patch.object(agent_client, '_transport', None), \
                mock.patch.object(messaging, 'get_rpc_transport',
                                  autospec=True) as grt:
            agent_client.AgentClient(base.NODE_UUID).get_status(None)
            agent_client.get_transport()
        grt.assert_called_once_with(
            CONF, url='rabbit://dpu:pw@10.0.0.1:5672/dpu',
            allowed_remote_exmods=['ironic.common.exception'])


class VersionTests(base.TestCase):
    """Each call at the lowest version carrying what it sends, capped by
    [dpu_agent] rpc_version_cap; an older agent's UnsupportedVersion makes
    apply_state fall back to its 1.0 form."""

    def setUp(self):
        super().setUp()
        p = mock.patch.object(messaging, 'get_rpc_client', autospec=True)
        self.get_client = p.start()
        self.addCleanup(p.stop)
        self.prepare = self.get_client.return_value.prepare
        self.call = self.prepare.return_value.call
        self.call.return_value = {'observed': {}}

    def sent(self):
        return [(c.kwargs['version'], cl.args[1], cl.kwargs) for c, cl in
                zip(self.prepare.call_args_list, self.call.call_args_list)]

    def client(self):
        return agent_client.AgentClient(base.NODE_UUID, mock.sentinel.t)

    def test_apply_state_with_wait_goes_at_1_1(self):
        self.client().apply_state(None, {'generation': 1}, wait=2.0)
        self.assertEqual([('1.1', 'apply_state',
                           {'state': {'generation': 1}, 'wait': 2.0})],
                         self.sent())

    def test_everything_else_goes_at_1_0(self):
        c = self.client()
        c.apply_state(None, {'generation': 1})
        c.get_state(None)
        c.plug_vif(None, {'port_id': 'p'}, 3)
        self.assertEqual(['1.0', '1.0', '1.0'],
                         [v for v, _, _ in self.sent()])

    def test_cap_keeps_wait_back(self):
        CONF.set_override('rpc_version_cap', '1.0', group='dpu_agent')
        c = self.client()
        self.assertFalse(c.can_send_version('1.1'))
        self.assertTrue(c.can_send_version('1.0'))
        c.apply_state(None, {'generation': 1}, wait=2.0)
        self.assertEqual([('1.0', 'apply_state',
                           {'state': {'generation': 1}})], self.sent())
        self.assertEqual('1.0', self.get_client.call_args.kwargs['version_cap'])

    def test_cap_rule_is_oslos(self):
        c = self.client()
        for cap, version, ok in (('1.1', '1.0', True), ('1.1', '1.1', True),
                                 ('1.1', '1.2', False), ('1.1', '2.0', False),
                                 ('2.3', '1.0', False)):
            c.version_cap = cap
            self.assertEqual(ok, c.can_send_version(version), (cap, version))

    def test_cap_must_be_major_minor(self):
        self.assertRaises(ValueError, CONF.set_override, 'rpc_version_cap',
                          'latest', group='dpu_agent')

    def test_older_agent_falls_back_to_1_0(self):
        self.call.side_effect = [
            remote('UnsupportedVersion', 'oslo_messaging.rpc.dispatcher',
                   'Endpoint does not support RPC version 1.1. Attempted '
                   'method: apply_state'),
            {'observed': {}, 'generation': 1}]
        with self.assertLogs('ironic_dpu.agent_client', 'WARNING') as logs:
            res = self.client().apply_state(None, {'generation': 1}, wait=2.0)
        self.assertEqual(1, res['generation'])
        self.assertEqual([('1.1', 'apply_state',
                           {'state': {'generation': 1}, 'wait': 2.0}),
                          ('1.0', 'apply_state', {'state': {'generation': 1}})],
                         self.sent())
        self.assertIn('older than RPC API 1.1 (UnsupportedVersion)',
                      logs.output[-1])

    def test_other_failures_do_not_fall_back(self):
        self.call.side_effect = remote('Conflict', 'ironic.common.exception',
                                       'generation 1 is older than 5')
        e = self.raises(exception.DPUAgentError,
                              self.client().apply_state, None,
                              {'generation': 1}, wait=2.0)
        self.assertEqual('Conflict', e.remote_class)
        self.assertEqual(1, self.call.call_count)

    def test_unsupported_version_says_why(self):
        self.call.side_effect = remote(
            'UnsupportedVersion', 'oslo_messaging.rpc.dispatcher',
            'Endpoint does not support RPC version 1.1. Attempted method: x')
        e = self.raises(exception.DPUAgentError, self.client().call,
                              None, 'x', version='1.1')
        self.assertEqual('UnsupportedVersion', e.remote_class)
        self.assertIn('(UnsupportedVersion; called at RPC API 1.1, driver '
                      'speaks up to 1.3, rpc_version_cap 1.3)', str(e))


class QuiesceTests(VersionTests):
    """quiesce/unquiesce go at 1.3; an agent that cannot pause (older,
    capped, or its driver has no documented pause) is one typed error."""

    def test_quiesce_and_unquiesce_go_at_1_3(self):
        self.call.return_value = {'quiesced': True}
        c = self.client()
        self.assertEqual({'quiesced': True}, c.quiesce(None))
        c.quiesce(None, hold_seconds=5)
        c.unquiesce(None)
        self.assertEqual([('1.3', 'quiesce', {}),
                          ('1.3', 'quiesce', {'hold_seconds': 5}),
                          ('1.3', 'unquiesce', {})], self.sent())

    def test_cap_below_1_3_sends_nothing(self):
        CONF.set_override('rpc_version_cap', '1.2', group='dpu_agent')
        e = self.raises(exception.DPUQuiesceNotSupported,
                        self.client().quiesce, None)
        self.assertIn('rpc_version_cap 1.2 is below agent RPC API 1.3', str(e))
        self.call.assert_not_called()

    def test_older_agent_is_not_supported(self):
        for cls, msg in (('UnsupportedVersion', 'Endpoint does not support '
                          'RPC version 1.3. Attempted method: quiesce'),
                         ('NoSuchMethod', 'Endpoint does not support RPC '
                          'method quiesce')):
            self.call.side_effect = remote(
                cls, 'oslo_messaging.rpc.dispatcher', msg)
            e = self.raises(exception.DPUQuiesceNotSupported,
                            self.client().unquiesce, None)
            self.assertIn('the agent is older than RPC API 1.3 (%s)' % cls,
                          str(e))
            self.assertIsInstance(e, exception.DPUAgentError)

    def test_driver_without_pause_is_not_supported(self):
        self.call.side_effect = remote(
            'InvalidParameterValue', 'ironic.common.exception',
            'not supported: the spdk-generic driver has no documented call '
            'that pauses a host NVMe controller')
        e = self.raises(exception.DPUQuiesceNotSupported,
                        self.client().quiesce, None)
        self.assertIn('cannot quiesce the host: not supported: the '
                      'spdk-generic driver', str(e))

    def test_other_failures_stay_agent_errors(self):
        for cls, msg in (('InvalidParameterValue', 'invalid argument: '
                          'quiesce(): hold_seconds must be ...'),
                         ('StorageError', 'pause host controller pf0: EIO')):
            self.call.side_effect = remote(cls, 'ironic.common.exception',
                                           msg)
            e = self.raises(exception.DPUAgentError,
                            self.client().quiesce, None, hold_seconds=99)
            self.assertNotIsInstance(e, exception.DPUQuiesceNotSupported)
            self.assertEqual(cls, e.remote_class)


class TranslateTests(base.TestCase):

    def translate(self, exc, method='apply_state'):
        client = agent_client.AgentClient(base.NODE_UUID, mock.sentinel.t)
        with mock.patch.object(messaging, 'get_rpc_client') as grc:
            grc.return_value.prepare.return_value.call.side_effect = exc
            return self.raises(exception.DPUAgentError, client.call, None, method)

    def test_undeliverable(self):
        e = self.translate(messaging.MessageUndeliverable(
            Exception('NO_ROUTE'), 'ironic_dpu', 'ironic-dpu-agent.x', {}))
        self.assertIsInstance(e, exception.DPUAgentUnreachable)
        self.assertEqual(
            'DPU agent on node %s unreachable (no agent listening on exchange '
            'ironic_dpu, topic ironic-dpu-agent.%s): apply_state was not '
            'delivered' % (base.NODE_UUID, base.NODE_UUID), str(e))

    def test_timeout(self):
        e = self.translate(messaging.MessagingTimeout('Timed out waiting'))
        self.assertIsInstance(e, exception.DPUAgentUnreachable)
        self.assertIn('no reply within 60s', str(e))

    def test_remote_ironic_exception_keeps_agent_text(self):
        exc = remote('StorageError', 'ironic.common.exception',
                     'attach vol-a: connection refused by 10.0.0.5:4420')
        e = self.translate(exc)
        self.assertNotIsInstance(e, exception.DPUAgentUnreachable)
        self.assertEqual('DPU agent of node %s failed apply_state: attach '
                         'vol-a: connection refused by 10.0.0.5:4420'
                         % base.NODE_UUID, str(e))
        self.assertEqual('StorageError', e.remote_class)

    def test_remote_conflict_class(self):
        e = self.translate(remote('Conflict', 'ironic.common.exception',
                                  'generation 3 is older than 5'))
        self.assertEqual('Conflict', e.remote_class)

    def test_no_such_method(self):
        exc = remote('NoSuchMethod', 'oslo_messaging.rpc.dispatcher',
                     'Endpoint does not support RPC method frobnicate')
        e = self.translate(exc, method='frobnicate')
        self.assertIn('the agent does not support it (NoSuchMethod', str(e))

    def test_unknown_module(self):
        e = self.translate(remote('AgentError', 'dpuagent.errors', 'boom'))
        self.assertIn('AgentError: boom', str(e))
