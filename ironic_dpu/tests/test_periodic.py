"""The DEPLOYWAIT convergence periodic: which nodes it picks (database
fields only), what a pass costs with unreachable agents (their calls run
concurrently), and that one node's failure does not end the pass."""
import contextlib
import threading
import time
from unittest import mock
import uuid

import eventlet
import oslo_messaging as messaging

from ironic.common import exception as ir_exc
from ironic.common import states
from ironic.conductor import utils as manager_utils
from ironic.conf import CONF

from ironic_dpu import agent_client
from ironic_dpu import deploy
from ironic_dpu.tests import base

ATTACHED = {'observed': {'generation': 1,
                         'volumes': [{'volume_id': 'boot',
                                      'state': 'attached'}],
                         'vifs': []}}
PENDING = {'observed': {'generation': 0}}
STATE = {'generation': 1, 'volumes': [{'volume_id': 'boot'}], 'vifs': []}


def waiting_info(since=None, generation=1):
    return {'dpu_desired_state': dict(STATE, generation=generation),
            'dpu_wait': {'generation': generation,
                         'since': time.time() if since is None else since}}


class FakeManager(object):
    """The conductor manager's iter_nodes: rows from the database."""

    def __init__(self, rows):
        self.rows = rows
        self.calls = []

    def iter_nodes(self, filters=None, fields=None):
        self.calls.append((filters, fields))
        return iter([(u, 'dpu', '', info) for u, info in self.rows])


class FakeRPC(object):
    """oslo.messaging's RPC client towards an agent that never answers:
    each call sleeps its timeout (sleep) and raises MessagingTimeout, as
    the real client does when the DPU is down but its queue is not."""

    def __init__(self, sleep=time.sleep):
        self.sleep = sleep
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = []

    def prepare(self, timeout=None, **kwargs):
        return _Prepared(self, timeout)


class _Prepared(object):
    def __init__(self, rpc, timeout):
        self.rpc, self.timeout = rpc, timeout

    def call(self, ctxt, method, **kwargs):
        rpc = self.rpc
        with rpc.lock:
            rpc.calls.append((method, self.timeout))
            rpc.in_flight += 1
            rpc.most_in_flight = max(rpc.most_in_flight, rpc.in_flight)
        try:
            rpc.sleep(self.timeout)
        finally:
            with rpc.lock:
                rpc.in_flight -= 1
        raise messaging.MessagingTimeout('no reply within %ss' % self.timeout)


