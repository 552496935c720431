#!/bin/bash
# Harness library for the whole-OpenStack end-to-end suite and benchmark
# (sourced). Brings up, under one temp dir and on loopback / unix sockets
# only, a private OpenStack Zed from Debian: RabbitMQ, PostgreSQL, Keystone
# (every API behind keystonemiddleware, each service with its own user), OVN
# with two DPU chassis (each its own OVS + ovn-controller), Neutron ML2/OVN,
# Glance, Placement, Nova (the dpu ironic virt driver, two nova-compute
# services sharing the Ironic nodes by Nova's hash ring), Ironic (the
# project's dpu hardware type), Cinder (its SPDK driver, NVMe/TCP), the SPDK
# emulators (Cinder's target + each DPU's SPDK) and one Go agent per DPU
# (sim driver). Every daemon is stopped by the PID it recorded.
# Recipes, settings and their reasons: research/openstack-full-stack.md.
# Nothing is skipped: a missing binary or package is a failure.
# shellcheck disable=SC2034   # variables are used by the sourcing scripts

PY=/usr/bin/python3          # Debian's python: the pyenv one cannot import OpenStack
OS_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OS_REPO=$(cd "$OS_HERE/../.." && pwd)
# shellcheck source=tests/lib/proc.sh
. "$OS_REPO/tests/lib/proc.sh"
# shellcheck source=tests/lib/rabbit.sh
. "$OS_REPO/tests/lib/rabbit.sh"
# shellcheck source=tests/lib/ovn.sh
. "$OS_REPO/tests/lib/ovn.sh"
# shellcheck source=tests/lib/agent.sh
. "$OS_REPO/tests/lib/agent.sh"
# shellcheck source=tests/lib/pyinstall.sh
. "$OS_REPO/tests/lib/pyinstall.sh"
# shellcheck source=tests/lib/postgres.sh
. "$OS_REPO/tests/lib/postgres.sh"
# The checkout whose Python distribution (ironic_dpu + the Nova driver) is
# pip-installed into $BASE/site (override to test a patched driver).
IRONIC_DPU_ROOT=${IRONIC_DPU_ROOT:-$OS_REPO}
DPUS="1 2"                     # DPU N: OVN chassis dpu-chassis-N, hostname dpuN, agent N, node N
DPU_HOST=dpu1                  # the current DPU's (use_dpu) OVN chassis hostname (Neutron binding host)
DPU_CHASSIS=dpu-chassis-1      # its OVN system-id
NOVA_COMPUTES="nova-ironic-1 nova-ironic-2"   # nova-compute services (DEFAULT host)
OS_APT="rabbitmq-server postgresql-15 keystone openvswitch-switch ovn-central ovn-host neutron-server placement-api \
nova-api nova-conductor nova-scheduler nova-compute-ironic cinder-api cinder-scheduler cinder-volume glance-api \
ironic-api ironic-conductor python3-openstackclient python3-ironicclient jq curl genisoimage python3-pycdlib"

# Logging, process spawn/stop by PID and port picking: tests/lib/proc.sh;
# the os_* names are the ones this suite's scripts (and tests/bench) use.
PROC_LOG_DIGITS=1
os_log() { proc_log "$@"; }
os_die() { proc_die "$@"; }
os_elapsed() { proc_elapsed; }
os_now() { date +%s.%N; }
os_since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN{printf "%.2f", e-s}'; }

