"""The conductor side of the DPU agents' announcements (hello.py)."""
import contextlib
import json
from unittest import mock

from ironic.common import exception as ir_exc
from ironic.conductor import task_manager
from ironic import objects

from ironic_dpu import agent_client
from ironic_dpu import deploy
from ironic_dpu import desired
from ironic_dpu import hello
from ironic_dpu.tests import base

NODE_A = base.NODE_UUID
NODE_B = '2c4e6a80-1b3d-4f5a-8c7e-9d0f1a2b3c4d'
RECORDED = {'generation': 5, 'node_uuid': NODE_A, 'volumes': [],
            'vifs': [{'port_id': 'vif-1', 'mac': '52:54:00:12:34:01'}]}


def key(node):
    return 'ironic-dpu-conductor.hello.' + node


def body(gen=0, **kw):
    msg = {'version': '1.0', 'generation': gen, 'rpc_api_version': '1.0',
           'agent_version': 'test', 'reason': 'start'}
    msg.update(kw)
    return json.dumps(msg).encode()


def info(node=NODE_A, exchange='ironic_dpu'):
    return {'exchange': exchange, 'routing_key': key(node)}


class ParseTests(base.TestCase):

    def test_node_from_routing_key(self):
        self.assertEqual((NODE_A, 3), hello.parse(info(), {}, body(3)))

    def test_body_node_is_never_used(self):
        # A's credentials can only publish A's key; a body naming B is
        # answered for A.
        self.assertEqual((NODE_A, 0), hello.parse(
            info(NODE_A), {}, body(0, node_uuid=NODE_B)))

    def test_default_exchange_refused(self):
        # DPUs write to amq.default to reply: straight into any queue by
        # name, topic permissions not applied. Such a delivery names ''.
        with self.assertRaises(hello.Refused) as cm:
            hello.parse(info(exchange=''), {}, body())
        self.assertIn("not published to exchange ironic_dpu but to ''",
                      str(cm.exception))

    def test_other_exchange_refused(self):
        self.assertRaises(hello.Refused, hello.parse,
                          info(exchange='ironic-dpu-agent_fanout'), {},
                          body())

    def test_dead_lettered_refused(self):
        for h in ('x-death', 'x-first-death-exchange'):
            with self.assertRaises(hello.Refused) as cm:
                hello.parse(info(), {h: 'x'}, body())
            self.assertIn('dead-lettered', str(cm.exception))

    def test_bad_routing_keys_refused(self):
        for k in ('ironic-dpu-conductor.hello.' + NODE_A.upper(),
                  'ironic-dpu-conductor.hello.' + NODE_A + '.x',
                  'ironic-dpu-conductor.hello',
                  'ironic-dpu-agent.' + NODE_A, ''):
            self.assertRaises(hello.Refused, hello.parse,
                              {'exchange': 'ironic_dpu', 'routing_key': k},
                              {}, body())

    def test_bad_bodies_refused(self):
        for b in (b'not json', b'[]', body(version='2.0'),
                  body(version=None), body(-1), body(True), body('3'),
                  b'{"version": "1.0", "generation": 1, "pad": "'
                  + b'x' * 5000 + b'"}'):
            self.assertRaises(hello.Refused, hello.parse, info(), {}, b)

    def test_newer_minor_and_unknown_fields_accepted(self):
        self.assertEqual((NODE_A, 2), hello.parse(
            info(), {}, body(2, version='1.7', future={'x': 1})))


class FakeMessage(object):
    def __init__(self, delivery_info, body, headers=None):
        self.delivery_info = delivery_info
        self.body = body
        self.headers = headers or {}
        self.acked = False

    def ack(self):
        self.acked = True


class FakeQueue(object):
    def __init__(self, messages):
        self.messages = list(messages)

    def get(self, no_ack=False):
        assert not no_ack
        return self.messages.pop(0) if self.messages else None


