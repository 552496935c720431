"""Answering DPU agents' announcements: the catch-up after a DPU reboot.

A DPU agent announces itself after each connection to the broker (it may
have missed casts: the DPU was off, or the broker dropped its queue). It
publishes one small JSON message on the control exchange ([dpu_agent]
exchange) with routing key ``ironic-dpu-conductor.hello.<node uuid>``,
carrying the desired generation it holds. The conductor that owns the node
(Ironic's hash ring) pushes the recorded desired state when it is newer.
The agent needs no Ironic API credentials for this.

Who sent it is decided by the broker, not by the message: a DPU's broker
user may publish that routing key on that exchange for its own node only
(``ironic-dpu-agent broker-acl``). So:

* the node is taken from the routing key, never from the body;
* a message that did not come through the control exchange is refused: a
  DPU may write to the default exchange (it replies through it) and so put
  anything into any queue by name, the default exchange ignoring topic
  permissions; such a delivery names exchange '';
* a dead-lettered message is refused: a user with write on the control
  exchange can declare its own queue with it as dead-letter exchange and any
  dead-letter routing key, which the broker does not check against topic
  permissions (the delivery then carries x-death headers).

Each conductor declares its own queue, ``ironic-dpu-conductor.hello_<host>``,
bound to ``ironic-dpu-conductor.hello.*``: every conductor sees every
announcement and acts only on the nodes it maps, so none is lost to a
conductor that does not own the node. The queue outlives a conductor
restart (x-expires one hour after its last use). A node whose owner is down
is pushed by the conductor that takes it over (DPUDeploy.take_over).

A periodic task of the deploy interface drains the queue with basic.get
every [dpu_agent] hello_interval seconds: no thread of its own.
"""
import json
import re
import threading
import time

from oslo_log import log

from ironic.common import exception as ir_exc
from ironic.common import states
from ironic.conductor import task_manager
from ironic.conf import CONF
from ironic import objects

from ironic_dpu import agent_client
from ironic_dpu import desired
from ironic_dpu import exception

LOG = log.getLogger(__name__)

TOPIC = 'ironic-dpu-conductor.hello'
VERSION_MAJOR = '1'
# Announcements are a few hundred bytes; anything larger is not one.
MAX_BODY = 4096
# Per drain: bounds one periodic run; the rest waits for the next run.
MAX_PER_DRAIN = 500
# An announcement not answered yet (node locked, agent gone again) is
# retried on later runs for this long.
PENDING_TTL = 600
MAX_PENDING = 10000
# A node is pushed at most once per this many seconds on announcements: a
# DPU announcing generation 0 in a loop costs a DB write and an RPC each
# time it is answered. A later announcement waits, it is not dropped.
MIN_GAP = 10
QUEUE_EXPIRES_MS = 3600 * 1000
QUEUE_MAX_LENGTH = 10000

_KEY_RE = re.compile(r'^%s\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-'
                     r'[0-9a-f]{4}-[0-9a-f]{12})$' % re.escape(TOPIC))
_DEAD_LETTER_HEADERS = ('x-death', 'x-first-death-exchange',
                        'x-first-death-queue', 'x-first-death-reason',
                        'x-last-death-exchange', 'x-last-death-queue',
                        'x-last-death-reason')


# answer()'s result when it pushed (truthy: done with the announcement)
PUSHED = 'pushed'


class Refused(Exception):
    """A message that is not a valid announcement."""


def queue_name(host=None):
    return '%s_%s' % (TOPIC, host or CONF.host)


