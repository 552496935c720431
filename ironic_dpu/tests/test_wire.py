"""The client against a real oslo.messaging RPC server (in-process fake://
transport): real message building, context packing, and remote exception
rebuilding, with a stand-in endpoint that keeps the agent's generation
rule. No broker or agent needed."""
import logging

import oslo_messaging as messaging

from ironic.common import exception as ir_exc
from ironic.conf import CONF

from ironic_dpu import agent_client
from ironic_dpu import desired
from ironic_dpu import exception
from ironic_dpu.tests import base


class StandInAgent(object):
    target = messaging.Target(version='1.0')

    def __init__(self):
        self.generation = 0
        self.contexts = []

    def apply_state(self, ctxt, state):
        self.contexts.append(ctxt)
        if state['generation'] <= self.generation:
            raise ir_exc.Conflict('generation %d is not newer than %d'
                                  % (state['generation'], self.generation))
        self.generation = state['generation']
        return {'desired': state, 'observed': {'volumes': [], 'vifs': []}}

    def get_state(self, ctxt):
        return {'desired': {'generation': self.generation}}


class StandInAgent11(StandInAgent):
    """An agent of API 1.1: apply_state takes wait."""
    target = messaging.Target(version='1.1')

    def __init__(self):
        super().__init__()
        self.waits = []

    def apply_state(self, ctxt, state, wait=None):
        self.waits.append(wait)
        return super().apply_state(ctxt, state)


class StandInAgent13(StandInAgent11):
    """An agent of API 1.3: quiesce and unquiesce; driver_pauses False is
    a DPU driver without a documented pause."""
    target = messaging.Target(version='1.3')
    driver_pauses = True

    def __init__(self):
        super().__init__()
        self.quiesced = False
        self.holds = []

    def quiesce(self, ctxt, hold_seconds=None):
        if not self.driver_pauses:
            raise ir_exc.InvalidParameterValue(
                'not supported: the spdk-generic driver has no documented '
                'call that pauses a host NVMe controller')
        self.holds.append(hold_seconds)
        self.quiesced = True
        return {'quiesced': True, 'functions': ['pf0']}

    def unquiesce(self, ctxt):
        self.quiesced = False
        return {'quiesced': False, 'resume_reason': 'unquiesce'}