os_require() {
  local b missing=()
  for b in "$PY" /usr/lib/rabbitmq/bin/rabbitmq-server epmd "${PG_BINARIES[@]}" \
    ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovn-nbctl ovn-sbctl ovn-northd ovn-controller ovn-trace \
    /usr/bin/neutron-server /usr/bin/neutron-db-manage /usr/bin/glance-api /usr/bin/glance-manage \
    /usr/bin/placement-api /usr/bin/placement-manage /usr/bin/uwsgi /usr/bin/nova-api /usr/bin/nova-conductor \
    /usr/bin/nova-scheduler /usr/bin/nova-compute /usr/bin/nova-manage /usr/bin/cinder-api /usr/bin/cinder-scheduler \
    /usr/bin/cinder-volume /usr/bin/cinder-manage /usr/bin/keystone-manage /usr/bin/keystone-wsgi-public /usr/bin/ironic-api /usr/bin/ironic-conductor /usr/bin/ironic-dbsync \
    openstack jq curl go setsid genisoimage; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  [ -f /usr/lib/uwsgi/plugins/python3_plugin.so ] || missing+=(uwsgi-plugin-python3)
  $PY -c 'import pycdlib' 2>/dev/null || missing+=(python3-pycdlib)
  [ ${#missing[@]} -eq 0 ] || os_die "missing: ${missing[*]} (apt-get install --no-install-recommends $OS_APT)"
}

# Pick a base port with 40 free ports above it.
os_free_base() { proc_free_base 40; }

os_init() {
  PROC_T0=$(os_now)
  os_require
  BASE=${OS_BASE:-$(mktemp -d /tmp/ironic-dpu-os.XXXXXX)}
  mkdir -p "$BASE"/{pids,log,bin}
  local p; p=$(os_free_base) || os_die "no free port range"
  RMQ_PORT=$p                # RabbitMQ uses P..P+20
  NEUTRON_PORT=$((p + 21)) GLANCE_PORT=$((p + 22)) PLACEMENT_PORT=$((p + 23)) IRONIC_API_PORT=$((p + 24))
  CINDER_PORT=$((p + 25)) NOVA_PORT=$((p + 26)) SPDK_HTTP_PORT=$((p + 27)) KEYSTONE_PORT=$((p + 31))
  NVMF_PORT=$((p + 28))      # Cinder's NVMe/TCP target (emulated: no socket is opened)
  HOST_NVMF_PORT=$((p + 29)) # DPU 1's sim driver's host-facing controllers (emulated too)
  HOST_NVMF_PORT2=$((p + 32)) # DPU 2's
  IRONIC_HTTP_PORT=$((p + 30)) # the conductor's web server ([deploy] http_root): config drives for the agent
  OS_GOCACHE=$(go env GOCACHE)               # before XDG_CACHE_HOME moves it
  export XDG_CACHE_HOME=$BASE/cache          # stevedore's entry-point cache
  local v
  for v in RMQ_PORT NEUTRON_PORT GLANCE_PORT PLACEMENT_PORT IRONIC_API_PORT CINDER_PORT NOVA_PORT \
    SPDK_HTTP_PORT NVMF_PORT HOST_NVMF_PORT HOST_NVMF_PORT2 IRONIC_HTTP_PORT KEYSTONE_PORT; do echo "$v=${!v}"; done > "$BASE/ports.sh"
  os_vars
  os_log "base $BASE, ports $p..$((p + 31))"
}

# os_vars: everything derived from BASE and the ports.
os_vars() {
  TRANSPORT_URL="rabbit://guest:guest@127.0.0.1:$RMQ_PORT/"
  # The agent's RPC: the DPUs' own vhost, the conductor side's user there and
  # one user per DPU from `ironic-dpu-agent broker-acl` (agent_conf).
  DPU_VHOST=ironic-dpu DPU_COND_USER=dpu-conductor DPU_COND_PW=dpu-conductor-secret
  DPU_COND_URL="rabbit://$DPU_COND_USER:$DPU_COND_PW@127.0.0.1:$RMQ_PORT/$DPU_VHOST"
  OVN_DIR=$BASE/ovn OVSDB=unix:$BASE/ovn/db.sock NBDB=unix:$BASE/ovn/ovnnb_db.sock SBDB=unix:$BASE/ovn/ovnsb_db.sock
  SPDK_DIR=$BASE/spdk SPDK_PASS=$BASE/spdk/http.pass
  NEUTRON=http://127.0.0.1:$NEUTRON_PORT NOVA=http://127.0.0.1:$NOVA_PORT/v2.1
  # Cinder >= 3.67 routes URLs without a project id too
  IRONIC=http://127.0.0.1:$IRONIC_API_PORT CINDER=http://127.0.0.1:$CINDER_PORT/v3
  PLACEMENT=http://127.0.0.1:$PLACEMENT_PORT GLANCE=http://127.0.0.1:$GLANCE_PORT
  KEYSTONE=http://127.0.0.1:$KEYSTONE_PORT
  # plain `openstack` is the tenant (user demo, role member in project demo);
  # the operator's commands run as_admin
  export OS_CLIENT_CONFIG_FILE=$BASE/clouds.yaml OS_CLOUD=tenant
  use_dpu 1
}

# Per DPU N: its OVS database, agent directory (config, state, CLI config),
# SPDK socket, agent process name and host-facing NVMe/TCP port.
dpu_ovsdb() { if [ "$1" = 1 ]; then echo "unix:$BASE/ovn/db.sock"; else echo "unix:$BASE/ovn$1/db.sock"; fi; }
dpu_agent_dir() { if [ "$1" = 1 ]; then echo "$BASE/agent"; else echo "$BASE/agent$1"; fi; }
dpu_sock() { if [ "$1" = 1 ]; then echo "$SPDK_DIR/dpu.sock"; else echo "$SPDK_DIR/dpu$1.sock"; fi; }
dpu_agent_proc() { if [ "$1" = 1 ]; then echo agent; else echo "agent$1"; fi; }
dpu_nvmf_port() { if [ "$1" = 1 ]; then echo "$HOST_NVMF_PORT"; else echo "$HOST_NVMF_PORT2"; fi; }

# use_dpu N: the checks (vsctl, agent_cli/agent_state, dpu_spdk_rpc, the
# chassis and host names, NODE once NODE_OF[N] is set) look at DPU N.
NODE_OF=()   # N -> node UUID (flows.sh enrolls them)
use_dpu() {
  DPU_N=$1 DPU_HOST=dpu$1 DPU_CHASSIS=dpu-chassis-$1
  OVSDB=$(dpu_ovsdb "$1") AGENT_DIR=$(dpu_agent_dir "$1") DPU_SOCK=$(dpu_sock "$1")
  if [ -n "${NODE_OF[$1]:-}" ]; then NODE=${NODE_OF[$1]}; fi
}

# os_attach DIR: use a stack that another shell brought up (debugging).
os_attach() {
  PROC_T0=$(os_now); BASE=$1
  # shellcheck disable=SC1091
  . "$BASE/ports.sh"; os_vars
  export XDG_CACHE_HOME=$BASE/cache
  ks_tokens
}

# os_spawn NAME [ENV=V...] CMD... : own session, record the PID; the log
# starts afresh.
os_spawn() { : > "$BASE/log/$1.out"; proc_spawn "$@"; }
os_pid_alive() { proc_pid_alive "$1"; }
os_alive() { proc_alive "$1"; }
os_stop() { proc_stop "$@"; }   # NAME... : SIGTERM to all, up to 20 s, then SIGKILL each process group
os_wait() { proc_wait "$@"; }   # SECONDS DESCRIPTION CMD...

# ---------------------------------------------------------------- RabbitMQ
rabbit_up() {
  rabbit_start "rmqos$RMQ_PORT@localhost" &&
    rabbit_dpu_vhost "$DPU_VHOST" "$DPU_COND_USER" "$DPU_COND_PW" "127.0.0.1:$RMQ_PORT"
}
rabbit_down() { rabbit_stop; }

# ---------------------------------------------------------------- PostgreSQL
pg_up() {   # tests/lib/postgres.sh: private cluster, unix socket only
  pg_cluster_up "$BASE/pg" os keystone neutron placement nova_api nova_cell0 nova cinder || return 1
  pg_cluster_pid "$BASE/pg" > "$BASE/pids/postgres"
}
pg_down() { pg_cluster_down "$BASE/pg"; os_stop postgres; }
pgdb() { pg_cluster_url "$BASE/pg" os "$1"; }

# ---------------------------------------------------------------- OVS / OVN
# OVN central + the DPU's own OVS (dummy datapath) and ovn-controller:
# tests/lib/ovn.sh.
# DPU 1 with the central databases, each further DPU its own OVS + ovn-controller
# (tunnel endpoint 127.0.0.N).
ovn_up() {
  ovn_env_for "$OVN_DIR"; ovn_stack_up dpu-chassis-1 dpu1 || return 1
  local n
  for n in $DPUS; do
    [ "$n" = 1 ] && continue
    ovn_chassis_up "$BASE/ovn$n" "dpu-chassis-$n" "dpu$n" "127.0.0.$n" "$n" || return 1
  done
  OVSDB=$(dpu_ovsdb "${DPU_N:-1}")   # ovn_env_for reset it
}
ovn_down() {
  local n
  for n in $DPUS; do [ "$n" = 1 ] || ovn_chassis_down "$n"; done
  ovn_stack_down
}

# ---------------------------------------------------------------- Go binaries
# Builds the agent and spdkpair into $BASE/bin, or uses a prebuilt agent:
# IRONIC_DPU_AGENT_BIN (e.g. from `make build`, as tests/ironic does).
go_build() {
  if [ -n "${IRONIC_DPU_AGENT_BIN:-}" ]; then
    [ -x "$IRONIC_DPU_AGENT_BIN" ] || { os_log "IRONIC_DPU_AGENT_BIN=$IRONIC_DPU_AGENT_BIN is not executable"; return 1; }
    ln -sf "$IRONIC_DPU_AGENT_BIN" "$BASE/bin/ironic-dpu-agent"
  fi
  local pkg
  for pkg in cmd/ironic-dpu-agent tests/openstack/spdkpair; do
    [ -e "$BASE/bin/$(basename $pkg)" ] && continue
    (cd "$OS_REPO" && GOCACHE=$OS_GOCACHE go build -o "$BASE/bin/$(basename $pkg)" "./$pkg") >> "$BASE/log/go-build.out" 2>&1 \
      || { cat "$BASE/log/go-build.out" >&2; os_log "go build ./$pkg failed"; return 1; }
  done
}

# ---------------------------------------------------------------- SPDK pair
spdk_rpc() {   # spdk_rpc METHOD [PARAMS-JSON] : through Cinder's HTTP front (the target)
  local body; body=$(jq -nc --arg m "$1" --argjson p "${2:-null}" '{jsonrpc:"2.0",id:1,method:$m} + (if $p == null then {} else {params:$p} end)')
  curl -sf -u "spdk:$(cat "$SPDK_PASS")" -d "$body" "http://127.0.0.1:$SPDK_HTTP_PORT/"
}
dpu_spdk_rpc() {   # dpu_spdk_rpc METHOD [PARAMS-JSON] : the DPU's SPDK (unix socket)
  local body; body=$(jq -nc --arg m "$1" --argjson p "${2:-null}" '{jsonrpc:"2.0",id:1,method:$m} + (if $p == null then {} else {params:$p} end)')
  $PY -c 'import json,socket,sys
s=socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode())
buf=b""; d=json.JSONDecoder()
while True:
    c=s.recv(65536)
    if not c: break
    buf+=c
    try: v,_=d.raw_decode(buf.decode()); print(json.dumps(v)); break
    except ValueError: pass' "$DPU_SOCK" "$body"
}

spdk_up() {
  mkdir -p "$SPDK_DIR"; umask 077
  head -c 18 /dev/urandom | base64 > "$SPDK_PASS"; umask 022
  local n socks=()
  for n in $DPUS; do socks+=(-dpu-socket "$(dpu_sock "$n")"); done
  os_spawn spdk "$BASE/bin/spdkpair" -target-socket "$SPDK_DIR/target.sock" "${socks[@]}" \
    -http "127.0.0.1:$SPDK_HTTP_PORT" -password-file "$SPDK_PASS"
  os_wait 10 "spdk http front" spdk_rpc spdk_get_version || { cat "$BASE/log/spdk.out" >&2; return 1; }
  # The storage array: a 64 GiB malloc bdev (the emulator keeps no data),
  # lvstore lvs0 and the NVMe/TCP transport, as an operator sets up SPDK for
  # Cinder (the driver only tries RDMA itself).
  spdk_rpc bdev_malloc_create '{"name":"Malloc0","num_blocks":16777216,"block_size":4096}' >/dev/null &&
  spdk_rpc bdev_lvol_create_lvstore '{"bdev_name":"Malloc0","lvs_name":"lvs0"}' >/dev/null &&
  spdk_rpc nvmf_create_transport '{"trtype":"TCP"}' | jq -e '.result == true' >/dev/null
}

# ---------------------------------------------------------------- Keystone
# Keystone Zed under uwsgi like placement (one process), fernet token and
# credential keys under $BASE/keystone, its DB in the suite's PostgreSQL.
# Each service has its own user in project 'service' with roles admin and
# service (Cinder lets only a 'service' token delete an in-use attachment);
# the tenant is user demo, role member in project demo; the operator is the
# bootstrap admin. Services cache validated tokens in process (no memcached).
KS_SERVICES="nova neutron cinder glance placement ironic"
ks_secrets() {   # the run's passwords, made once (0600), re-read by os_attach
  local f=$BASE/keystone/secrets.sh v
  if [ ! -f "$f" ]; then
    mkdir -p "$BASE/keystone"
    (umask 077; for v in KS_ADMIN_PASS KS_TENANT_PASS KS_SERVICE_PASS; do
       echo "$v=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"; done > "$f")
  fi
  # shellcheck disable=SC1090
  . "$f"
}

keystone_conf() {
  local d=$BASE/keystone; mkdir -p "$d/log"; mkdir -m 700 "$d"/{fernet-keys,credential-keys}
  ks_secrets
  cat > "$d/keystone.conf" <<CONF
[DEFAULT]
log_dir = $d/log
debug = false
[database]
connection = $(pgdb keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = $d/fernet-keys
[credential]
key_repository = $d/credential-keys
[identity]
# bcrypt's minimum cost: every CLI call logs in with a password
password_hash_rounds = 4
# bcrypt's own limit (a larger one logs a warning at each login)
max_password_length = 72
[cache]
# roles, assignments, the catalog: in process (one uwsgi process)
enabled = true
backend = dogpile.cache.memory
CONF
  chmod 600 "$d/keystone.conf"
}
km() { $PY /usr/bin/keystone-manage --config-file "$BASE/keystone/keystone.conf" "$@"; }
keystone_db() {   # schema, keys, the admin user/project/roles and the identity endpoint
  km db_sync && km fernet_setup --keystone-user root --keystone-group root &&
  km credential_setup --keystone-user root --keystone-group root &&
  km bootstrap --bootstrap-password "$KS_ADMIN_PASS" --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$KEYSTONE/v3" --bootstrap-internal-url "$KEYSTONE/v3" --bootstrap-public-url "$KEYSTONE/v3"
}

ks_token() {   # USER PASSWORD PROJECT -> a project-scoped token
  curl -sf -D - -o /dev/null -H 'Content-Type: application/json' "$KEYSTONE/v3/auth/tokens" \
    -d "$(jq -nc --arg u "$1" --arg p "$2" --arg j "$3" '{auth:{identity:{methods:["password"],
      password:{user:{name:$u, domain:{id:"default"}, password:$p}}}, scope:{project:{name:$j, domain:{id:"default"}}}}}')" \
    | tr -d '\r' | awk 'tolower($1) == "x-subject-token:" {print $2}'
}
# ADMIN_TOKEN (operator) and TENANT_TOKEN (demo member) for the REST checks
ks_tokens() {
  ks_secrets
  ADMIN_TOKEN=$(ks_token admin "$KS_ADMIN_PASS" admin) && TENANT_TOKEN=$(ks_token demo "$KS_TENANT_PASS" demo) &&
  [ -n "$ADMIN_TOKEN" ] && [ -n "$TENANT_TOKEN" ]
}
ks() {   # ks METHOD PATH [JSON] : Keystone's API as admin
  local a=(-sf -H "X-Auth-Token: $ADMIN_TOKEN" -H 'Content-Type: application/json' -X "$1" "$KEYSTONE/v3$2")
  [ $# -ge 3 ] && a+=(-d "$3")
  curl "${a[@]}"
}
ks_create() { ks POST "/$1s" "{\"$1\":$2}" | jq -er ".$1.id"; }   # KIND JSON -> id

keystone_up() {
  # uwsgi's http-socket closes each connection after its answer without
  # saying so; a client reusing it raced the close (RemoteDisconnected)
  os_spawn keystone /usr/bin/uwsgi --plugins python3 --http-socket "127.0.0.1:$KEYSTONE_PORT" \
    --wsgi-file /usr/bin/keystone-wsgi-public --master --processes 1 --threads 4 --die-on-term --enable-threads \
    --lazy-apps --env "OS_KEYSTONE_CONFIG_DIR=$BASE/keystone" --logto "$BASE/keystone/log/uwsgi.log" \
    --add-header 'Connection: close'
  os_wait 60 keystone curl -sf -o /dev/null "$KEYSTONE/v3" || { tail -20 "$BASE/keystone/log/uwsgi.log" >&2; return 1; }
  ks_setup
}
ks_setup() {   # projects, users, roles, the catalog
  local r_admin r_member r_service p_service p_demo u t url id
  ADMIN_TOKEN=$(ks_token admin "$KS_ADMIN_PASS" admin)
  [ -n "$ADMIN_TOKEN" ] || { os_log "no admin token"; return 1; }
  r_admin=$(ks GET "/roles?name=admin" | jq -er '.roles[0].id') &&
  r_member=$(ks GET "/roles?name=member" | jq -er '.roles[0].id') &&
  r_service=$(ks_create role '{"name":"service"}') &&
  p_service=$(ks_create project '{"name":"service","domain_id":"default"}') &&
  p_demo=$(ks_create project '{"name":"demo","domain_id":"default"}') &&
  id=$(ks_create user "$(jq -nc --arg p "$KS_TENANT_PASS" '{name:"demo", domain_id:"default", password:$p}')") &&
  ks PUT "/projects/$p_demo/users/$id/roles/$r_member" || return 1
  for u in $KS_SERVICES; do
    id=$(ks_create user "$(jq -nc --arg n "$u" --arg p "$KS_SERVICE_PASS" '{name:$n, domain_id:"default", password:$p}')") &&
    ks PUT "/projects/$p_service/users/$id/roles/$r_admin" && ks PUT "/projects/$p_service/users/$id/roles/$r_service" || return 1
  done
  # Nova finds Neutron, Cinder, Glance, Placement and Ironic here; so does the CLI
  while read -r u t url; do
    id=$(ks_create service "$(jq -nc --arg n "$u" --arg t "$t" '{name:$n, type:$t}')") &&
    ks_create endpoint "$(jq -nc --arg s "$id" --arg u "$url" '{service_id:$s, interface:"public", region_id:"RegionOne", url:$u}')" \
      > /dev/null || return 1
  done <<EOF
nova compute $NOVA
neutron network $NEUTRON
cinderv3 volumev3 http://127.0.0.1:$CINDER_PORT/v3/%(project_id)s
glance image $GLANCE
placement placement $PLACEMENT
ironic baremetal $IRONIC
EOF
  ks_tokens
}

# Config snippets: a service user's keystoneauth options (calls it makes to
# another service) and its keystonemiddleware section (tokens it accepts).
ks_auth() {   # USER
  cat <<A
auth_type = password
auth_url = $KEYSTONE/v3
username = $1
password = $KS_SERVICE_PASS
user_domain_name = Default
project_name = service
project_domain_name = Default
region_name = RegionOne
A
}
ks_authtoken() {   # USER
  printf '[keystone_authtoken]\nwww_authenticate_uri = %s\nservice_token_roles_required = true\n' "$KEYSTONE"
  ks_auth "$1"
}

# ---------------------------------------------------------------- configs
neutron_conf() {
  local d=$BASE/neutron; mkdir -p "$d"/{log,state,lock}
  cat > "$d/neutron.conf" <<CONF
[DEFAULT]
core_plugin = ml2
# the OVN MaintenanceWorker crashes without the router plugin
service_plugins = ovn-router
auth_strategy = keystone
api_paste_config = /etc/neutron/api-paste.ini
bind_host = 127.0.0.1
bind_port = $NEUTRON_PORT
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = $TRANSPORT_URL
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
state_path = $d/state
log_dir = $d/log
debug = false
dhcp_agent_notification = false
# OS_BACKDOOR=1: an eventlet console per neutron-server process on
# $d/backdoor-<pid> (its pgt() prints every greenthread's stack)
$([ "${OS_BACKDOOR:-0}" = 1 ] && echo "backdoor_socket = $d/backdoor-{pid}")

[database]
connection = $(pgdb neutron)

[ml2]
type_drivers = geneve,flat,vlan
tenant_network_types = geneve
mechanism_drivers = ovn
extension_drivers = port_security
overlay_ip_version = 4

[ml2_type_geneve]
vni_ranges = 1:65536
max_header_size = 38

[ml2_type_flat]
flat_networks = *

[ovn]
ovn_nb_connection = $NBDB
ovn_sb_connection = $SBDB
ovn_metadata_enabled = false
enable_distributed_floating_ip = false
dns_servers =

[oslo_concurrency]
lock_path = $d/lock

$(ks_authtoken neutron)

[nova]
$(ks_auth neutron)
CONF
  chmod 600 "$d/neutron.conf"
}

glance_conf() {
  local d=$BASE/glance; mkdir -p "$d"/{log,images,staging,lock}
  cp /etc/glance/glance-api-paste.ini "$d/"
  cat > "$d/glance-api.conf" <<CONF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $GLANCE_PORT
workers = 1
log_dir = $d/log
enabled_backends = file1:file
[database]
connection = sqlite:///$d/glance.sqlite
[paste_deploy]
flavor = keystone
config_file = $d/glance-api-paste.ini
[glance_store]
default_backend = file1
[file1]
filesystem_store_datadir = $d/images
[os_glance_staging_store]
filesystem_store_datadir = $d/staging
[os_glance_tasks_store]
filesystem_store_datadir = $d/staging
[oslo_concurrency]
lock_path = $d/lock
$(ks_authtoken glance)
CONF
  chmod 600 "$d/glance-api.conf"
}

placement_conf() {
  local d=$BASE/placement; mkdir -p "$d"/log
  cat > "$d/placement.conf" <<CONF
[DEFAULT]
log_dir = $d/log
[api]
auth_strategy = keystone
[placement_database]
connection = $(pgdb placement)
$(ks_authtoken placement)
CONF
  chmod 600 "$d/placement.conf"
}

ironic_conf() {
  local d=$BASE/ironic; mkdir -p "$d"/{log,state,lock}
  cat > "$d/ironic.conf" <<CONF
[DEFAULT]
host = os-e2e-conductor
auth_strategy = keystone
rpc_transport = oslo
transport_url = $TRANSPORT_URL
state_path = $d/state
log_dir = $d/log
debug = false
enabled_hardware_types = dpu
enabled_bios_interfaces = no-bios
enabled_boot_interfaces = dpu
enabled_console_interfaces = no-console
enabled_deploy_interfaces = dpu
enabled_inspect_interfaces = no-inspect
enabled_management_interfaces = fake
enabled_network_interfaces = dpu,noop
enabled_power_interfaces = fake
enabled_raid_interfaces = no-raid
enabled_rescue_interfaces = no-rescue
enabled_storage_interfaces = dpu,noop
enabled_vendor_interfaces = dpu,no-vendor
default_network_interface = dpu
default_storage_interface = dpu

[api]
host_ip = 127.0.0.1
port = $IRONIC_API_PORT
api_workers = 1

[conductor]
automated_clean = false
sync_power_state_interval = -1
heartbeat_interval = 5

[database]
connection = sqlite:///$d/ironic.sqlite

[dhcp]
dhcp_provider = none

$(ks_authtoken ironic)

# Ironic's calls to other services (the dpu network interface binds ports
# through [neutron]), as its own user, endpoints from the catalog
[neutron]
$(ks_auth ironic)

[glance]
$(ks_auth ironic)

[cinder]
$(ks_auth ironic)

[nova]
# power state change notifications to Nova
$(ks_auth ironic)

[oslo_concurrency]
lock_path = $d/lock

[dpu_agent]
# the DPUs' own vhost, with the conductor side's user
transport_url = $DPU_COND_URL
timeout = 30
call_monitor_timeout = 10
state_wait_timeout = 20
state_poll_interval = 0.2
# a deploy still pending after [dpu_agent] inline_wait (default 2 s) waits in
# DEPLOYWAIT; the conductor checks the agent this often
state_check_interval = 0.5

[dpu]
# bind each VIF's Neutron port to the DPU's OVN chassis (driver_info dpu_hostname)
neutron_binding = true

[deploy]
# the conductor's web server, as for iPXE / virtual media: Nova's config drive
# is published here and the agent fetches it (agent RPC API 1.2)
http_root = $d/httpboot
http_url = http://127.0.0.1:$IRONIC_HTTP_PORT
CONF
  chmod 600 "$d/ironic.conf"
}

cinder_conf() {
  local d=$BASE/cinder; mkdir -p "$d"/{log,state,lock}
  cat > "$d/cinder.conf" <<CONF
[DEFAULT]
host = cinder-1
transport_url = $TRANSPORT_URL
auth_strategy = keystone
api_paste_config = /etc/cinder/api-paste.ini
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = $CINDER_PORT
osapi_volume_workers = 1
my_ip = 127.0.0.1
state_path = $d/state
log_dir = $d/log
debug = false
enabled_backends = spdk
backend_stats_polling_interval = 10

[database]
connection = $(pgdb cinder)

[oslo_concurrency]
lock_path = $d/lock

[oslo_messaging_notifications]
driver = noop

$(ks_authtoken cinder)

[nova]
# Cinder's events to Nova (volume extended), as its own user
$(ks_auth cinder)

[spdk]
volume_driver = cinder.volume.drivers.spdk.SPDKDriver
volume_backend_name = SPDK
target_helper = spdk-nvmeof
target_protocol = nvmet_tcp
target_ip_address = 127.0.0.1
target_port = $NVMF_PORT
target_prefix = nqn.2016-06.io.spdk
nvmet_ns_id = 1
spdk_rpc_ip = 127.0.0.1
spdk_rpc_port = $SPDK_HTTP_PORT
spdk_rpc_username = spdk
spdk_rpc_password = $(cat "$SPDK_PASS")
spdk_rpc_protocol = http
CONF
  chmod 600 "$d/cinder.conf"
}

nova_conf() {
  local d=$BASE/nova; mkdir -p "$d"/{log,state,lock,instances}
  cat > "$d/nova.conf" <<CONF
[DEFAULT]
host = nova-ironic-1
transport_url = $TRANSPORT_URL
# Nova's ironic driver + volume attach/detach/extend through the DPU
# (nova.virt.ironic_dpu, pip-installed into $BASE/site by driver_install)
compute_driver = ironic_dpu.IronicDPUDriver
my_ip = 127.0.0.1
state_path = $d/state
instances_path = $d/instances
log_dir = $d/log
debug = false
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $NOVA_PORT
osapi_compute_workers = 1
reserved_host_memory_mb = 0
reserved_host_disk_mb = 0
# see new ironic nodes within seconds, not a minute
update_resources_interval = 5
periodic_fuzzy_delay = 0
ram_allocation_ratio = 1.0
disk_allocation_ratio = 1.0
cpu_allocation_ratio = 1.0

[api]
auth_strategy = keystone

[wsgi]
api_paste_config = /etc/nova/api-paste.ini

$(ks_authtoken nova)

[api_database]
connection = $(pgdb nova_api)

[database]
connection = $(pgdb nova)

[conductor]
workers = 1

[scheduler]
workers = 1
discover_hosts_in_cells_interval = 2
# one node: no host to retry a failed build on, and a reschedule would
# replace the fault (the deploy's reason) by "Exhausted all hosts"
max_attempts = 1

[ironic_dpu]
volume_timeout = 30
poll_interval = 0.2

[filter_scheduler]
track_instance_changes = false

# Nova's calls to other services as its own user, endpoints from the
# catalog. Glance and Cinder calls carry the tenant's token (+ Nova's as
# the service token); [cinder]'s user serves calls without a tenant token.
[placement]
$(ks_auth nova)

[ironic]
$(ks_auth nova)
api_retry_interval = 1

[neutron]
$(ks_auth nova)

[cinder]
$(ks_auth nova)

[service_user]
# Cinder lets only a service delete an in-use attachment
send_service_user_token = true
$(ks_auth nova)

[oslo_concurrency]
lock_path = $d/lock

[oslo_messaging_notifications]
driver = noop

[vnc]
enabled = false

[spice]
enabled = false

[serial_console]
enabled = false
CONF
  chmod 600 "$d/nova.conf"
  # Each nova-compute service: nova.conf, then its own host and log file.
  # Nova's ironic driver spreads the nodes over the services that are up
  # (a hash ring of their hosts); a service that is down loses its nodes to
  # the others.
  local h
  for h in $NOVA_COMPUTES; do
    printf '[DEFAULT]\nhost = %s\nlog_file = %s.log\n' "$h" "$(nova_compute_proc "$h")" > "$d/$h.conf"
  done
}
# nova-compute process name of HOST: nova-compute for the first, then nova-compute-N
nova_compute_proc() { if [ "$1" = nova-ironic-1 ]; then echo nova-compute; else echo "nova-compute-${1##*-}"; fi; }
nova_compute_start() {   # HOST
  os_spawn "$(nova_compute_proc "$1")" PYTHONPATH="$(PYPATH_DPU)" $PY /usr/bin/nova-compute \
    --config-file "$BASE/nova/nova.conf" --config-file "$BASE/nova/$1.conf"
}

clouds_yaml() {   # the operator (admin) and the tenant (demo, role member); endpoints from the catalog
  local cloud user pass
  {
    echo "clouds:"
    while read -r cloud user pass; do
      cat <<Y
  $cloud:
    auth:
      auth_url: $KEYSTONE/v3
      username: $user
      password: "$pass"
      project_name: $user
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    identity_api_version: 3
    baremetal_api_version: "1.78"
Y
    done <<C
admin admin $KS_ADMIN_PASS
tenant demo $KS_TENANT_PASS
C
  } > "$BASE/clouds.yaml"
  chmod 600 "$BASE/clouds.yaml"
}
as_admin() { env OS_CLOUD=admin "$@"; }   # as_admin openstack ... : the operator's commands

# ---------------------------------------------------------------- services
schemas() {   # 4 parallel chains (CPU bound); nova's is the long pole
  local N="$PY /usr/bin/nova-manage --config-file $BASE/nova/nova.conf" p1 p2 p3 p4 rc=0
  keystone_db > "$BASE/log/db-keystone.out" 2>&1 & p4=$!
  $PY /usr/bin/neutron-db-manage --config-file "$BASE/neutron/neutron.conf" upgrade heads > "$BASE/log/db-neutron.out" 2>&1 & p1=$!
  { $N api_db sync && $N cell_v2 map_cell0 --database_connection "$(pgdb nova_cell0)" &&
    $N cell_v2 create_cell --name cell1 && $N db sync; } > "$BASE/log/db-nova.out" 2>&1 & p2=$!
  { $PY /usr/bin/cinder-manage --config-file "$BASE/cinder/cinder.conf" db sync &&
    $PY /usr/bin/placement-manage --config-file "$BASE/placement/placement.conf" db sync &&
    $PY /usr/bin/glance-manage --config-file "$BASE/glance/glance-api.conf" db_sync &&
    $PY /usr/bin/ironic-dbsync --config-file "$BASE/ironic/ironic.conf" create_schema; } > "$BASE/log/db-small.out" 2>&1 & p3=$!
  wait $p1 || { tail -20 "$BASE/log/db-neutron.out" >&2; rc=1; }
  wait $p2 || { tail -20 "$BASE/log/db-nova.out" >&2; rc=1; }
  wait $p3 || { tail -20 "$BASE/log/db-small.out" >&2; rc=1; }
  wait $p4 || { tail -20 "$BASE/log/db-keystone.out" >&2; rc=1; }
  return $rc
}

# The dpu hardware type and the Nova driver as `pip install` lays them out
# (entry points; nova/virt/ironic_dpu beside the nova namespace portions),
# into this run's $BASE/site: Nova's tree and the checkout stay untouched.
driver_install() {
  [ -d "$BASE/site" ] && return 0
  pyinstall_dpu "$IRONIC_DPU_ROOT" "$BASE/site" "$BASE/log/pip-install.out" || return 1
  # (from $BASE: python -c puts the working directory, maybe a checkout, first)
  local f; f=$(cd "$BASE" && PYTHONPATH=$BASE/site $PY -c 'import nova.virt.ironic_dpu as m; print(m.__file__)')
  [ "$f" = "$BASE/site/nova/virt/ironic_dpu/__init__.py" ] \
    || { os_log "nova.virt.ironic_dpu does not import from $BASE/site (${f:-no module})"; return 1; }
}

# The pip-installed driver (ironic_dpu, the Nova driver).
PYPATH_DPU() { echo "$BASE/site"; }

services_up() {
  os_spawn neutron-server $PY /usr/bin/neutron-server --config-file "$BASE/neutron/neutron.conf"
  os_spawn glance-api $PY /usr/bin/glance-api --config-file "$BASE/glance/glance-api.conf"
  os_spawn placement /usr/bin/uwsgi --plugins python3 --http-socket "127.0.0.1:$PLACEMENT_PORT" \
    --wsgi-file /usr/bin/placement-api --master --processes 1 --threads 4 --die-on-term --enable-threads \
    --lazy-apps --env "OS_PLACEMENT_CONFIG_DIR=$BASE/placement" --logto "$BASE/placement/log/uwsgi.log"
  local s
  driver_install || return 1
  mkdir -p "$BASE/ironic/httpboot"
  os_spawn ironic-http $PY -m http.server --bind 127.0.0.1 --directory "$BASE/ironic/httpboot" "$IRONIC_HTTP_PORT"
  for s in conductor api; do
    os_spawn "ironic-$s" PYTHONPATH="$(PYPATH_DPU)" $PY "/usr/bin/ironic-$s" --config-file "$BASE/ironic/ironic.conf"
  done
  for s in api scheduler volume; do
    os_spawn "cinder-$s" $PY "/usr/bin/cinder-$s" --config-file "$BASE/cinder/cinder.conf"
  done
  os_wait 60 placement curl -sf -o /dev/null "$PLACEMENT/" || return 1
  for s in api conductor scheduler; do
    os_spawn "nova-$s" PYTHONPATH="$(PYPATH_DPU)" $PY "/usr/bin/nova-$s" --config-file "$BASE/nova/nova.conf"
  done
  local computes=() h
  for h in $NOVA_COMPUTES; do nova_compute_start "$h"; computes+=("$(nova_compute_proc "$h")"); done
  local i n ready T
  for ((i = 0; i < 1200; i++)); do
    for s in keystone neutron-server glance-api placement ironic-conductor ironic-api cinder-api cinder-scheduler \
      cinder-volume nova-api nova-conductor nova-scheduler "${computes[@]}"; do
      os_alive "$s" || { tail -30 "$BASE/log/$s.out" >&2; os_log "$s died"; return 1; }
    done
    ready=1 T="X-Auth-Token: $ADMIN_TOKEN"
    curl -sf -o /dev/null -H "$T" "$NEUTRON/v2.0/networks" || ready=0
    curl -sf -o /dev/null -H "$T" "$GLANCE/v2/images" || ready=0
    n=$(curl -sf -H "$T" -H 'X-OpenStack-Ironic-API-Version: latest' "$IRONIC/v1/drivers/dpu" 2>/dev/null | jq -r '.hosts | length' 2>/dev/null)
    [ "${n:-0}" -ge 1 ] || ready=0
    n=$(curl -sf -H "$T" -H 'OpenStack-API-Version: volume 3.0' "$CINDER/os-services" 2>/dev/null \
      | jq '[.services[] | select(.state=="up")] | length' 2>/dev/null)
    [ "${n:-0}" -ge 2 ] || ready=0
    n=$(curl -sf -H "$T" "$NOVA/os-services" 2>/dev/null \
      | jq '[.services[] | select(.state=="up")] | length' 2>/dev/null)
    [ "${n:-0}" -ge $((2 + ${#computes[@]})) ] || ready=0
    [ $ready = 1 ] && break
    sleep 0.2
  done
  [ $ready = 1 ] || { os_log "services not ready in 240 s"; return 1; }
  # Map every nova-compute service to the cell (Nova's advice for ironic):
  # the scheduler's periodic discovery maps the host of each new compute
  # node record, and both services race to create a node's record until
  # they see each other in the hash ring; the loser's host never gets
  # mapped ("Host 'nova-ironic-1' is not mapped to any cell").
  $PY /usr/bin/nova-manage --config-file "$BASE/nova/nova.conf" cell_v2 discover_hosts --by-service \
    >> "$BASE/log/nova-manage.out" 2>&1
}

services_down() {
  local h computes=()
  for h in $NOVA_COMPUTES; do computes+=("$(nova_compute_proc "$h")"); done
  os_stop nova-api "${computes[@]}" nova-scheduler nova-conductor cinder-api cinder-volume cinder-scheduler \
    ironic-api ironic-conductor ironic-http glance-api neutron-server placement
  os_stop keystone
}

# ---------------------------------------------------------------- the agent
agent_conf() {   # NODE_UUID [DPU] : its config and its own broker user (broker-acl), on DPU (default 1)
  local n=${2:-1} d user=dpu-$1 pw
  d=$(dpu_agent_dir "$n")
  pw=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  TRANSPORT_URL="rabbit://$user:$pw@127.0.0.1:$RMQ_PORT/$DPU_VHOST" OVSDB=$(dpu_ovsdb "$n") \
    agent_conf_write "$d" "$1" "$(dpu_sock "$n")" "$(dpu_nvmf_port "$n")" 10s "${AGENT_DEBUG:-false}"
  rabbit_env_vars "$BASE/rmq" "$RMQ_PORT" "rmqos$RMQ_PORT@localhost"   # rabbit_up ran in a subshell
  rabbit_dpu_user "$BASE/bin/ironic-dpu-agent" "$d/agent.conf" "$user" "$pw" || { os_log "broker user of $1 failed"; return 1; }
  # the operator's CLI asks the agent with the conductor side's user
  printf '[DEFAULT]\ntransport_url = %s\nnode_uuid = %s\n' "$DPU_COND_URL" "$1" > "$d/cli.conf"
}
agent_start() {   # [DPU] : the agent of DPU (default 1), ready once it answers get_status
  local n=${1:-1} p; p=$(dpu_agent_proc "$n")
  os_spawn "$p" "$BASE/bin/ironic-dpu-agent" serve --config-file "$(dpu_agent_dir "$n")/agent.conf"
  os_wait 30 "agent $n answering get_status" agent_cli_of "$n" status || { tail -20 "$BASE/log/$p.out" >&2; return 1; }
}
# the operator's CLI against DPU N's agent / the current DPU's (use_dpu)
agent_cli_of() { local d; d=$(dpu_agent_dir "$1"); shift; "$BASE/bin/ironic-dpu-agent" "$@" --config-file "$d/cli.conf"; }
agent_cli() { agent_cli_of "$DPU_N" "$@"; }
agent_state() { agent_cli status --state 2>>"$BASE/log/agent-cli.err"; }

# ---------------------------------------------------------------- whole stack
stack_up() {
  os_init
  rabbit_up > "$BASE/log/rabbit-up.out" 2>&1 & local rpid=$!
  go_build || return 1
  pg_up || { os_log "postgres failed"; return 1; }
  ovn_up || { os_log "OVN failed"; return 1; }
  spdk_up || { os_log "SPDK emulator failed"; return 1; }
  os_log "postgres, OVN (chassis $(for n in $DPUS; do printf 'dpu-chassis-%s ' "$n"; done)), SPDK emulators up"
  keystone_conf; neutron_conf; glance_conf; placement_conf; ironic_conf; cinder_conf; nova_conf; clouds_yaml
  schemas || { os_log "schema creation failed"; return 1; }
  keystone_up || { os_log "keystone failed"; return 1; }
  wait $rpid || { cat "$BASE/log/rabbit-up.out" >&2; os_log "rabbit failed"; return 1; }
  os_log "schemas created, keystone and rabbit up"
  services_up || return 1
  os_log "stack ready"
}

stack_down() {
  set +e
  local n
  for n in $DPUS; do os_stop "$(dpu_agent_proc "$n")"; done
  services_down
  os_stop spdk
  ovn_down
  pg_down
  rabbit_down
}
