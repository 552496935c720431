"""RPC client of ironic-dpu-agent, built like Ironic's own (common/rpc.py).

Differences from Ironic's client, on purpose:
* its own transport from [dpu_agent] transport_url (default: Ironic's), so
  DPUs can live on a separate vhost and json-rpc deployments work;
* TransportOptions(at_least_once=True): a call to an agent that is not
  listening fails in milliseconds with MessageUndeliverable instead of
  waiting out the timeout;
* a sanitised dict context: request ids only, never tokens;
* no serializer: arguments are plain JSON dicts, not Ironic objects.

Versions (README "RPC API"): each call goes at the lowest API version that
carries what it sends, never above [dpu_agent] rpc_version_cap (oslo's
version_cap: the pin_release_version habit while older agents remain). An
agent older than the call answers UnsupportedVersion before doing anything:
calls with a fallback retry in the older form, the rest fail saying so.
"""
import threading

import oslo_messaging as messaging
from oslo_log import log

from ironic.common import exception as ir_exc
from ironic.conf import CONF

from ironic_dpu import conf as _conf  # noqa: F401  (registers [dpu_agent])
from ironic_dpu import exception

LOG = log.getLogger(__name__)

# The newest agent API this driver speaks. 1.0: d75592a. 1.1: apply_state
# takes wait (seconds to wait for convergence before answering); answers
# carry the admission record; unknown fields are ignored and logged.
# 1.2: config_drive {sha256, size, url}: the agent fetches the image
# (inline data stays accepted). 1.3: quiesce(hold_seconds=None) and
# unquiesce(): pause/resume the host's NVMe controllers (snapshots).
RPC_API_VERSION = '1.3'
BASE_VERSION = '1.0'
APPLY_WAIT_VERSION = '1.1'
CONFIG_DRIVE_URL_VERSION = '1.2'
QUIESCE_VERSION = '1.3'
ALLOWED_EXMODS = ['ironic.common.exception']

# One transport (one AMQP connection pool and one reply queue) per conductor
# process, like Ironic's rpc.TRANSPORT; created on first use.
_transport_lock = threading.Lock()
_transport = None


def get_transport():
    global _transport
    with _transport_lock:
        if _transport is None:
            url = CONF.dpu_agent.transport_url or None
            _transport = messaging.get_rpc_transport(
                CONF, url=url, allowed_remote_exmods=ALLOWED_EXMODS)
        return _transport


def sanitised_context(context):
    """Only ids travel to the DPU; Ironic's context carries auth tokens."""
    if context is None:
        return {}
    return {'request_id': getattr(context, 'request_id', None),
            'global_request_id': getattr(context, 'global_request_id', None)}


def _remote_message(exc):
    """The agent's own message, without the traceback oslo appends."""
    if isinstance(exc, messaging.RemoteError):
        return '%s: %s' % (exc.exc_type, exc.value)
    if isinstance(exc, ir_exc.IronicException) and exc.args:
        return str(exc.args[0]).strip()
    return str(exc).strip()


def drive_form(state, url):
    """state with its config drive in the form a version takes: url=True
    (API 1.2) {sha256, size, url}, else (1.0/1.1) {sha256, data}, or
    {sha256} alone when there is no image to send."""
    drive = state.get('config_drive')
    if not drive:
        return state
    keys = ('sha256', 'size', 'url') if url else ('sha256', 'data')
    return dict(state, config_drive={k: drive[k] for k in keys
                                     if k in drive})


