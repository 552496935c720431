"""Options of the dpu driver, registered on Ironic's global CONF.

[dpu_agent] configures the RPC client that talks to the agents; [dpu] holds
driver behaviour. Both are listed by list_opts() for oslo-config-generator.
"""
from oslo_config import cfg

from ironic.conf import CONF

agent_opts = [
    cfg.StrOpt('transport_url', secret=True,
               help='oslo.messaging transport URL of the DPU agents. '
                    'Empty means Ironic\'s own [DEFAULT] transport_url. '
                    'A separate vhost and user per DPU group is '
                    'recommended: a DPU must not be able to publish to the '
                    'conductor\'s queues.'),
    cfg.StrOpt('exchange', default='ironic_dpu',
               help='Control exchange of the agents. Never the conductor\'s '
                    'own exchange.'),
    cfg.StrOpt('topic', default='ironic-dpu-agent',
               help='RPC topic; each agent listens as <topic>.<node uuid>.'),
    cfg.StrOpt('rpc_version_cap', regex=r'^\d+\.\d+$',
               help='Highest agent RPC API version (major.minor) this '
                    'conductor sends, like Ironic\'s pin_release_version: '
                    'set it to the oldest agent\'s version (1.0 for agents '
                    'of d75592a) while a rolling upgrade of the DPUs is '
                    'under way, unset it once every agent is upgraded. '
                    'Empty: the newest version this driver speaks. A call '
                    'that needs a newer version than the cap is sent in '
                    'its older form (apply_state without wait, or with '
                    'the config drive inline instead of by URL: 1.2) or '
                    'fails saying so (quiesce/unquiesce, 1.3: not '
                    'supported).'),
    cfg.IntOpt('timeout', default=60, min=1,
               help='Seconds to wait for an agent\'s reply to a call.'),
    cfg.IntOpt('call_monitor_timeout', default=30, min=0,
               help='Seconds between agent heartbeats after which a call '
                    'is considered lost (oslo call monitor); 0 disables it.'),
    cfg.IntOpt('ping_timeout', default=5, min=1,
               help='Seconds the power-on/power-off volume hooks wait for '
                    'the agent to answer a ping before they only record '
                    'the desired state, and the bound of each get_state '
                    'of the deploy step\'s inline wait and of the '
                    'convergence periodic. Keeps power actions and the '
                    'periodic quick while a DPU is down (its queue '
                    'survives it, so calls would otherwise wait the full '
                    'timeout).'),
    cfg.IntOpt('retry', default=2, min=-1,
               help='Reconnect attempts to the broker per call before it '
                    'fails (-1: forever, which would hold a conductor '
                    'worker while the broker is down).'),
    cfg.IntOpt('state_wait_timeout', default=60, min=0,
               help='How long deploy (in DEPLOYWAIT) and tear down wait for '
                    'the agent to converge on the pushed generation before '
                    'they judge the outcome: pending volumes fail it, '
                    'VIFs not bound by OVN yet only warn.'),
    cfg.FloatOpt('state_poll_interval', default=0.5, min=0.05,
                 help='Longest gap between get_state polls while the deploy '
                      'step (inline_wait) or tear down waits; polls start '
                      '50 ms apart and double up to it.'),
    cfg.FloatOpt('inline_wait', default=2.0, min=0,
                 help='Seconds the deploy step polls the agent (get_state, '
                      'first after 50 ms, then less often) for convergence '
                      'on the state it pushed. Converged: the deploy goes '
                      'on in the same worker (boot the host); still '
                      'pending: the step returns DEPLOYWAIT and the '
                      'periodic check (state_check_interval) resumes it. '
                      'Holds the node lock and a conductor worker that '
                      'long; 0 always waits in DEPLOYWAIT.'),
    cfg.FloatOpt('state_check_interval', default=1.0, min=0,
                 help='Seconds between the conductor\'s checks of nodes in '
                      'DEPLOYWAIT on their DPU agent (get_state); the '
                      'deploy resumes once the agent converged. 0 disables '
                      'the check (deploys then wait until Ironic\'s '
                      'deploy_callback_timeout). Read at conductor start.'),
    cfg.IntOpt('state_check_workers', default=100, min=1,
               help='Most get_state calls the DEPLOYWAIT check has in '
                    'flight at once (green threads waiting on replies). '
                    'The check starts no call later than ping_timeout '
                    'after it began, so as many unreachable agents as '
                    'this cost it one ping_timeout, more cost it two; '
                    'nodes it did not ask go first in the next check.'),
    cfg.FloatOpt('hello_interval', default=2.0, min=0,
                 help='Seconds between reads of this conductor\'s queue of '
                      'DPU agent announcements (ironic-dpu-conductor.'
                      'hello_<host>, bound to ironic-dpu-conductor.hello.* '
                      'on the agents\' exchange). An agent announces itself '
                      'after each connection to the broker with the '
                      'generation it holds; the conductor owning the node '
                      'pushes the recorded desired state when it is newer '
                      '(the catch-up after a DPU reboot: the agent needs no '
                      'Ironic API credentials). 0 disables it. Read at '
                      'conductor start.'),
]

dpu_opts = [
    cfg.BoolOpt('neutron_binding', default=False,
                help='Bind each VIF\'s Neutron port to the DPU\'s OVN '
                     'chassis (binding:host_id=<driver_info dpu_hostname>, '
                     'binding:profile.capabilities=["switchdev"]) on '
                     'attach, and unbind on detach; the port keeps its '
                     'vnic_type and MAC, and the agent gives the host '
                     'function the Neutron port\'s MAC.'),
    cfg.IntOpt('config_drive_max_bytes', default=64 * 1024 * 1024, min=1,
               help='Largest config drive (decoded ISO, bytes) the deploy '
                    'accepts from instance_info; keep it at or below the '
                    'agent\'s [storage] config_drive_max_bytes.'),
    cfg.IntOpt('config_drive_fetch_timeout', default=60, min=1,
               help='Seconds to connect to, and between reads from, a '
                    'config drive URL (e.g. a Swift temp URL).'),
]

CONF.register_opts(agent_opts, group='dpu_agent')
CONF.register_opts(dpu_opts, group='dpu')


def list_opts():
    """Entry point for oslo-config-generator."""
    return [('dpu_agent', agent_opts), ('dpu', dpu_opts)]
