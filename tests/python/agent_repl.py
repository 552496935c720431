#!/usr/bin/python3
"""Drive an ironic-dpu-agent with Python oslo.messaging, the conductor's library.

Reads one JSON request per line on stdin and writes one JSON answer per line:
  {"method": "get_status", "args": {}, "server": "<node uuid>",
   "version": "1.0", "timeout": 10, "call_monitor_timeout": null,
   "cast": false, "at_least_once": true}
-> {"result": ...} or {"error": {"class", "module", "message"}}
The RPC client is built like Ironic's: its own transport, a sanitised dict
context, allowed_remote_exmods for ironic exceptions and oslo's dispatcher errors.
Usage: agent_repl.py TRANSPORT_URL [EXCHANGE [TOPIC]]
"""
import json
import sys

from oslo_config import cfg
import oslo_messaging as messaging

# oslo.messaging 14.0 registers its metrics options only on the global CONF,
# and its metrics thread delays exit by 10 s unless told not to wait.
cfg.CONF([], project='ironic-dpu-agent-test')
cfg.CONF.set_override('metrics_thread_stop_timeout', 0, group='oslo_messaging_metrics')


def main():
    url = sys.argv[1]
    exchange = sys.argv[2] if len(sys.argv) > 2 else 'ironic_dpu'
    topic = sys.argv[3] if len(sys.argv) > 3 else 'ironic-dpu-agent'
    transport = messaging.get_rpc_transport(
        cfg.CONF, url=url, allowed_remote_exmods=['ironic.common.exception', 'oslo_messaging.rpc.dispatcher'])
    clients = {}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        key = bool(req.get('at_least_once', True))
        if key not in clients:
            opts = messaging.TransportOptions(at_least_once=True) if key else None
            clients[key] = messaging.get_rpc_client(
                transport, messaging.Target(exchange=exchange, topic=topic, version='1.0'),
                transport_options=opts)
        prep = {'server': req['server'], 'version': req.get('version', '1.0'),
                'timeout': req.get('timeout', 10)}
        if req.get('call_monitor_timeout'):
            prep['call_monitor_timeout'] = req['call_monitor_timeout']
        client = clients[key].prepare(**prep)
        ctxt = {'request_id': req.get('request_id', 'req-test'),
                'global_request_id': req.get('global_request_id')}
        try:
            if req.get('cast'):
                client.cast(ctxt, req['method'], **req.get('args', {}))
                out = {"result": None}
            else:
                out = {"result": client.call(ctxt, req['method'], **req.get('args', {}))}
        except Exception as exc:  # report whatever the caller would see
            cls = type(exc)
            name = cls.__name__
            module = cls.__module__
            if name.endswith('_Remote'):  # oslo's re-raised remote class
                name = name[:-len('_Remote')]
                module = module[:-len('_Remote')] if module.endswith('_Remote') else module
            out = {"error": {"class": name, "module": module,
                             "message": str(exc).split('\n')[0],
                             "bases": [b.__name__ for b in cls.__mro__]}}
        print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
