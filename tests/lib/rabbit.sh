#!/bin/bash
# Sourced by the shell harnesses: a private RabbitMQ's files and environment
# (research/openstack-stack.md §1): own HOME (Erlang cookie), config, mnesia,
# ports P (AMQP), P+1 (distribution), P+2 (epmd), P+10..20 (CLI tools), all on
# loopback, never the system broker's /etc or /var files.
# shellcheck disable=SC2034   # RMQ_ENV is used by the sourcing scripts
# Needs tests/lib/proc.sh (rabbit_start, rabbit_stop).

# rabbit_env_for DIR PORT NODENAME: writes DIR/etc/* and sets the array
# RMQ_ENV to the variables rabbitmq-server and rabbitmqctl need.
rabbit_env_for() {
  local r=$1 port=$2 node=$3
  mkdir -p "$r"/{home,mnesia,log,etc}
  : > "$r/etc/rabbitmq-env.conf"          # so /etc/rabbitmq/rabbitmq-env.conf is not read
  echo '[].' > "$r/etc/enabled_plugins"   # no management plugin: faster, no extra port
  cat > "$r/etc/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$port
loopback_users.guest = true
log.console = false
log.file.level = info
disk_free_limit.absolute = 50MB
CONF
  rabbit_env_vars "$r" "$port" "$node"
}

# rabbit_env_vars DIR PORT NODENAME: sets RMQ_ENV only (for a shell other
# than the one that started the broker).
rabbit_env_vars() {
  local r=$1 port=$2 node=$3
  RMQ_ENV=(HOME="$r/home" RABBITMQ_CONF_ENV_FILE="$r/etc/rabbitmq-env.conf"
    RABBITMQ_CONFIG_FILE="$r/etc/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$r/etc/enabled_plugins"
    RABBITMQ_MNESIA_BASE="$r/mnesia" RABBITMQ_LOG_BASE="$r/log" RABBITMQ_PID_FILE="$r/rabbit.pid"
    RABBITMQ_NODENAME="$node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$port" RABBITMQ_DIST_PORT="$((port + 1))"
    ERL_EPMD_PORT="$((port + 2))" ERL_EPMD_ADDRESS=127.0.0.1
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    RABBITMQ_CTL_DIST_PORT_MIN="$((port + 10))" RABBITMQ_CTL_DIST_PORT_MAX="$((port + 20))")
}

# rabbit_start NODENAME: a private broker on $RMQ_PORT under $BASE/rmq
# (tests/lib/proc.sh's proc_spawn, name "rabbit"); returns once it accepts
# AMQP connections, or 1 with the tail of its log.
rabbit_start() {
  rabbit_env_for "$BASE/rmq" "$RMQ_PORT" "$1"
  proc_spawn rabbit "${RMQ_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmq-server
  local i
  for ((i = 0; i < 600; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$RMQ_PORT") 2>/dev/null; then return 0; fi
    proc_alive rabbit || { tail -30 "$BASE/log/rabbit.out" >&2; proc_log "rabbit died"; return 1; }
    sleep 0.1
  done
  proc_log "rabbit did not open $RMQ_PORT"; return 1
}

# rabbit_stop: the Erlang VM by its own pid file (the server script's child),
# then the script's process group, then this broker's epmd.
rabbit_stop() {
  local beam i
  beam=$(cat "$BASE/rmq/rabbit.pid" 2>/dev/null)
  if [ -n "$beam" ] && kill -TERM "$beam" 2>/dev/null; then
    for ((i = 0; i < 150; i++)); do proc_pid_alive "$beam" || break; sleep 0.1; done
    proc_pid_alive "$beam" && kill -KILL "$beam" 2>/dev/null
  fi
  proc_stop -t 5 rabbit
  ERL_EPMD_PORT=$((RMQ_PORT + 2)) epmd -port "$((RMQ_PORT + 2))" -kill >/dev/null 2>&1 || true
}

# rabbit_ctl ARGS...: rabbitmqctl against the broker of RMQ_ENV.
rabbit_ctl() { env "${RMQ_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -q "$@"; }

# rabbit_add_user USER PASSWORD: idempotent (a restarted broker keeps its users).
rabbit_add_user() {
  if rabbit_ctl list_users | awk '{print $1}' | grep -qxF -- "$1"; then
    rabbit_ctl change_password "$1" "$2" >/dev/null
  else
    rabbit_ctl add_user "$1" "$2" >/dev/null
  fi
}

# rabbit_dpu_vhost VHOST USER PASSWORD HOST:PORT: the DPUs' own vhost (never
# the one of Ironic's own RPC: write on its default exchange, which every
# agent needs for replies, reaches every queue of a vhost), the conductor
# side's user with every right on it, and the agents' control exchange
# declared by that user: a DPU's user may not create (so not delete) it.
# Flags as oslo declares it with amqp_durable_queues = false.
rabbit_dpu_vhost() {
  local vhost=$1 user=$2 pw=$3 addr=$4
  rabbit_ctl list_vhosts name | grep -qxF -- "$vhost" || rabbit_ctl add_vhost "$vhost" >/dev/null
  rabbit_add_user "$user" "$pw"
  rabbit_ctl set_permissions -p "$vhost" "$user" '.*' '.*' '.*' >/dev/null
  "${PY:-/usr/bin/python3}" - "amqp://$user:$pw@$addr/$vhost" ironic_dpu <<'PY'
import sys
import kombu
with kombu.Connection(sys.argv[1]) as conn:
    kombu.Exchange(sys.argv[2], 'topic', durable=False, auto_delete=False)(conn.channel()).declare()
PY
}

# rabbit_dpu_user AGENT_BIN AGENT_CONF USER PASSWORD: a DPU's own broker user
# with exactly the rights `ironic-dpu-agent broker-acl` prints for the agent
# of AGENT_CONF (node, vhost, exchange, topic and size from that file).
rabbit_dpu_user() {
  local bin=$1 conf=$2 user=$3 pw=$4 cmds
  rabbit_add_user "$user" "$pw"
  cmds=$("$bin" broker-acl --config-file "$conf" --user "$user") || return 1
  # -c, not stdin: the first rabbitmqctl would read the rest of the script
  env "${RMQ_ENV[@]}" PATH="/usr/lib/rabbitmq/bin:$PATH" bash -euo pipefail -c "$cmds" >/dev/null </dev/null
}
