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


class WireTests(base.TestCase):

    def setUp(self):
        super().setUp()
        if hasattr(CONF, 'oslo_messaging_metrics'):
            CONF.set_override('metrics_thread_stop_timeout', 0,
                              group='oslo_messaging_metrics')
        self.transport = messaging.get_rpc_transport(
            CONF, url='fake://', allowed_remote_exmods=agent_client.ALLOWED_EXMODS)
        self.addCleanup(self.transport.cleanup)
        self.agent = StandInAgent()
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