class PeriodicTests(base.TestCase):

    def setUp(self):
        super().setUp()
        self.nodes = {}
        self.tasks = {}
        self.acquire_mock = self.patch(deploy.task_manager, 'acquire',
                                       side_effect=self.acquire)
        self.resume = self.patch(manager_utils,
                                 'notify_conductor_resume_deploy',
                                 autospec=True)
        self.failed = self.patch(deploy.deploy_utils, 'set_failed_state',
                                 autospec=True)
        self.iface = deploy.DPUDeploy()

    @contextlib.contextmanager
    def acquire(self, context, node_uuid, shared=False, purpose=None):
        self.assertTrue(shared)
        task = base.FakeTask(self.node(
            uuid=node_uuid, provision_state=states.DEPLOYWAIT,
            driver_internal_info=dict(self.nodes[node_uuid])))
        task.driver.deploy = self.iface
        task.upgrade_lock = mock.Mock()
        self.tasks[node_uuid] = task
        yield task

    def add(self, info):
        node_uuid = str(uuid.uuid4())
        self.nodes[node_uuid] = info
        return node_uuid

    def rows(self):
        return list(self.nodes.items())

    def test_predicate_reads_the_database_only(self):
        waiting = self.add(waiting_info())
        # Converged and resumed a moment ago: its step runs, no lost resume.
        self.add(dict(waiting_info(), dpu_wait={'generation': 1, 'since': 1,
                                                'converged': True,
                                                'resumed': time.time()}))
        self.add({})
        self.add({'dpu_wait': 'garbage'})
        manager = FakeManager(self.rows())
        with mock.patch.object(agent_client, 'AgentClient') as client, \
                mock.patch.object(self.iface, 'check_waiting') as check:
            self.iface._check_dpu_convergence(manager, self.ctx)
        client.assert_not_called()
        self.acquire_mock.assert_not_called()
        check.assert_called_once_with(self.ctx,
                                      [(waiting, self.nodes[waiting])])
        self.assertEqual([({'provision_state': states.DEPLOYWAIT,
                            'reserved': False, 'maintenance': False},
                           ['driver_internal_info'])], manager.calls)

    def unreachable_fleet(self, n, rpc):
        CONF.set_override('ping_timeout', 1, group='dpu_agent')
        for _ in range(n):
            self.add(waiting_info())
        self.patch(agent_client, 'get_transport',
                   return_value=mock.sentinel.transport)
        self.patch(agent_client.messaging, 'get_rpc_client', return_value=rpc)

    def test_unreachable_agents_cost_one_ping_timeout(self):
        # 100 dead DPUs whose queues survive them: each get_state waits
        # ping_timeout (1 s). Asked one after another the pass would take
        # 100 s; all at once it takes one ping_timeout.
        rpc = FakeRPC()
        self.unreachable_fleet(100, rpc)
        self.assertEqual([], self.iface.check_waiting(self.ctx, self.rows()))
        self.assertEqual([('get_state', CONF.dpu_agent.ping_timeout)] * 100,
                         rpc.calls)
        # One sequential wait: all 100 calls were in flight together (what
        # the pass costs follows from that; the test does not time it).
        self.assertEqual(100, rpc.most_in_flight)
        # Not expired: nothing to lock, nothing failed.
        self.acquire_mock.assert_not_called()
        self.failed.assert_not_called()

    def test_unreachable_agents_in_green_threads(self):
        # In the conductor (eventlet monkey-patched) the calls run in green
        # threads and a blocked call yields to the others.
        rpc = FakeRPC(sleep=eventlet.sleep)
        self.unreachable_fleet(100, rpc)
        with mock.patch.object(deploy.patcher, 'is_monkey_patched',
                               return_value=True):
            self.iface.check_waiting(self.ctx, self.rows())
        self.assertEqual(100, len(rpc.calls))
        self.assertEqual(100, rpc.most_in_flight)

    def test_workers_bound_the_calls_and_nobody_starves(self):
        # One worker, three dead agents, a clock each call advances by its
        # timeout: the pass asks one agent and stops starting calls after
        # ping_timeout; the next passes ask those it did not reach first.
        CONF.set_override('state_check_workers', 1, group='dpu_agent')
        now = [0.0]
        rpc = FakeRPC(sleep=lambda s: now.__setitem__(0, now[0] + s))
        self.unreachable_fleet(0, rpc)
        old = self.add(waiting_info(since=time.time() - 3))
        mid = self.add(waiting_info(since=time.time() - 2))
        new = self.add(waiting_info(since=time.time() - 1))
        clock = lambda: now[0]  # noqa: E731
        self.assertEqual({mid, new}, set(self.iface.check_waiting(
            self.ctx, self.rows(), clock=clock)))
        self.assertEqual(1, len(rpc.calls))
        self.assertEqual({old, new}, set(self.iface.check_waiting(
            self.ctx, self.rows(), clock=clock)))
        self.assertEqual({old, mid}, set(self.iface.check_waiting(
            self.ctx, self.rows(), clock=clock)))
        self.assertEqual(3, len(rpc.calls))

    def test_one_node_failing_does_not_stop_the_pass(self):
        broken_rpc = self.add(waiting_info(since=1))
        broken_record = self.add({'dpu_wait': {'since': 2}})
        broken_lock = self.add(waiting_info(since=3))
        converged = self.add(waiting_info(since=4))
        answers = {broken_rpc: RuntimeError('answer not JSON'),
                   broken_lock: ATTACHED, converged: ATTACHED}
        clients = {}

        def make_client(node_uuid):
            def get_state(context, timeout=None):
                answer = answers[node_uuid]
                if isinstance(answer, Exception):
                    raise answer
                return answer
            clients[node_uuid] = mock.Mock(**{'get_state.side_effect':
                                              get_state})
            return clients[node_uuid]

        acquire = self.acquire

        def acquire_or_fail(context, node_uuid, **kw):
            if node_uuid == broken_lock:
                raise ir_exc.DatabaseVersionTooOld()
            return acquire(context, node_uuid, **kw)

        self.acquire_mock.side_effect = acquire_or_fail
        with mock.patch.object(agent_client, 'AgentClient',
                               side_effect=make_client), \
                mock.patch.object(deploy.LOG, 'exception') as logged:
            self.iface.check_waiting(self.ctx, self.rows())
        self.assertEqual({broken_rpc, broken_lock, converged}, set(clients))
        failed_nodes = sorted(c.args[1] for c in logged.call_args_list)
        self.assertEqual(sorted([broken_rpc, broken_record, broken_lock]),
                         failed_nodes)
        # The healthy node was resumed all the same.
        self.resume.assert_called_once_with(self.tasks[converged])
        self.assertTrue(self.tasks[converged].node.driver_internal_info[
            'dpu_wait']['converged'])
        self.failed.assert_not_called()

    def test_expired_unreachable_agent_fails_the_deploy(self):
        CONF.set_override('state_wait_timeout', 30, group='dpu_agent')
        rpc = FakeRPC(sleep=lambda s: None)
        self.unreachable_fleet(0, rpc)
        expired = self.add(waiting_info(since=time.time() - 31))
        fresh = self.add(waiting_info())
        self.iface.check_waiting(self.ctx, self.rows())
        self.assertEqual(2, len(rpc.calls))
        self.assertEqual([expired], list(self.tasks))
        self.assertIn('not converged after 30s', self.failed.call_args[0][1])
        self.assertIn('no reply within', self.failed.call_args[0][1])
        self.assertNotIn('dpu_wait',
                         self.tasks[expired].node.driver_internal_info)
        self.assertNotIn(fresh, self.tasks)
        self.resume.assert_not_called()

    def test_a_newer_wait_is_left_alone(self):
        # Asked about generation 1; by the time the lock is held the node
        # waits on generation 2 (pushed again): not resumed on old news.
        node = self.add(waiting_info(generation=1))
        rows = self.rows()
        self.nodes[node] = waiting_info(generation=2)
        with mock.patch.object(agent_client, 'AgentClient') as cls:
            cls.return_value.get_state.return_value = ATTACHED
            self.iface.check_waiting(self.ctx, rows)
        self.tasks[node].upgrade_lock.assert_called_once()
        self.resume.assert_not_called()
        self.failed.assert_not_called()
        self.assertNotIn('converged',
                         self.tasks[node].node.driver_internal_info['dpu_wait'])

    def test_a_node_with_another_deploy_interface_is_left_alone(self):
        node = self.add(waiting_info())
        acquire = self.acquire

        @contextlib.contextmanager
        def acquire_other(context, node_uuid, **kw):
            with acquire(context, node_uuid, **kw) as task:
                task.driver.deploy = mock.Mock()
                yield task

        self.acquire_mock.side_effect = acquire_other
        with mock.patch.object(agent_client, 'AgentClient') as cls:
            cls.return_value.get_state.return_value = ATTACHED
            self.iface.check_waiting(self.ctx, self.rows())
        self.tasks[node].upgrade_lock.assert_not_called()
        self.resume.assert_not_called()

    def test_a_locked_node_is_retried_next_pass(self):
        node = self.add(waiting_info())
        self.acquire_mock.side_effect = ir_exc.NodeLocked(node=node,
                                                          host='other')
        with mock.patch.object(agent_client, 'AgentClient') as cls, \
                mock.patch.object(deploy.LOG, 'exception') as logged:
            cls.return_value.get_state.return_value = ATTACHED
            self.iface.check_waiting(self.ctx, self.rows())
        logged.assert_not_called()
        self.resume.assert_not_called()
