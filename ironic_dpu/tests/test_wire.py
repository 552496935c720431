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
