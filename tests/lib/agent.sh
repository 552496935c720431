#!/bin/bash
# Sourced by the shell harnesses: the agent's configuration file for a
# private stack (sim driver, loopback only).

# agent_conf_write DIR NODE SPDK_SOCKET NVMF_PORT INTERVAL DEBUG: writes
# DIR/agent.conf for node NODE, its state in DIR/state and config drives in
# DIR/config-drive; the broker is $TRANSPORT_URL, OVSDB $OVSDB (br-int);
# the sim driver's host-facing NVMe/TCP controllers listen on NVMF_PORT.
agent_conf_write() {
  local d=$1 node=$2 sock=$3 port=$4 interval=$5 debug=$6
  mkdir -p "$d/state"
  cat > "$d/agent.conf" <<CONF
[DEFAULT]
transport_url = $TRANSPORT_URL
node_uuid = $node
state_dir = $d/state
reconcile_interval = $interval
debug = $debug

[dpu]
driver = sim

[ovs]
ovsdb_connection = $OVSDB
integration_bridge = br-int
bind_timeout = 5s

[spdk]
rpc_socket = $sock

[storage]
host_nqn = nqn.2014-08.org.nvmexpress:uuid:$node
config_drive_dir = $d/config-drive

[spdk_nvmf]
transport = TCP
listen_address = 127.0.0.1
listen_port = $port
CONF
}