class AgentClient(object):
    """Calls the agent of one node (server = node UUID)."""

    def __init__(self, node_uuid, transport=None):
        self.node_uuid = node_uuid
        self._transport = transport
        self.target = messaging.Target(
            exchange=CONF.dpu_agent.exchange, topic=CONF.dpu_agent.topic,
            server=node_uuid, version=BASE_VERSION)
        self.version_cap = CONF.dpu_agent.rpc_version_cap or RPC_API_VERSION

    def can_send_version(self, version):
        """Whether [dpu_agent] rpc_version_cap allows a call at version
        (oslo's rule: same major, minor not above the cap's)."""
        cap = [int(x) for x in self.version_cap.split('.')]
        want = [int(x) for x in version.split('.')]
        return cap[0] == want[0] and want[1:] <= cap[1:]

    def _client(self, timeout=None, version=BASE_VERSION):
        transport = self._transport or get_transport()
        client = messaging.get_rpc_client(
            transport, self.target, version_cap=self.version_cap,
            transport_options=messaging.TransportOptions(at_least_once=True))
        cm = CONF.dpu_agent.call_monitor_timeout or None
        retry = CONF.dpu_agent.retry
        return client.prepare(version=version,
                              timeout=timeout or CONF.dpu_agent.timeout,
                              call_monitor_timeout=cm,
                              retry=None if retry < 0 else retry)

    def call(self, context, method, timeout=None, version=BASE_VERSION,
             **kwargs):
        try:
            return self._client(timeout, version).call(
                sanitised_context(context), method, **kwargs)
        except Exception as exc:
            raise self._translate(method, exc, timeout, version) from exc

    def _translate(self, method, exc, timeout=None, version=BASE_VERSION):
        # The agent's exception class: oslo rebuilds allowed modules' as
        # <class>_Remote, others (oslo's dispatcher errors from the Go
        # agent) arrive as RemoteError naming it.
        remote_class = (exc.exc_type if isinstance(exc, messaging.RemoteError)
                        else type(exc).__name__.replace('_Remote', ''))
        where = {'node': self.node_uuid, 'exchange': self.target.exchange,
                 'topic': '%s.%s' % (self.target.topic, self.node_uuid)}
        if isinstance(exc, messaging.MessageUndeliverable):
            err = exception.DPUAgentUnreachable(
                reason='no agent listening', error='%s was not delivered'
                % method, **where)
        elif isinstance(exc, messaging.MessagingTimeout):
            err = exception.DPUAgentUnreachable(
                reason='no reply within %ss' % (timeout or
                                                CONF.dpu_agent.timeout),
                error=str(exc), **where)
        elif isinstance(exc, messaging.MessageDeliveryFailure):
            err = exception.DPUAgentUnreachable(
                reason='message broker unavailable', error=str(exc),
                **where)
        elif remote_class in ('NoSuchMethod', 'UnsupportedVersion'):
            err = exception.DPUAgentError(
                node=self.node_uuid, method=method,
                error='the agent does not support it (%s; called at RPC API '
                      '%s, driver speaks up to %s, rpc_version_cap %s): %s'
                      % (remote_class, version, RPC_API_VERSION,
                         self.version_cap, getattr(exc, 'value', exc)))
        else:
            err = exception.DPUAgentError(node=self.node_uuid, method=method,
                                          error=_remote_message(exc))
        # Kept so callers can tell the agent's class (e.g. Conflict) and
        # read its own words.
        err.remote_class = remote_class
        err.remote_message = _remote_message(exc)
        LOG.warning('%s', err)
        return err

    def ping(self, context):
        """oslo's built-in liveness check, with a short timeout."""
        return self.call(context, 'oslo_rpc_server_ping',
                         timeout=CONF.dpu_agent.ping_timeout)

    # The agent's API (fixed contract; keyword names matter).
    def get_status(self, context):
        return self.call(context, 'get_status')

    def get_state(self, context, timeout=None):
        return self.call(context, 'get_state', timeout=timeout)

    def apply_state(self, context, state, wait=None):
        """Admit state; the agent answers with the admitted generation.

        wait (seconds, API 1.1): the agent answers once it converged on it,
        or after wait; one call instead of get_state polls. Sent only when
        rpc_version_cap allows 1.1; an older agent's UnsupportedVersion (it
        admitted nothing) falls back to the 1.0 call, which answers at once
        (the caller polls get_state as before).
        """
        drive = state.get('config_drive') or {}
        if drive.get('url') and self.can_send_version(
                CONFIG_DRIVE_URL_VERSION):
            kwargs = {} if wait is None else {'wait': wait}
            try:
                return self.call(context, 'apply_state',
                                 state=drive_form(state, url=True),
                                 version=CONFIG_DRIVE_URL_VERSION, **kwargs)
            except exception.DPUAgentError as e:
                if getattr(e, 'remote_class', None) != 'UnsupportedVersion':
                    raise
                LOG.warning('Node %s: the DPU agent is older than RPC API %s '
                            '(UnsupportedVersion); sending its config drive '
                            'inline', self.node_uuid,
                            CONFIG_DRIVE_URL_VERSION)
        state = drive_form(state, url=False)
        if wait is None or not self.can_send_version(APPLY_WAIT_VERSION):
            return self.call(context, 'apply_state', state=state)
        try:
            return self.call(context, 'apply_state', state=state, wait=wait,
                             version=APPLY_WAIT_VERSION)
        except exception.DPUAgentError as e:
            if getattr(e, 'remote_class', None) != 'UnsupportedVersion':
                raise
            LOG.warning('Node %s: the DPU agent is older than RPC API %s '
                        '(UnsupportedVersion); apply_state at %s without '
                        'wait', self.node_uuid, APPLY_WAIT_VERSION,
                        BASE_VERSION)
        return self.call(context, 'apply_state', state=state)

    # Single-item edits: expected_generation is the generation the caller
    # believes the agent holds (Conflict otherwise); the edit becomes
    # expected_generation + 1. Without it the agent counts on its own.
    def _edit(self, context, method, expected_generation, **kwargs):
        if expected_generation is not None:
            kwargs['expected_generation'] = expected_generation
        return self.call(context, method, **kwargs)

    def attach_volume(self, context, volume, expected_generation=None):
        return self._edit(context, 'attach_volume', expected_generation,
                          volume=volume)

    def detach_volume(self, context, volume_id, expected_generation=None):
        return self._edit(context, 'detach_volume', expected_generation,
                          volume_id=volume_id)

    def plug_vif(self, context, vif, expected_generation=None):
        return self._edit(context, 'plug_vif', expected_generation, vif=vif)

    def unplug_vif(self, context, port_id, expected_generation=None):
        return self._edit(context, 'unplug_vif', expected_generation,
                          port_id=port_id)

    # Quiesce (API 1.3). Nova's snapshot of a running server pauses the
    # host's controllers around Cinder's snapshots; an agent that cannot
    # (older, capped, or a driver without a documented pause) raises
    # DPUQuiesceNotSupported, which the vendor passthru turns into
    # UnsupportedDriverExtension for Nova to skip quiescing.
    def _quiesce_call(self, context, method, **kwargs):
        if not self.can_send_version(QUIESCE_VERSION):
            raise exception.DPUQuiesceNotSupported(
                node=self.node_uuid,
                reason='[dpu_agent] rpc_version_cap %s is below agent RPC '
                       'API %s' % (self.version_cap, QUIESCE_VERSION))
        try:
            return self.call(context, method, version=QUIESCE_VERSION,
                             **kwargs)
        except exception.DPUAgentError as e:
            remote = getattr(e, 'remote_class', None)
            if remote in ('UnsupportedVersion', 'NoSuchMethod'):
                reason = ('the agent is older than RPC API %s (%s)'
                          % (QUIESCE_VERSION, remote))
            elif (remote == 'InvalidParameterValue' and
                    getattr(e, 'remote_message', '').startswith(
                        'not supported')):
                reason = e.remote_message  # its DPU driver cannot pause
            else:
                raise
            raise exception.DPUQuiesceNotSupported(
                node=self.node_uuid, reason=reason) from e

    def quiesce(self, context, hold_seconds=None):
        """Pause the host's controllers; the agent resumes them itself
        after hold_seconds (default and at most its quiesce_max_hold)."""
        kwargs = {}
        if hold_seconds is not None:
            kwargs['hold_seconds'] = hold_seconds
        return self._quiesce_call(context, 'quiesce', **kwargs)

    def unquiesce(self, context):
        return self._quiesce_call(context, 'unquiesce')