class AnswerTests(base.TestCase):

    def setUp(self):
        super().setUp()
        self.nodes = {
            NODE_A: self.node(uuid=NODE_A, provision_state='active',
                              driver='dpu', conductor_group='',
                              driver_internal_info={
                                  desired.STATE_KEY: dict(RECORDED),
                                  desired.GENERATION_KEY: 5}),
            NODE_B: self.node(uuid=NODE_B, provision_state='active',
                              driver='dpu', conductor_group='',
                              driver_internal_info={
                                  desired.STATE_KEY: dict(
                                      RECORDED, node_uuid=NODE_B,
                                      generation=9),
                                  desired.GENERATION_KEY: 9}),
        }
        p = mock.patch.object(objects.Node, 'get_by_uuid', autospec=True,
                              side_effect=self._get)
        self.get = p.start()
        self.addCleanup(p.stop)
        self.locked = []
        p = mock.patch.object(task_manager, 'acquire', autospec=True,
                              side_effect=self._acquire)
        self.acquire = p.start()
        self.addCleanup(p.stop)
        p = mock.patch.object(agent_client, 'AgentClient', autospec=True)
        self.client_cls = p.start()
        self.addCleanup(p.stop)
        self.client = self.client_cls.return_value
        self.client.apply_state.side_effect = (
            lambda ctx, state, **kw: {'generation': state['generation']})
        self.manager = mock.Mock()
        self.manager._mapped_to_this_conductor.return_value = True
        self.deploy_iface = deploy.DPUDeploy()

    def _get(self, context, uuid):
        if uuid not in self.nodes:
            raise ir_exc.NodeNotFound(node=uuid)
        return self.nodes[uuid]

    @contextlib.contextmanager
    def _acquire(self, context, node_id, shared=False, retry=True,
                 purpose=''):
        if node_id in self.locked:
            raise ir_exc.NodeLocked(node=node_id, host='other')
        task = base.FakeTask(self.nodes[node_id])
        task.driver.deploy = self.deploy_iface
        yield task

    def answer(self, node, gen):
        return hello.answer(self.manager, self.ctx, node, gen,
                            deploy.DPUDeploy)

    def test_pushes_recorded_state_newer_than_the_agents(self):
        self.assertEqual(hello.PUSHED, self.answer(NODE_A, 3))
        self.client_cls.assert_called_once_with(NODE_A)
        state = self.client.apply_state.call_args.args[1]
        self.assertEqual(6, state['generation'])  # recorded anew, past 5
        self.assertEqual(RECORDED['vifs'], state['vifs'])
        self.assertEqual(NODE_A, state['node_uuid'])
        self.assertFalse(self.acquire.call_args.kwargs['shared'])
        self.assertEqual(6, self.nodes[NODE_A].driver_internal_info[
            desired.STATE_KEY]['generation'])

    def test_agent_with_nothing_gets_the_state(self):
        self.assertTrue(self.answer(NODE_A, 0))
        self.assertEqual(1, self.client.apply_state.call_count)

    def test_agent_current_gets_nothing(self):
        for gen in (5, 7):
            self.assertTrue(self.answer(NODE_A, gen))
        self.client.apply_state.assert_not_called()
        self.acquire.assert_not_called()

    def test_nothing_recorded_pushes_nothing(self):
        self.nodes[NODE_A].driver_internal_info = {}
        self.assertTrue(self.answer(NODE_A, 0))
        self.client.apply_state.assert_not_called()

    def test_failed_deploy_is_not_pushed(self):
        self.nodes[NODE_A].provision_state = 'deploy failed'
        self.assertTrue(self.answer(NODE_A, 0))
        self.client.apply_state.assert_not_called()

    def test_not_this_conductors_node(self):
        # Every conductor has the announcement in its own queue; only the
        # owner answers, the others are done with it.
        self.manager._mapped_to_this_conductor.return_value = False
        self.assertTrue(self.answer(NODE_A, 0))
        self.manager._mapped_to_this_conductor.assert_called_once_with(
            NODE_A, 'dpu', '')
        self.acquire.assert_not_called()
        self.client.apply_state.assert_not_called()

    def test_unknown_node(self):
        self.assertTrue(self.answer('0' * 8 + '-0000-4000-8000-' + '0' * 12,
                                    0))
        self.client.apply_state.assert_not_called()

    def test_other_deploy_interface_is_left_alone(self):
        self.deploy_iface = mock.Mock()
        self.assertTrue(self.answer(NODE_A, 0))
        self.client.apply_state.assert_not_called()

    def test_locked_node_is_retried(self):
        self.locked.append(NODE_A)
        self.assertFalse(self.answer(NODE_A, 0))
        self.client.apply_state.assert_not_called()

    def test_unreachable_agent_is_retried(self):
        from ironic_dpu.tests.test_interfaces import unreachable
        self.client.apply_state.side_effect = unreachable()
        self.assertFalse(self.answer(NODE_A, 0))

    def test_refused_state_is_not_retried(self):
        from ironic_dpu.tests.test_interfaces import agent_error
        self.client.apply_state.side_effect = agent_error('bad state')
        self.assertTrue(self.answer(NODE_A, 0))

    def drain(self, listener, *messages):
        listener._conn = mock.Mock()
        listener._queue = FakeQueue(messages)
        listener.drain(self.manager, self.ctx, deploy.DPUDeploy)

    def test_drain_answers_only_what_the_broker_vouches_for(self):
        forged_direct = FakeMessage(info(NODE_B, exchange=''), body(0))
        forged_body = FakeMessage(info(NODE_A), body(5, node_uuid=NODE_B))
        forged_dlx = FakeMessage(info(NODE_B), body(0),
                                 headers={'x-death': [{}]})
        listener = hello.Listener(host='c1')
        self.drain(listener, forged_direct, forged_body, forged_dlx)
        # Node B was never loaded, let alone pushed; A (the routing key of
        # forged_body) is current at 5.
        self.assertEqual([NODE_A], [c.args[1] for c in
                                    self.get.call_args_list])
        self.client.apply_state.assert_not_called()
        for m in (forged_direct, forged_body, forged_dlx):
            self.assertTrue(m.acked)
        self.assertEqual({}, listener.pending)

    def test_drain_keeps_locked_nodes_for_the_next_run(self):
        listener = hello.Listener(host='c1')
        self.locked.append(NODE_A)
        first = FakeMessage(info(NODE_A), body(1))
        latest = FakeMessage(info(NODE_A), body(2))
        self.drain(listener, first, latest)
        self.assertEqual(1, self.acquire.call_count)  # coalesced per node
        self.assertEqual(2, listener.pending[NODE_A][0])
        self.client.apply_state.assert_not_called()
        self.locked.remove(NODE_A)
        self.drain(listener)
        self.assertEqual(1, self.client.apply_state.call_count)
        self.assertEqual({}, listener.pending)

    def test_drain_pushes_a_node_at_most_once_per_gap(self):
        # A DPU announcing generation 0 in a loop is answered once per
        # MIN_GAP; the announcement is kept, not dropped.
        now = [100.0]
        listener = hello.Listener(host='c1', clock=lambda: now[0])
        self.drain(listener, FakeMessage(info(NODE_A), body(0)))
        self.drain(listener, FakeMessage(info(NODE_A), body(0)))
        self.assertEqual(1, self.client.apply_state.call_count)
        self.assertIn(NODE_A, listener.pending)
        now[0] += hello.MIN_GAP
        self.drain(listener)
        self.assertEqual(2, self.client.apply_state.call_count)
        self.assertEqual({}, listener.pending)

    def test_drain_survives_broker_trouble(self):
        listener = hello.Listener(host='c1')
        with mock.patch.object(listener, '_connect', autospec=True,
                               side_effect=OSError('connection refused')):
            listener.drain(self.manager, self.ctx, deploy.DPUDeploy)
        self.assertIsNone(listener._conn)

    def test_queue_per_conductor(self):
        self.assertEqual('ironic-dpu-conductor.hello_c1',
                         hello.queue_name('c1'))