def parse(delivery_info, headers, body, exchange=None):
    """(node_uuid, generation) of one delivery, or raise Refused.

    delivery_info: the AMQP delivery's exchange and routing_key (what the
    broker says, not the publisher); headers: its application headers.
    """
    exchange = exchange or CONF.dpu_agent.exchange
    via = (delivery_info or {}).get('exchange')
    if via != exchange:
        raise Refused('not published to exchange %s but to %r' % (exchange,
                                                                   via))
    dead = [h for h in (headers or {}) if h in _DEAD_LETTER_HEADERS]
    if dead:
        raise Refused('dead-lettered (%s)' % ', '.join(sorted(dead)))
    key = (delivery_info or {}).get('routing_key') or ''
    m = _KEY_RE.match(key)
    if not m:
        raise Refused('routing key %r is not %s.<lower-case node uuid>'
                      % (key[:200], TOPIC))
    if isinstance(body, str):
        body = body.encode('utf-8')
    if len(body or b'') > MAX_BODY:
        raise Refused('body of %d bytes' % len(body))
    try:
        msg = json.loads(body)
    except (TypeError, ValueError) as e:
        raise Refused('body is not JSON: %s' % e)
    if not isinstance(msg, dict):
        raise Refused('body is not a JSON object')
    version = msg.get('version')
    if not isinstance(version, str) or version.split('.')[0] != VERSION_MAJOR:
        raise Refused('version %r: this conductor reads %s.x'
                      % (version, VERSION_MAJOR))
    gen = msg.get('generation')
    if isinstance(gen, bool) or not isinstance(gen, int) or gen < 0:
        raise Refused('generation %r is not a non-negative integer' % (gen,))
    said = msg.get('node_uuid')
    if said is not None and said != m.group(1):
        # Informational only: the routing key is what the broker checked.
        LOG.warning('DPU announcement on key %s names node %s in its body; '
                    'using the routing key', key, said)
    return m.group(1), gen


class Listener(object):
    """This conductor's announcement queue and the answers still due."""

    def __init__(self, transport=None, host=None, clock=None):
        self._transport = transport
        self._host = host
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._conn = None
        self._queue = None
        # node uuid -> (agent generation, first seen)
        self.pending = {}
        # node uuid -> when its announcement was last answered by a push
        self.answered = {}

    # -- broker --
    def _connect(self):
        """A kombu connection like the agents' RPC client's (same URL,
        TLS, failover hosts), and this conductor's queue on it."""
        import kombu
        from oslo_messaging._drivers import common as rpc_common

        transport = self._transport or agent_client.get_transport()
        # oslo's own connection carries the options ([DEFAULT]/[dpu_agent]
        # transport_url, [oslo_messaging_rabbit] ssl_*); a clone of its
        # kombu connection is ours alone, outside oslo's pool. Retries are
        # bounded like the agents' calls: a broker that is down must not
        # hold the periodic (and a conductor worker) forever.
        retry = CONF.dpu_agent.retry
        with transport._driver._get_connection(
                rpc_common.PURPOSE_SEND,
                retry=None if retry < 0 else retry) as ctx:
            oslo_conn = ctx.connection
            conn = oslo_conn.connection.clone(heartbeat=0)
            durable = oslo_conn.durable
            auto_delete = oslo_conn.amqp_auto_delete
        # the control exchange with oslo's flags (it declares it the same)
        ex = kombu.Exchange(CONF.dpu_agent.exchange, type='topic',
                            durable=durable, auto_delete=auto_delete)
        queue = kombu.Queue(
            queue_name(self._host), exchange=ex, routing_key=TOPIC + '.*',
            durable=durable, auto_delete=False,
            queue_arguments={'x-expires': QUEUE_EXPIRES_MS,
                             'x-max-length': QUEUE_MAX_LENGTH,
                             'x-overflow': 'drop-head'})
        try:
            conn.ensure_connection(max_retries=1)
            bound = queue(conn.channel())
            bound.declare()
        except Exception:
            conn.release()
            raise
        self._conn, self._queue = conn, bound

    def _close(self):
        conn, self._conn, self._queue = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def fetch(self):
        """Take up to MAX_PER_DRAIN announcements off the queue: the
        latest generation per node. Each is acked once read; refused ones
        are logged and dropped."""
        got = {}
        if self._conn is None:
            self._connect()
        for _ in range(MAX_PER_DRAIN):
            msg = self._queue.get(no_ack=False)
            if msg is None:
                break
            refused = None
            try:
                node, gen = parse(msg.delivery_info, msg.headers, msg.body)
                got[node] = gen
            except Refused as e:
                refused = str(e)
            msg.ack()
            if refused:  # logged outside the except: no traceback appended
                LOG.warning('Refused a DPU announcement (exchange %r, '
                            'routing key %r): %s',
                            msg.delivery_info.get('exchange'),
                            str(msg.delivery_info.get('routing_key'))[:200],
                            refused)
        return got

    # -- answering --
    def drain(self, manager, context, interface_cls):
        """One periodic run: read announcements, answer the due ones."""
        with self._lock:
            try:
                got = self.fetch()
            except Exception as e:  # noqa: BLE001 - broker trouble
                LOG.warning('Could not read DPU announcements from queue '
                            '%s: %s', queue_name(self._host), e)
                self._close()
                got = {}
            now = self._clock()
            for node, gen in got.items():
                self.pending[node] = (gen, self.pending.get(node, (0, now))[1])
            for node in list(self.pending):
                gen, since = self.pending[node]
                if now - since > PENDING_TTL:
                    LOG.warning('Giving up answering the announcement of '
                                'the DPU of node %s after %ss', node,
                                PENDING_TTL)
                    del self.pending[node]
                    continue
                if now - self.answered.get(node, now - MIN_GAP) < MIN_GAP:
                    continue  # answered just now: wait for the gap
                done = answer(manager, context, node, gen, interface_cls)
                if done:
                    del self.pending[node]
                if done == PUSHED:
                    self.answered[node] = now
            for node in [n for n, t in self.answered.items()
                         if now - t >= MIN_GAP]:
                del self.answered[node]
            while len(self.pending) > MAX_PENDING:
                oldest = min(self.pending, key=lambda n: self.pending[n][1])
                del self.pending[oldest]


