#!/bin/bash
# Harness library for the Ironic end-to-end suite and benchmark (sourced).
# Starts private daemons (RabbitMQ, OVS/OVN with the dummy datapath, the SPDK
# emulator, ironic-api + ironic-conductor with the dpu hardware type, and the
# Go agent) on loopback / unix sockets under one temp dir, and stops each by
# the PID it recorded. Nothing is skipped: a missing binary is a failure.
# shellcheck disable=SC2034   # variables are used by the sourcing scripts

PY=/usr/bin/python3          # Debian's python: the pyenv one cannot import ironic
TH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/lib/proc.sh
. "$TH_REPO/tests/lib/proc.sh"
# shellcheck source=tests/lib/rabbit.sh
. "$TH_REPO/tests/lib/rabbit.sh"
# shellcheck source=tests/lib/ovn.sh
. "$TH_REPO/tests/lib/ovn.sh"
# shellcheck source=tests/lib/agent.sh
. "$TH_REPO/tests/lib/agent.sh"
# shellcheck source=tests/lib/pyinstall.sh
. "$TH_REPO/tests/lib/pyinstall.sh"
# shellcheck source=tests/lib/postgres.sh
. "$TH_REPO/tests/lib/postgres.sh"
# Ironic's database: sqlite (one conductor) or postgresql (a private cluster
# that several conductors share: the takeover cases).
IRONIC_DB=${IRONIC_DB:-sqlite}

# Logging, process spawn/stop by PID and port picking: tests/lib/proc.sh;
# the th_* names are the ones this suite's scripts (and tests/bench) use.
th_log() { proc_log "$@"; }
th_die() { proc_die "$@"; }
th_elapsed() { proc_elapsed; }

