#!/usr/bin/python3
"""Trivial oslo.messaging 14 RPC server, the Python peer of the Go client and the benchmark baseline.

Usage: TRANSPORT_URL=rabbit://... /usr/bin/python3 oslo_server.py SERVER [TOPIC] [EXCHANGE]
Prints READY when consuming, CAST <json> for each remember() cast; stops on SIGTERM/SIGINT."""
import json
import os
import signal
import sys
import threading

from oslo_config import cfg
import oslo_messaging as om

conf = cfg.CONF
conf([], project='dpu-test')
conf.set_override('metrics_thread_stop_timeout', 0, group='oslo_messaging_metrics')
url = os.environ['TRANSPORT_URL']
server_name = sys.argv[1]
topic = sys.argv[2] if len(sys.argv) > 2 else 'ironic-dpu-agent'
exchange = sys.argv[3] if len(sys.argv) > 3 else 'ironic_dpu'
transport = om.get_rpc_transport(conf, url=url)


class Endpoint(object):
    target = om.Target(version='1.0')

    def __init__(self):
        self.casts = []

    def echo(self, ctxt, **kwargs):
        return {'args': kwargs, 'context': ctxt}

    def get_status(self, ctxt):
        return {'node_uuid': server_name, 'generation': 1, 'volumes': [], 'vifs': [], 'healthy': True}

    def remember(self, ctxt, item):
        self.casts.append(item)
        print('CAST ' + json.dumps(item), flush=True)

    def get_casts(self, ctxt):
        return self.casts

    def boom(self, ctxt, message='bad value'):
        raise ValueError(message)


server = om.get_rpc_server(transport, om.Target(topic=topic, server=server_name, exchange=exchange),
                           [Endpoint()], executor='threading', access_policy=om.DefaultRPCAccessPolicy)
server.start()
print('READY', flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
signal.signal(signal.SIGINT, lambda *a: stop.set())
stop.wait()
server.stop()
server.wait()
transport.cleanup()
print('STOPPED', flush=True)