def answer(manager, context, node_uuid, agent_gen, interface_cls):
    """Push node_uuid's recorded state if it is newer than agent_gen.

    Returns PUSHED when it pushed, True when done with the announcement
    otherwise (nothing to do, not ours, refused), False to retry it on a
    later run.
    """
    try:
        node = objects.Node.get_by_uuid(context, node_uuid)
    except ir_exc.NodeNotFound:
        LOG.info('DPU announcement for unknown node %s ignored', node_uuid)
        return True
    if not manager._mapped_to_this_conductor(node.uuid, node.driver,
                                              node.conductor_group):
        return True  # its owner's queue has the same announcement
    if node.provision_state == states.DEPLOYFAIL:
        # The record belongs to a deploy Ironic gave up on; the next deploy
        # or undeploy pushes the node's state anyway.
        LOG.info('The DPU agent of node %s announced generation %s; the '
                 'node is in %s: not pushing', node_uuid, agent_gen,
                 node.provision_state)
        return True
    if not _newer(node, agent_gen):
        LOG.debug('The DPU agent of node %s holds generation %s: current',
                  node_uuid, agent_gen)
        return True
    try:
        with task_manager.acquire(context, node_uuid, shared=False,
                                  retry=False,
                                  purpose='answering a DPU announcement'
                                  ) as task:
            if not isinstance(task.driver.deploy, interface_cls):
                LOG.warning('DPU announcement for node %s, which does not '
                            'use the dpu deploy interface; ignored',
                            node_uuid)
                return True
            recorded = _newer(task.node, agent_gen)  # under the lock now
            if not recorded:
                return True
            state = dict(recorded)
            state.pop('generation', None)
            result = desired.push(task, state)
            LOG.info('Node %s: its DPU agent announced generation %s; '
                     'pushed the recorded state as generation %s',
                     node_uuid, agent_gen,
                     (result or {}).get('generation'))
            return PUSHED
    except ir_exc.NodeLocked:
        return False  # busy: next run
    except ir_exc.NodeNotFound:
        return True
    except exception.DPUAgentUnreachable as e:
        LOG.warning('Node %s: could not push the state its DPU agent '
                    'announced it lacks; will retry: %s', node_uuid, e)
        return False
    except Exception as e:  # noqa: BLE001 - the agent refused it, or bad data
        LOG.error('Node %s: pushing the state its DPU agent announced it '
                  'lacks failed: %s', node_uuid, e)
        return True


def _newer(node, agent_gen):
    """The recorded state if its generation is newer than agent_gen."""
    recorded = node.driver_internal_info.get(desired.STATE_KEY)
    if not recorded:
        return None
    if int(recorded.get('generation') or 0) <= agent_gen:
        return None
    return recorded


_listener_lock = threading.Lock()
_listener = None


def listener():
    """This conductor process's Listener (one queue per conductor)."""
    global _listener
    with _listener_lock:
        if _listener is None:
            _listener = Listener()
        return _listener