th_require() {
  local b missing=()
  for b in "$@"; do command -v "$b" >/dev/null 2>&1 || missing+=("$b"); done
  [ ${#missing[@]} -eq 0 ] || th_die "required binaries missing: ${missing[*]} (apt-get install rabbitmq-server openvswitch-switch ovn-central ovn-host ironic-api ironic-conductor python3-openstackclient python3-ironicclient jq curl)"
}

# Pick a base port with 25 free ports above it (RabbitMQ uses P..P+20).
th_free_base() { proc_free_base 25; }

th_init() {
  PROC_T0=$(date +%s.%N) PROC_LOG_DIGITS=2
  th_require "$PY" /usr/lib/rabbitmq/bin/rabbitmq-server epmd ovsdb-tool ovsdb-server ovs-vswitchd \
    ovs-vsctl ovn-nbctl ovn-sbctl ovn-northd ovn-controller ironic-api ironic-conductor \
    ironic-dbsync openstack jq curl go
  [ "$IRONIC_DB" = postgresql ] && th_require "${PG_BINARIES[@]}"
  BASE=${TH_BASE:-$(mktemp -d /tmp/ironic-dpu-e2e.XXXXXX)}
  mkdir -p "$BASE"/{pids,log,bin}
  local p; p=$(th_free_base) || th_die "no free port range"
  RMQ_PORT=$p; IRONIC_API_PORT=$((p + 21)); SPDK_NVMF_PORT=$((p + 22)); HTTP_PORT=$((p + 23))
  TRANSPORT_URL="rabbit://guest:guest@127.0.0.1:$RMQ_PORT/"
  # The agents' RPC: a vhost of their own; the conductor side's user there,
  # and one user per DPU made by `ironic-dpu-agent broker-acl` (agent_conf).
  DPU_VHOST=ironic-dpu DPU_COND_USER=dpu-conductor DPU_COND_PW=dpu-conductor-secret
  DPU_COND_URL="rabbit://$DPU_COND_USER:$DPU_COND_PW@127.0.0.1:$RMQ_PORT/$DPU_VHOST"
  API="http://127.0.0.1:$IRONIC_API_PORT"
  export XDG_CACHE_HOME=$BASE/cache          # stevedore's entry-point cache
  export OS_AUTH_TYPE=none OS_ENDPOINT=$API OS_BAREMETAL_API_VERSION=1.78
  th_log "base $BASE, rabbit $RMQ_PORT, ironic api $IRONIC_API_PORT"
}

th_spawn() { proc_spawn "$@"; }   # NAME CMD...
th_pid() { proc_pid "$1"; }
th_alive() { proc_alive "$1"; }
th_stop() { proc_stop -t "${2:-20}" "$1"; }   # NAME [SECONDS]: SIGTERM, then SIGKILL of its process group
th_wait() { proc_wait "$@"; }                 # SECONDS DESCRIPTION CMD...

# ---------------------------------------------------------------- RabbitMQ
rabbit_env() { rabbit_env_for "$BASE/rmq" "$RMQ_PORT" "rmqdpu$RMQ_PORT@localhost"; }

rabbit_up() {
  rabbit_start "rmqdpu$RMQ_PORT@localhost" || th_die "rabbit"
  rabbit_dpu_vhost "$DPU_VHOST" "$DPU_COND_USER" "$DPU_COND_PW" "127.0.0.1:$RMQ_PORT" || th_die "DPU vhost setup failed"
  th_log "rabbit up"
}

rabbit_down() { rabbit_stop; }

# ---------------------------------------------------------------- OVS / OVN
# tests/lib/ovn.sh: one DPU chassis, $OVN_SYSTEM_ID, and a tenant switch.
OVN_SYSTEM_ID=dpu-chassis-1
ovn_env() { ovn_env_for "$BASE/ovn"; }

ovn_up() {
  ovn_env
  ovn_stack_up "$OVN_SYSTEM_ID" "$OVN_SYSTEM_ID" || th_die "ovn-controller did not register"
  nbctl ls-add tenant-net
  th_log "ovs/ovn up"
}

ovn_down() { ovn_stack_down; }

# The Neutron side, without Neutron: the logical switch port a Neutron port
# would be; requested-chassis like neutron's OVN driver sets for a port bound
# to the DPU chassis (research/ovs-ovn.md 1.6).
ovn_lsp_add() {   # PORT_ID MAC
  nbctl lsp-add tenant-net "$1" -- lsp-set-addresses "$1" "$2" \
    -- lsp-set-options "$1" requested-chassis=$OVN_SYSTEM_ID
}

# ---------------------------------------------------------------- Go binaries
# Builds the agent and the SPDK emulator into $BASE/bin, or uses prebuilt
# ones: IRONIC_DPU_AGENT_BIN / SPDK_EMULATOR_BIN (e.g. from `make build`).
go_build() {
  local name pkg var
  for name in ironic-dpu-agent spdk-emulator; do
    var=IRONIC_DPU_AGENT_BIN; pkg=./cmd/ironic-dpu-agent
    [ "$name" = spdk-emulator ] && { var=SPDK_EMULATOR_BIN; pkg=${TH_SPDK_PKG:-./cmd/spdk-emulator}; }
    if [ -n "${!var:-}" ]; then
      [ -x "${!var}" ] || th_die "$var=${!var} is not executable"
      ln -sf "$(cd "$(dirname "${!var}")" && pwd)/$(basename "${!var}")" "$BASE/bin/$name"
      continue
    fi
    (cd "$TH_REPO" && go build -o "$BASE/bin/$name" "$pkg") >> "$BASE/log/go-build.out" 2>&1 \
      || { cat "$BASE/log/go-build.out" >&2; th_die "go build $pkg failed"; }
  done
  th_log "agent and spdk-emulator ready"
}

# ---------------------------------------------------------------- SPDK emulator
CINDER_IP=192.0.2.10        # the "storage array" the emulator pretends to reach
remote_json() {   # NQN UUID : one reachable remote subsystem with one namespace
  jq -nc --arg nqn "$1" --arg u "$2" --arg ip "$CINDER_IP" \
    '{nqn:$nqn, allow_any_host:true, namespaces:[{nsid:1, uuid:$u, num_blocks:1048576}],
      listeners:[{trtype:"TCP", adrfam:"IPv4", traddr:$ip, trsvcid:"4420"}]}'
}
spdk_up() {   # serves $BASE/spdk.sock with the remotes in $BASE/spdk-remotes.json
  rm -f "$BASE/spdk.sock"
  th_spawn spdk "$BASE/bin/spdk-emulator" --socket "$BASE/spdk.sock" --remotes "$BASE/spdk-remotes.json"
  th_wait 10 "spdk emulator socket" test -S "$BASE/spdk.sock" || { cat "$BASE/log/spdk.out" >&2; return 1; }
}

# ---------------------------------------------------------------- agent (sim driver)
# agent_conf NODE: its config and its own broker user (broker-acl).
# AGENT_BROKER=shared: the conductor side's user instead, as every agent had
# before per-DPU users (an agent that old cannot run with its own user).
agent_conf() {
  local d=$BASE/agent-$1
  TRANSPORT_URL=$DPU_COND_URL agent_conf_write "$d" "$1" "$BASE/spdk.sock" "$SPDK_NVMF_PORT" 5s true
  [ "${AGENT_BROKER:-own}" = shared ] || agent_broker_own "$1" || th_die "broker user of $1"
  # the operator's CLI asks the agent with the conductor side's user: a
  # DPU's own user may not publish requests to any agent, its own included
  printf '[DEFAULT]\ntransport_url = %s\nnode_uuid = %s\n' "$DPU_COND_URL" "$1" > "$d/cli.conf"
}
# agent_broker_own NODE: the agent's own broker user, with the rights
# broker-acl prints for its config, and its transport_url switched to it.
agent_broker_own() {
  local conf=$BASE/agent-$1/agent.conf user=dpu-$1 pw
  pw=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  sed -i "s#^transport_url = .*#transport_url = rabbit://$user:$pw@127.0.0.1:$RMQ_PORT/$DPU_VHOST#" "$conf"
  rabbit_dpu_user "$BASE/bin/ironic-dpu-agent" "$conf" "$user" "$pw"
}
agent_cli() { local n=$1; shift; "$BASE/bin/ironic-dpu-agent" "$@" --config-file "$BASE/agent-$n/cli.conf"; }
agent_state() { agent_cli "$1" status --state 2>>"$BASE/log/agent-cli.err"; }
agent_start() {   # NODE : ready once it answers get_status over RPC; AGENT_BIN picks another build
  [ -f "$BASE/agent-$1/agent.conf" ] || agent_conf "$1"
  th_spawn "agent-$1" "${AGENT_BIN:-$BASE/bin/ironic-dpu-agent}" serve --config-file "$BASE/agent-$1/agent.conf"
  th_wait 30 "agent $1 answering" agent_cli "$1" status || { tail -20 "$BASE/log/agent-$1.out" >&2; return 1; }
}
agent_stop() { th_stop "agent-$1" 15; }

# ---------------------------------------------------------------- Ironic
ironic_conf() {
  IRONIC_DIR=$BASE/ironic; mkdir -p "$IRONIC_DIR"/{log,state,lock}
  cat > "$IRONIC_DIR/ironic.conf" <<CONF
[DEFAULT]
host = dpu-test-conductor
auth_strategy = noauth
# a call to a conductor that died fails after this long, not a minute
rpc_response_timeout = ${IRONIC_RPC_TIMEOUT:-60}
# how stale the node-to-conductor ring may be (takeover: seconds)
hash_ring_reset_interval = ${IRONIC_RING_RESET:-15}
rpc_transport = oslo
transport_url = $TRANSPORT_URL
state_path = $IRONIC_DIR/state
log_dir = $IRONIC_DIR/log
debug = ${IRONIC_DEBUG:-false}
enabled_hardware_types = dpu,fake-hardware
enabled_bios_interfaces = no-bios,fake
enabled_boot_interfaces = dpu,fake
enabled_console_interfaces = no-console,fake
enabled_deploy_interfaces = dpu,fake
enabled_inspect_interfaces = no-inspect,fake
enabled_management_interfaces = fake
enabled_network_interfaces = dpu,noop
enabled_power_interfaces = fake
enabled_raid_interfaces = no-raid,fake
enabled_rescue_interfaces = no-rescue,fake
enabled_storage_interfaces = dpu,noop
enabled_vendor_interfaces = dpu,no-vendor,fake
default_storage_interface = dpu
default_network_interface = dpu

[api]
host_ip = 127.0.0.1
port = $IRONIC_API_PORT
api_workers = 1

[conductor]
automated_clean = false
sync_power_state_interval = -1
heartbeat_interval = ${IRONIC_HEARTBEAT_INTERVAL:-5}
# a conductor silent this long is offline: its nodes move on the hash ring
# and the others clear its locks (_check_orphan_nodes, every
# check_provision_state_interval) and take its ACTIVE nodes over
# (_sync_local_state, every sync_local_state_interval)
heartbeat_timeout = ${IRONIC_HEARTBEAT_TIMEOUT:-60}
check_provision_state_interval = ${IRONIC_PROVISION_CHECK:-60}
sync_local_state_interval = ${IRONIC_SYNC_LOCAL_STATE:-180}

[database]
connection = $(ironic_db_url)

[dhcp]
dhcp_provider = none

[oslo_concurrency]
lock_path = $IRONIC_DIR/lock

[dpu_agent]
# the DPUs' own vhost, with the conductor side's user
transport_url = $DPU_COND_URL
timeout = 30
# the power hooks' ping of the agent (and each get_state of the waits):
# written out because e2e case 4 checks this bound in the conductor's log
ping_timeout = 5
call_monitor_timeout = 10
state_wait_timeout = ${DPU_STATE_WAIT:-20}
state_poll_interval = 0.2
# the deploy step polls the agent this long before it returns DEPLOYWAIT
# (above the default 2 s: a loaded CI machine must not turn the fast path of
# e2e case 1 into a wait)
inline_wait = ${DPU_INLINE_WAIT:-5}
# a deploy in DEPLOYWAIT: the conductor checks the agent this often
state_check_interval = 0.5
# announcements of restarted agents: read this often
hello_interval = 0.5

[dpu]
neutron_binding = false

[deploy]
# The conductor's HTTP server, as for iPXE / virtual media: the config drive
# is published here for the agent to fetch (agent RPC API 1.2).
http_root = $IRONIC_DIR/httpboot
http_url = http://127.0.0.1:$HTTP_PORT
CONF
}

ironic_db_url() {
  if [ "$IRONIC_DB" = postgresql ]; then pg_cluster_url "$BASE/pg" ironic ironic
  else echo "sqlite:///$IRONIC_DIR/ironic.sqlite"; fi
}

ironic_up() {
  ironic_conf
  local conf=$IRONIC_DIR/ironic.conf
  # the conductor's web server ([deploy] http_root at http_url)
  mkdir -p "$IRONIC_DIR/httpboot"
  th_spawn ironic-http $PY -m http.server --bind 127.0.0.1 --directory "$IRONIC_DIR/httpboot" "$HTTP_PORT"
  if [ "$IRONIC_DB" = postgresql ]; then
    pg_cluster_up "$BASE/pg" ironic ironic || th_die "postgresql did not start"
  fi
  $PY /usr/bin/ironic-dbsync --config-file "$conf" create_schema > "$BASE/log/dbsync.out" 2>&1 \
    || { cat "$BASE/log/dbsync.out" >&2; th_die "ironic-dbsync failed"; }
  # The driver as pip installs it (entry points included), into this run's dir.
  [ -d "$BASE/site" ] || pyinstall_dpu "$TH_REPO" "$BASE/site" "$BASE/log/pip-install.out" \
    || th_die "pip install of the ironic_dpu driver failed"
  conductor_start ironic-conductor
  th_spawn ironic-api env PYTHONPATH="$BASE/site" $PY /usr/bin/ironic-api --config-file "$conf"
  wait_conductors 1 || th_die "ironic did not register the dpu hardware type in 60 s"
  th_log "ironic up (dpu hardware type registered)"
}

# conductor_start NAME [HOST]: an ironic-conductor on the shared config; a
# second one gets its own [DEFAULT] host and log_dir (NAME.conf on top). The
# dpu driver comes from CONDUCTOR_PYTHONPATH (default: this run's pip install).
conductor_start() {
  local name=$1 args=(--config-file "$IRONIC_DIR/ironic.conf")
  if [ -n "${2:-}" ]; then
    mkdir -p "$IRONIC_DIR/log-$name"
    printf '[DEFAULT]\nhost = %s\nlog_dir = %s\n' "$2" "$IRONIC_DIR/log-$name" > "$IRONIC_DIR/$name.conf"
    args+=(--config-file "$IRONIC_DIR/$name.conf")
  fi
  th_spawn "$name" env PYTHONPATH="${CONDUCTOR_PYTHONPATH:-$BASE/site}" $PY /usr/bin/ironic-conductor "${args[@]}"
}
conductor_log() {   # NAME: its log file
  if [ -f "$IRONIC_DIR/$1.conf" ]; then echo "$IRONIC_DIR/log-$1/ironic-conductor.log"
  else echo "$IRONIC_DIR/log/ironic-conductor.log"; fi
}

# wait_conductors N: the API sees N conductors serving the dpu hardware type.
wait_conductors() {
  local i hosts n
  for ((i = 0; i < 600; i++)); do
    hosts=$(curl -sf -H 'X-OpenStack-Ironic-API-Version: latest' "$API/v1/drivers/dpu" 2>/dev/null | jq -r '.hosts | length' 2>/dev/null)
    [ "${hosts:-0}" -ge "$1" ] && return 0
    for n in "$BASE"/pids/ironic-conductor*; do
      [ -e "$n" ] || continue
      th_alive "$(basename "$n")" || { tail -40 "$(conductor_log "$(basename "$n")")" "$BASE/log/$(basename "$n").out" >&2; th_die "$(basename "$n") died"; }
    done
    th_alive ironic-api || { tail -40 "$BASE/log/ironic-api.out" >&2; th_die "ironic-api died"; }
    sleep 0.1
  done
  return 1
}

ironic_down() {
  local n
  th_stop ironic-api 10
  for n in "$BASE"/pids/ironic-conductor*; do [ -e "$n" ] && th_stop "$(basename "$n")" 20; done
  th_stop ironic-http 5
  [ "$IRONIC_DB" = postgresql ] && pg_cluster_down "$BASE/pg"
  return 0
}

# conductor_restart SRC: restart ironic-conductor alone, with the dpu driver
# (ironic_dpu and its entry points) from SRC: a pip install dir such as
# $BASE/site, or an old tree that carries its dist-info (d75592a).
conductor_restart() {
  th_stop ironic-conductor 20
  CONDUCTOR_PYTHONPATH=$1 conductor_start ironic-conductor
  wait_conductors 1 || { th_log "ironic-conductor did not register the dpu hardware type in 60 s"; return 1; }
  th_log "ironic-conductor restarted with the dpu driver of $1"
}

# REST helpers (the CLI's --wait polls every 10 s; poll ourselves).
IRONIC_H=(-H 'Content-Type: application/json' -H 'X-OpenStack-Ironic-API-Version: 1.78')
api() {   # api METHOD PATH [JSON]
  if [ $# -ge 3 ]; then curl -sS -f "${IRONIC_H[@]}" -X "$1" "$API/v1$2" -d "$3"
  else curl -sS -f "${IRONIC_H[@]}" -X "$1" "$API/v1$2"; fi
}
node_field() { api GET "/nodes/$1" | jq -r ".$2"; }
bm() { openstack --os-auth-type none --os-endpoint "$API" --os-baremetal-api-version 1.78 baremetal "$@"; }

# wait_state NODE WANTED [SECONDS]: poll provision_state; fail fast on *failed/error.
wait_state() {
  local node=$1 want=$2 secs=${3:-60} st ps tps end=$((SECONDS + ${3:-60}))
  while [ $SECONDS -le $end ]; do
    st=$(api GET "/nodes/$node?fields=provision_state,target_provision_state,last_error") || return 1
    ps=$(jq -r .provision_state <<<"$st"); tps=$(jq -r .target_provision_state <<<"$st")
    if [ "$ps" = "$want" ]; then
      # a failed state keeps its target; a stable state has none
      case "$ps" in *failed|error) return 0 ;; esac
      [ "$tps" = null ] && return 0
    fi
    case "$ps" in *failed|error) th_log "node $node -> $ps: $(jq -r .last_error <<<"$st")"; return 1 ;; esac
    sleep 0.1
  done
  th_log "timeout after ${secs}s: node $node still $ps (want $want)"; return 1
}

wait_power() {   # NODE "power on"|"power off"
  local st end=$((SECONDS + 30))
  while [ $SECONDS -le $end ]; do
    # reservation: the power action (and the storage hooks that run after
    # the power state is saved) is finished only once the lock is released
    st=$(api GET "/nodes/$1?fields=power_state,target_power_state,reservation") || return 1
    [ "$(jq -r '.power_state + "/" + (.target_power_state // "none") + "/" + (.reservation // "free")' <<<"$st")" = "$2/none/free" ] && return 0
    sleep 0.1
  done; th_log "timeout: node $1 power not $2"; return 1
}