class WireTests(base.TestCase):
    agent_class = StandInAgent

    def setUp(self):
        super().setUp()
        if hasattr(CONF, 'oslo_messaging_metrics'):
            CONF.set_override('metrics_thread_stop_timeout', 0,
                              group='oslo_messaging_metrics')
        self.transport = messaging.get_rpc_transport(
            CONF, url='fake://', allowed_remote_exmods=agent_client.ALLOWED_EXMODS)
        self.addCleanup(self.transport.cleanup)
        self.agent = self.agent_class()
        server = messaging.get_rpc_server(
            self.transport, messaging.Target(exchange='ironic_dpu',
                                             topic='ironic-dpu-agent',
                                             server=base.NODE_UUID),
            [self.agent], executor='threading')
        server.start()
        self.addCleanup(server.wait)
        self.addCleanup(server.stop)
        # oslo logs the endpoint's exception server-side; it is expected here
        logging.getLogger('oslo_messaging').setLevel(logging.CRITICAL)
        self.addCleanup(logging.getLogger('oslo_messaging').setLevel,
                        logging.NOTSET)

    def test_push_round_trip_and_conflict_recovery(self):
        task = base.FakeTask(self.node(), [self.port(vif='vif-1')],
                             [self.target('boot', boot_index=0)])
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        self.agent.generation = 7        # edited by plug_vif / the CLI
        result = desired.push(task, desired.build(task), client=client)
        self.assertEqual(8, result['desired']['generation'])
        self.assertEqual(8, self.agent.generation)
        self.assertEqual(['boot'], [v['volume_id'] for v in
                                    result['desired']['volumes']])
        # what reached the agent: request ids only, never the token
        for ctxt in self.agent.contexts:
            self.assertEqual({'request_id': 'req-abc',
                              'global_request_id': 'req-global'}, ctxt)
            self.assertNotIn('SECRET-TOKEN', repr(ctxt))

    def test_old_agent_gets_apply_state_without_wait(self):
        # StandInAgent serves 1.0 (d75592a's agent): oslo's dispatcher
        # refuses the 1.1 call with UnsupportedVersion, the client sends
        # the 1.0 form (a wait argument would be a TypeError there).
        task = base.FakeTask(self.node(), [], [self.target('boot',
                                                           boot_index=0)])
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        with self.assertLogs('ironic_dpu.agent_client', 'WARNING') as logs:
            result = desired.push(task, desired.build(task), client=client,
                                  wait=2)
        self.assertEqual(1, result['desired']['generation'])
        self.assertEqual(1, self.agent.generation)
        self.assertIn('older than RPC API 1.1 (UnsupportedVersion)',
                      '\n'.join(logs.output))

    def test_old_agent_refuses_a_newer_call_with_the_reason(self):
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        e = self.raises(exception.DPUAgentError, client.call,
                              None, 'get_state', version='1.1')
        self.assertEqual('UnsupportedVersion', e.remote_class)
        self.assertIn('called at RPC API 1.1', str(e))


    def test_old_agent_cannot_quiesce(self):
        # An agent before 1.3 refuses the call (oslo's UnsupportedVersion)
        # before doing anything: one typed error, not a generic failure.
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        for method in (client.quiesce, client.unquiesce):
            e = self.raises(exception.DPUQuiesceNotSupported, method, None)
            self.assertIn('older than RPC API 1.3 (UnsupportedVersion)',
                          str(e))


class NewAgentTests(WireTests):
    agent_class = StandInAgent11

    # the 1.0 agent's expectations do not hold for a 1.1 agent (not
    # callable: the loader skips them)
    test_old_agent_gets_apply_state_without_wait = None
    test_old_agent_refuses_a_newer_call_with_the_reason = None

    def _push(self):
        task = base.FakeTask(self.node(), [], [self.target('boot',
                                                           boot_index=0)])
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        return desired.push(task, desired.build(task), client=client, wait=2)

    def test_wait_reaches_a_new_agent(self):
        self.assertEqual(1, self._push()['desired']['generation'])
        self.assertEqual([2], self.agent.waits)

    def test_cap_holds_wait_back(self):
        CONF.set_override('rpc_version_cap', '1.0', group='dpu_agent')
        self.assertEqual(1, self._push()['desired']['generation'])
        self.assertEqual([None], self.agent.waits)


class QuiesceAgentTests(WireTests):
    agent_class = StandInAgent13

    test_old_agent_gets_apply_state_without_wait = None
    test_old_agent_refuses_a_newer_call_with_the_reason = None
    test_old_agent_cannot_quiesce = None

    def test_quiesce_round_trip(self):
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        self.assertEqual({'quiesced': True, 'functions': ['pf0']},
                         client.quiesce(None))
        self.assertTrue(self.agent.quiesced)
        client.quiesce(None, hold_seconds=7)
        self.assertEqual([None, 7], self.agent.holds)
        self.assertFalse(client.unquiesce(None)['quiesced'])
        self.assertFalse(self.agent.quiesced)

    def test_cap_below_1_3_never_asks(self):
        CONF.set_override('rpc_version_cap', '1.2', group='dpu_agent')
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        self.raises(exception.DPUQuiesceNotSupported, client.quiesce, None)
        self.assertEqual([], self.agent.holds)

    def test_driver_without_pause(self):
        self.agent.driver_pauses = False
        client = agent_client.AgentClient(base.NODE_UUID, self.transport)
        e = self.raises(exception.DPUQuiesceNotSupported, client.quiesce,
                        None)
        self.assertIn('the spdk-generic driver has no documented call',
                      str(e))
