#!/bin/bash
# The user's flows (sourced by e2e.sh and the benchmark, after lib.sh).
# User-facing steps use the `openstack` CLI; waiting is done by polling the
# REST APIs (each CLI call costs ~2 s of Python start-up).
# shellcheck disable=SC2034,SC2153,SC2016   # variables are shared with lib.sh and the sourcing scripts

IMAGE=cirros-fake FLAVOR=bm.small FLAVOR_LARGE=bm.large NET=net01
NODE=""
MAC1=52:54:00:00:00:01 MAC2=52:54:00:00:00:02 MAC3=52:54:00:00:00:03

expect() {     # expect DESCRIPTION CMD... : log and fail the case if CMD fails
  local what=$1; shift
  if "$@"; then return 0; fi
  os_log "  expectation failed: $what"; return 1
}

# ---------------------------------------------------------------- REST helpers
# The checks read every API as the operator (ADMIN_TOKEN, from lib.sh's ks_tokens).
IR_H=(-H 'Content-Type: application/json' -H 'X-OpenStack-Ironic-API-Version: 1.78')
NOVA_H=(-H 'X-OpenStack-Nova-API-Version: latest')
CINDER_H=(-H 'OpenStack-API-Version: volume 3.60')
adm() { curl -H "X-Auth-Token: $ADMIN_TOKEN" "$@"; }   # curl as the operator
ir() {   # ir METHOD PATH [JSON]
  if [ $# -ge 3 ]; then adm -sS -f "${IR_H[@]}" -X "$1" "$IRONIC/v1$2" -d "$3"
  else adm -sS -f "${IR_H[@]}" -X "$1" "$IRONIC/v1$2"; fi
}
nv() { adm -sf "${NOVA_H[@]}" "$NOVA$1"; }
nt() { adm -sf "$NEUTRON/v2.0$1"; }
cv() { adm -sf "${CINDER_H[@]}" "$CINDER$1"; }

server_field() { nv "/servers/$1" | jq -r ".server.$2"; }
wait_server() {   # SID STATUS [SECONDS] -> 0 when reached, 1 on ERROR/timeout
  local i st
  for ((i = 0; i < ${3:-120} * 5; i++)); do
    st=$(server_field "$1" status 2>/dev/null)
    [ "$st" = "$2" ] && return 0
    if [ "$st" = ERROR ]; then os_log "  server $1 ERROR: $(nv "/servers/$1" | jq -c .server.fault)"; return 1; fi
    sleep 0.2
  done
  os_log "  server $1 still $st (want $2)"; return 1
}
wait_server_gone() {
  local i
  for ((i = 0; i < ${2:-120} * 5; i++)); do
    [ "$(adm -s -o /dev/null -w '%{http_code}' "${NOVA_H[@]}" "$NOVA/servers/$1")" = 404 ] && return 0
    sleep 0.2
  done; return 1
}
port_of() { nt "/ports?device_id=$1" | jq -r '.ports[0].id // empty'; }
port_field() { nt "/ports/$1" | jq -r ".port.\"$2\""; }
port_active() { [ "$(port_field "$1" status)" = ACTIVE ]; }
port_down() { [ "$(port_field "$1" status)" = DOWN ]; }
port_unbound() { local h; h=$(port_field "$1" binding:host_id) && [ -z "$h" ]; }
volume_status() { cv "/volumes/$1" | jq -r .volume.status; }
volume_is() { [ "$(volume_status "$1")" = "$2" ]; }
node_field() { ir GET "/nodes/$NODE" | jq -r ".$1"; }
node_is() { [ "$(node_field provision_state)" = "$1" ]; }

# available in Ironic and unreserved in Placement = Nova can schedule on it
node_free() {
  [ "$(node_field provision_state)" = available ] &&
  [ "$(adm -sf "$PLACEMENT/resource_providers/$NODE/inventories" \
       | jq -r '.inventories.CUSTOM_BAREMETAL.reserved // empty')" = 0 ]
}

# ---------------------------------------------------------------- OVN / OVS / agent views
ovs_iface() { vsctl --bare --columns=name find Interface "external_ids:iface-id=$1"; }
ovs_installed() {   # PORT: the OVS Interface with its iface-id carries ovn-installed=true
  [ "$(vsctl --bare --columns=external_ids find Interface "external_ids:iface-id=$1" \
       | tr ' ' '\n' | grep -c '^ovn-installed="\?true"\?$')" -ge 1 ]
}
ovs_gone() { [ -z "$(ovs_iface "$1")" ]; }
lsp_opt() { nbctl --if-exists get Logical_Switch_Port "$1" "options:$2" 2>/dev/null | tr -d '"'; }
lsp_gone() { ! nbctl --bare --columns=name find Logical_Switch_Port "name=$1" | grep -q .; }
sb_chassis_of() {   # PORT -> the name of the chassis its Port_Binding is claimed by
  local ch; ch=$(sbctl --bare --columns=chassis find Port_Binding "logical_port=$1")
  [ -n "$ch" ] && sbctl --bare --columns=name list Chassis "$ch"
}
agent_vif() {   # PORT -> the agent's observed VIF (JSON) or nothing
  agent_state | jq -c --arg p "$1" '.observed.vifs[]? | select(.port_id == $p)'
}
agent_vif_bound() { agent_vif "$1" | jq -e 'select(.state == "plugged" and .bound == true)' >/dev/null; }
agent_vif_gone() { [ -z "$(agent_vif "$1")" ] && agent_state >/dev/null; }
agent_vol() { agent_state | jq -c --arg v "$1" '.observed.volumes[]? | select(.volume_id == $v)'; }
agent_vol_nsid() { agent_vol "$1" | jq -e --argjson n "$2" 'select(.state == "attached" and .nsid == $n)' >/dev/null; }
agent_vol_gone() { [ -z "$(agent_vol "$1")" ] && agent_state >/dev/null; }
agent_vol_attached() { agent_vol "$1" | jq -e 'select(.state == "attached")' >/dev/null; }
agent_vol_size() { agent_vol "$1" | jq -e --argjson s "$2" 'select(.state == "attached" and .size_bytes == $s)' >/dev/null; }
agent_drive() { agent_state | jq -c '.observed.config_drive // {}'; }
agent_drive_attached() { agent_drive | jq -e '.state == "attached" and .nsid > 0' >/dev/null; }
agent_drive_gone() { [ "$(agent_drive)" = "{}" ]; }

# The DPU's SPDK as the host sees it: PF0's emulated controller (subsystem
# <host NQN prefix><node>:pf0) and its namespaces.
pf0_nqn() { echo "nqn.2024-01.io.openstack.ironic-dpu:node-$NODE:pf0"; }
pf0_ns_bdev() {   # NSID -> the bdev behind PF0's namespace NSID, or nothing
  dpu_spdk_rpc nvmf_get_subsystems | jq -r --arg q "$(pf0_nqn)" --argjson n "$1" \
    '.result[] | select(.nqn == $q) | .namespaces[]? | select(.nsid == $n) | .bdev_name'
}
pf0_ns_gone() { [ -z "$(pf0_ns_bdev "$1")" ] && dpu_spdk_rpc nvmf_get_subsystems >/dev/null; }
dpu_bdev() { dpu_spdk_rpc bdev_get_bdevs "$(jq -nc --arg b "$1" '{name:$b}')" | jq -c '.result[0] // empty'; }
dpu_bdev_bytes() { dpu_bdev "$1" | jq -e --argjson s "$2" '.num_blocks * .block_size == $s' >/dev/null; }
under() { case "$2" in "$1"/*) return 0;; esac; return 1; }   # under DIR PATH
target_of() {   # VOLUME_ID -> its Ironic volume target (JSON) on the node
  ir GET "/volume/targets?node=$NODE&detail=true" | jq -c --arg v "$1" '.targets[] | select(.volume_id == $v)'
}
jq_true() { jq -e "$@" >/dev/null; }   # jq_true [ARGS] FILTER <<< JSON
# the details of the last event NAME of the last instance action ACTION
action_event() {   # SERVER ACTION EVENT -> {result, details}
  local req
  req=$(nv "/servers/$1/os-instance-actions" | jq -r --arg a "$2" \
    '[.instanceActions[] | select(.action == $a)] | sort_by(.start_time) | last | .request_id // empty')
  [ -n "$req" ] && nv "/servers/$1/os-instance-actions/$req" | jq -c --arg e "$3" \
    '[.instanceAction.events[]? | select(.event == $e)] | last | {result, details}'
}
event_done() { [ "$(action_event "$@" | jq -r '.result // empty')" != "" ] && [ "$(action_event "$@" | jq -r .result)" != null ]; }

# The port is wired end to end: Neutron binding to the DPU (keeping the port's
# identity: vnic_type normal and its own MAC), OVN LSP pinned to the DPU
# chassis, the agent's representor in br-int with the iface-id and
# ovn-installed, SB claimed by the DPU chassis, Neutron ACTIVE, and the host
# function carrying the Neutron MAC.
ironic_macs() { ir GET "/ports?fields=address" | jq -r '.ports[].address | ascii_downcase'; }
own_mac() {   # MAC [WANT]: not an Ironic port's address (the node's hardware); WANT if given
  local hw; hw=$(ironic_macs) && [ -n "$hw" ] && [ -n "$1" ] &&
  ! grep -qxF "$1" <<<"$hw" && { [ -z "${2:-}" ] || [ "$1" = "$2" ]; }
}
port_wired() {   # PORT [MAC]: MAC = the one Neutron gave the port before it was bound
  local p=$1 rep mac
  expect "port $p ACTIVE in Neutron" os_wait 30 "port ACTIVE" port_active "$p" &&
  expect "binding host $DPU_HOST, vnic_type normal (as created: no flip), vif ovs" \
    jq_true --arg h "$DPU_HOST" '.port | ."binding:host_id" == $h and
      ."binding:vnic_type" == "normal" and ."binding:vif_type" == "ovs"' <<<"$(nt "/ports/$p")" &&
  mac=$(port_field "$p" mac_address) &&
  expect "Neutron MAC $mac is the port's own${2:+ ($2)}, not an Ironic port's address" own_mac "$mac" "${2:-}" &&
  expect "OVN LSP requested-chassis=$DPU_HOST" [ "$(lsp_opt "$p" requested-chassis)" = "$DPU_HOST" ] &&
  expect "OVN LSP type \"\"" [ "$(nbctl get Logical_Switch_Port "$p" type | tr -d '"')" = "" ] &&
  rep=$(ovs_iface "$p") &&
  expect "representor for $p in br-int named like pf0vfN (got '$rep')" grep -Eq '^pf0vf[0-9]+$' <<<"$rep" &&
  expect "representor on br-int" vsctl port-to-br "$rep" >/dev/null &&
  expect "interface $rep owned by the agent of node $NODE (ironic-node-uuid), attached-mac = Neutron MAC" \
    [ "$(vsctl get Interface "$rep" external_ids:ironic-node-uuid external_ids:attached-mac | tr -d '"' | xargs)" = \
      "$NODE $mac" ] &&
  expect "iface $rep ovn-installed" os_wait 10 "ovn-installed" ovs_installed "$p" &&
  expect "SB Port_Binding claimed by $DPU_CHASSIS" [ "$(sb_chassis_of "$p")" = "$DPU_CHASSIS" ] &&
  expect "agent reports $p plugged and bound" os_wait 15 "agent bound" agent_vif_bound "$p" &&
  expect "the host's $rep carries the Neutron MAC $mac (the agent's observed mac)" \
    [ "$(agent_vif "$p" | jq -r '.mac // empty')" = "$mac" ]
}

port_unwired() {   # PORT: nothing left on the DPU
  expect "agent no longer reports $1" os_wait 20 "agent unplug" agent_vif_gone "$1" &&
  expect "no OVS interface with iface-id $1" os_wait 10 "OVS port gone" ovs_gone "$1"
}

# ---------------------------------------------------------------- cases
case_setup() {
  openstack network create "$NET" -f value -c id > /dev/null &&
  openstack subnet create --network "$NET" --subnet-range 10.0.0.0/24 sub01 -f value -c id > /dev/null &&
  head -c 1048576 /dev/urandom > "$BASE/fake.img" &&
  as_admin openstack image create --public --disk-format raw --container-format bare --file "$BASE/fake.img" "$IMAGE" \
    -f value -c id > /dev/null &&
  as_admin openstack flavor create --ram 8192 --disk 10 --vcpus 4 --property resources:CUSTOM_BAREMETAL=1 \
    --property resources:VCPU=0 --property resources:MEMORY_MB=0 --property resources:DISK_GB=0 "$FLAVOR" \
    -f value -c id > /dev/null || return 1
  # a bigger flavor of the same bare-metal class, to resize to
  as_admin openstack flavor create --ram 16384 --disk 20 --vcpus 8 --property resources:CUSTOM_BAREMETAL=1 \
    --property resources:VCPU=0 --property resources:MEMORY_MB=0 --property resources:DISK_GB=0 "$FLAVOR_LARGE" \
    -f value -c id > /dev/null || return 1
  # the tenant's key and user data (flow 1 puts them on a config drive)
  ssh-keygen -q -t ed25519 -N '' -C e2e@bm-01 -f "$BASE/key01" &&
  openstack keypair create --public-key "$BASE/key01.pub" key01 -f value -c name > /dev/null &&
  printf '#cloud-config\nruncmd:\n  - [echo, e2e-%s]\n' "$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    > "$BASE/user-data" || return 1
  # The operator's enrollment: two dpu nodes, each with its own DPU; node 2
  # stays manageable until a case that moves a server provides it, so the
  # single-node cases always land on node 1.
  enroll_node 1 "$MAC1 $MAC2 $MAC3" &&
  enroll_node 2 "52:54:00:00:02:01 52:54:00:00:02:02 52:54:00:00:02:03" || return 1
  use_dpu 1
}

# node_uuid_for HOST: a fresh node UUID that Nova's hash ring (its ironic
# driver's: the hosts of the nova-compute services, 32 partitions) gives to
# the nova-compute service HOST, so each service owns a known node.
node_uuid_for() {
  local hosts; read -ra hosts <<< "$NOVA_COMPUTES"
  $PY - "$1" "${hosts[@]}" <<'PYEOF'
import sys, uuid
from tooz import hashring
ring = hashring.HashRing(set(sys.argv[2:]), partitions=2 ** 5)
while True:
    u = str(uuid.uuid4())
    if ring.get_nodes(u.encode('utf-8')) == {sys.argv[1]}:
        print(u)
        break
PYEOF
}

# enroll_node N "MAC..." : the operator's enrollment (REST) of node N (name
# bm-node-N) whose DPU is OVN chassis dpuN, owned by nova-compute
# nova-ironic-N; ports name their host function (pf0vfN); connectors: the
# DPU's host NQN (dpu storage interface) and an iqn, because Cinder Zed
# insists on an 'initiator' and Nova builds it from iqn connectors only.
# Then its agent starts and the node goes to manageable with power off
# (fake power has no state until set; Nova keeps a stateless node reserved);
# node 1 goes on to available.
enroll_node() {
  local n=$1 macs=$2 node mac i=0
  node=$(node_uuid_for "nova-ironic-$n") || return 1
  NODE_OF[n]=$node
  use_dpu "$n"
  ir POST /nodes "$(jq -nc --arg u "$node" --arg h "$DPU_HOST" --arg name "bm-node-$n" '{uuid:$u, name:$name, driver:"dpu",
      resource_class:"baremetal", deploy_interface:"dpu", boot_interface:"dpu", storage_interface:"dpu",
      network_interface:"dpu", vendor_interface:"dpu", power_interface:"fake", management_interface:"fake",
      driver_info:{dpu_hostname:$h},
      properties:{cpus:4, memory_mb:8192, local_gb:10, cpu_arch:"x86_64"}}')" > /dev/null || return 1
  for mac in $macs; do
    ir POST /ports "$(jq -nc --arg n "$node" --arg m "$mac" --arg f "pf0vf$i" \
      '{node_uuid:$n, address:$m, extra:{dpu_function:$f}}')" > /dev/null || return 1
    i=$((i + 1))
  done
  ir POST /volume/connectors "$(jq -nc --arg n "$node" '{node_uuid:$n, type:"nqn", connector_id:("nqn.2014-08.org.nvmexpress:uuid:" + $n)}')" > /dev/null &&
  ir POST /volume/connectors "$(jq -nc --arg n "$node" '{node_uuid:$n, type:"iqn", connector_id:("iqn.2004-10.org.example:" + $n)}')" > /dev/null || return 1
  agent_conf "$node" "$n" || return 1
  agent_start "$n" || return 1
  ir PUT "/nodes/$node/states/provision" '{"target":"manage"}' || return 1
  os_wait 30 "node $n manageable" node_is manageable || return 1
  ir PUT "/nodes/$node/states/power" '{"target":"power off"}' || return 1
  expect "node $n is a hypervisor of nova-compute nova-ironic-$n" \
    os_wait 120 "hypervisor $node" hypervisor_of "$node" "nova-ironic-$n" || return 1
  # map the new compute host to the cell now, not at the scheduler's next
  # periodic discovery
  $PY /usr/bin/nova-manage --config-file "$BASE/nova/nova.conf" cell_v2 discover_hosts >> "$BASE/log/discover-hosts.out" 2>&1 || return 1
  [ "$n" = 1 ] || return 0
  node_provide "$n"
}
hypervisor_of() {   # NODE HOST: Nova lists the node as a hypervisor of nova-compute HOST
  nv /os-hypervisors/detail | jq -e --arg n "$1" --arg h "$2" \
    '.hypervisors[] | select(.hypervisor_hostname == $n and .service.host == $h)' >/dev/null
}

# node_provide N: node N available in Ironic and unreserved in Placement
# (Nova can schedule on it).
node_provide() {
  use_dpu "$1"
  node_is available || ir PUT "/nodes/$NODE/states/provision" '{"target":"provide"}' || return 1
  os_wait 30 "node $1 available" node_is available &&
  expect "node $1 schedulable (available, unreserved in Placement)" os_wait 90 "node $1 in placement" node_free
}

# ---------------------------------------------------------------- Keystone
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
ks_id() { ks GET "/$1s?name=$2" | jq -r ".$1s[0].id // empty"; }   # KIND NAME -> id
APIS=()   # one authenticated GET per API
apis() { APIS=("$NOVA/servers" "$NEUTRON/v2.0/networks" "$CINDER/volumes" "$GLANCE/v2/images"
               "$PLACEMENT/resource_providers" "$IRONIC/v1/nodes"); }

# Every API sits behind keystonemiddleware; the tenant is not the operator.
case_keystone() {
  local api
  apis
  for api in "${APIS[@]}"; do
    expect "$api: 401 without a token" [ "$(http_code "$api")" = 401 ] &&
    expect "$api: 401 with the token the noauth suite used (admin:admin)" \
      [ "$(http_code -H 'X-Auth-Token: admin:admin' "$api")" = 401 ] || return 1
  done
  # Ironic Zed scopes a project member's node list to the nodes its project
  # owns or leases: the operator's node is not in it, and is not found by id
  expect "the tenant's 'openstack baremetal node list' does not show the operator's node" \
    [ -z "$(openstack baremetal node list -f value -c UUID)" ] &&
  expect "tenant: GET /v1/nodes/$NODE is 404" \
    [ "$(http_code -H "X-Auth-Token: $TENANT_TOKEN" "$IRONIC/v1/nodes/$NODE")" = 404 ] &&
  expect "tenant: baremetal node create is 403" [ "$(http_code -H "X-Auth-Token: $TENANT_TOKEN" \
    -H 'Content-Type: application/json' -X POST "$IRONIC/v1/nodes" -d '{"driver":"dpu"}')" = 403 ] &&
  expect "tenant: baremetal driver list is 403" \
    [ "$(http_code -H "X-Auth-Token: $TENANT_TOKEN" "$IRONIC/v1/drivers")" = 403 ] &&
  expect "tenant: placement resource providers 403" \
    [ "$(http_code -H "X-Auth-Token: $TENANT_TOKEN" "$PLACEMENT/resource_providers")" = 403 ] &&
  expect "tenant: flavor create 403" [ "$(http_code -H "X-Auth-Token: $TENANT_TOKEN" -H 'Content-Type: application/json' \
    -X POST "$NOVA/flavors" -d '{"flavor":{"name":"not-mine","ram":1,"vcpus":1,"disk":1}}')" = 403 ] &&
  expect "the operator sees the node" [ "$(node_field uuid)" = "$NODE" ]
}

# logged_as LOG USER PROJECT REGEX: a request line matching REGEX whose
# oslo.log context names Keystone user USER scoped to PROJECT
logged_as() {
  local uid pid; uid=$(ks_id user "$2") && pid=$(ks_id project "$3") && [ -n "$uid" ] && [ -n "$pid" ] &&
  grep -E "$4" "$1" | grep -Eq "req-[0-9a-f-]+ $uid $pid "
}
# Each service called the next as its own Keystone user (the services' own
# request logs), and the tenant's requests ran as the tenant.
case_service_users() {
  local N=$BASE/nova/log/nova-api.log I=$BASE/ironic/log/ironic-api.log
  need_bm01 || return 1
  expect "bm-01 belongs to project demo, user demo" [ "$(nv "/servers/$SID1" | jq -r '.server.tenant_id + " " + .server.user_id')" = \
    "$(ks_id project demo) $(ks_id user demo)" ] &&
  expect "nova-api: the tenant's server create ran as demo/demo" \
    logged_as "$N" demo demo '"POST /v2.1/servers HTTP' &&
  expect "ironic-api: Nova's ironic_dpu driver pushed and polled the volume attach (vendor passthru) as user nova" \
    logged_as "$I" nova service "\"POST /v1/nodes/$NODE/vendor_passthru/sync_state HTTP" &&
  logged_as "$I" nova service "\"GET /v1/nodes/$NODE/vendor_passthru/agent_state HTTP" &&
  expect "ironic-api: Nova created vol02's volume target as user nova" \
    logged_as "$I" nova service '"POST /v1/volume/targets HTTP' &&
  expect "neutron: Ironic's dpu network interface bound $PORT1 to the DPU as user ironic ([neutron])" \
    logged_as "$BASE/neutron/log/neutron-server.log" ironic service "\"PUT /v2.0/ports/$PORT1 HTTP" &&
  expect "nova-api: Cinder's volume-extended event came as user cinder ([nova])" \
    logged_as "$N" cinder service '"POST /v2.1/os-server-external-events HTTP' &&
  expect "nova-api: Ironic's power events came as user ironic ([nova])" \
    logged_as "$N" ironic service '"POST /v2.1/os-server-external-events HTTP' &&
  expect "placement: nova-compute reported the node as user nova ([placement])" \
    logged_as "$BASE/placement/log/placement-api.log" nova service '"(POST|PUT) /resource_providers'
}

SID1="" PORT1="" T_ACTIVE1="" T_PORT1=""
case_network_boot() {
  local t0; t0=$(os_now)
  SID1=$(openstack server create --flavor "$FLAVOR" --image "$IMAGE" --network "$NET" --config-drive true \
    --user-data "$BASE/user-data" --key-name key01 bm-01 -f value -c id) || return 1
  expect "bm-01 ACTIVE" wait_server "$SID1" ACTIVE 120 || return 1
  T_ACTIVE1=$(os_since "$t0")
  PORT1=$(port_of "$SID1")
  expect "bm-01 has a Neutron port" [ -n "$PORT1" ] || return 1
  os_wait 30 "port ACTIVE" port_active "$PORT1"; T_PORT1=$(os_since "$t0")
  os_log "  bm-01 ACTIVE after ${T_ACTIVE1}s, its port ACTIVE after ${T_PORT1}s"
  port_wired "$PORT1"
}

# Later flows build on earlier ones: fail (not pass vacuously) without them.
need_bm01() {
  expect "bm-01 from flow 1 is ACTIVE with a port" \
    bash -c '[ -n "$1" ] && [ -n "$2" ]' _ "$SID1" "$PORT1" && [ "$(server_field "$SID1" status)" = ACTIVE ]
}

iface_uuid() { vsctl --bare --columns=_uuid find Interface "external_ids:iface-id=$1"; }

SG="" PORT2="" PORT2_MAC="" IF1_BEFORE=""
case_port_add() {
  need_bm01 || return 1
  SG=$(openstack security group create sg-web -f value -c id) &&
  openstack security group rule create --ingress --protocol tcp --dst-port 22 sg-web -f value -c id > /dev/null &&
  PORT2=$(openstack port create --network "$NET" --security-group sg-web port02 -f value -c id) &&
  PORT2_MAC=$(port_field "$PORT2" mac_address) || return 1
  IF1_BEFORE=$(iface_uuid "$PORT1")
  expect "port02 DOWN and not on the DPU before the attach" port_down "$PORT2" &&
  expect "port02 has no OVS interface yet" ovs_gone "$PORT2" || return 1
  openstack server add port bm-01 port02 || return 1
  port_wired "$PORT2" "$PORT2_MAC" &&
  expect "first port's OVS Interface untouched" [ "$(iface_uuid "$PORT1")" = "$IF1_BEFORE" ] &&
  expect "first port still ACTIVE" port_active "$PORT1"
}

case_security_group() {
  local pg lsp
  expect "port02 from flow 3a is attached to bm-01 (bound to $DPU_HOST)" \
    [ -n "$PORT2" ] && [ "$(port_field "$PORT2" binding:host_id)" = "$DPU_HOST" ] || return 1
  pg=pg_${SG//-/_}
  lsp=$(nbctl --bare --columns=_uuid find Logical_Switch_Port "name=$PORT2")
  expect "port02 is in OVN port group $pg" grep -qw "$lsp" <<<"$(nbctl --bare --columns=ports find Port_Group "name=$pg")" &&
  expect "ACL allowing tcp/22 to the port group" grep -Eq "to-lport .*outport == @$pg && ip4 && ip4.src == 0.0.0.0/0 && tcp && tcp.dst == 22.* allow-related" \
    <<<"$(nbctl acl-list "$pg")" &&
  expect "drop ACLs for the bare-metal port (neutron_pg_drop)" grep -qw "$lsp" \
    <<<"$(nbctl --bare --columns=ports find Port_Group name=neutron_pg_drop)" &&
  expect "the ACL is compiled into SB logical flows" grep -q "outport == @$pg && ip4 && ip4.src == 0.0.0.0/0 && tcp && tcp.dst == 22" \
    <<<"$(sbctl lflow-list)"
}

case_port_remove() {
  need_bm01 && expect "port02 from flow 3a" [ -n "$PORT2" ] || return 1
  openstack server remove port bm-01 port02 || return 1
  port_unwired "$PORT2" &&
  expect "port02 DOWN again" os_wait 20 "port02 DOWN" port_down "$PORT2" &&
  expect "port02 unbound in Neutron" os_wait 20 "port02 unbound" port_unbound "$PORT2" &&
  expect "port02 kept its MAC $PORT2_MAC through bind and unbind" [ "$(port_field "$PORT2" mac_address)" = "$PORT2_MAC" ] &&
  expect "port02 kept vnic_type normal" [ "$(port_field "$PORT2" binding:vnic_type)" = normal ] &&
  expect "first port's OVS Interface untouched" [ "$(iface_uuid "$PORT1")" = "$IF1_BEFORE" ] &&
  expect "first port still ACTIVE and installed" port_active "$PORT1" &&
  expect "first port still ovn-installed" ovs_installed "$PORT1" &&
  expect "agent still has the first port" agent_vif_bound "$PORT1"
}

case_trace_to_vm() {
  local vm ls1 ls2 mac1 ip1 macv ipv out
  need_bm01 || return 1
  vm=$(openstack port create --network "$NET" vm-port -f value -c id) || return 1
  ls1=$(nbctl lsp-get-ls "$PORT1" | awk '{print $1}'); ls2=$(nbctl lsp-get-ls "$vm" | awk '{print $1}')
  expect "bare-metal port and VM port on one logical switch" [ -n "$ls1" ] && [ "$ls1" = "$ls2" ] || return 1
  mac1=$(port_field "$PORT1" mac_address); ip1=$(nt "/ports/$PORT1" | jq -r '.port.fixed_ips[0].ip_address')
  macv=$(port_field "$vm" mac_address); ipv=$(nt "/ports/$vm" | jq -r '.port.fixed_ips[0].ip_address')
  local dp; dp=$(nbctl get Logical_Switch "$ls1" name | tr -d '"')
  trace() {   # SRC_MAC -> ovn-trace of a new ICMP echo from the bare-metal port to the VM port
    ovn-trace --db="$SBDB" --minimal --ct=new --ct=new "$dp" \
      "inport == \"$PORT1\" && eth.src == $1 && eth.dst == $macv && ip4.src == $ip1 && ip4.dst == $ipv && ip.ttl == 64 && icmp4.type == 8"
  }
  out=$(trace "$mac1"); echo "$out" > "$BASE/log/ovn-trace.out"
  # ovn-trace names ports by their Neutron name when they have one
  expect "ovn-trace: a new ICMP echo from the bare-metal port is output to the VM port (log/ovn-trace.out)" \
    grep -Eq "output\(\"($vm|vm-port)\"\)" <<<"$out" &&
  expect "ovn-trace: the same from a spoofed MAC is dropped (port security)" \
    bash -c '! grep -q output <<<"$1"' _ "$(trace 52:54:00:00:00:99)" &&
  expect "the bare-metal port's MAC is its own Neutron MAC, not the Ironic port's" own_mac "$mac1"
}

case_delete_network_boot() {
  local t0 had=0; t0=$(os_now)
  need_bm01 && had=1
  # delete bm-01 in any state, so that flow 2 gets the node back
  [ -n "$SID1" ] && { openstack server delete --wait bm-01 || return 1; }
  [ $had = 1 ] || return 1
  os_log "  bm-01 deleted after $(os_since "$t0")s"
  port_unwired "$PORT1" &&
  expect "Nova removed the port and its LSP" os_wait 20 "LSP gone" lsp_gone "$PORT1" &&
  expect "agent: config drive removed" os_wait 20 "config drive gone" agent_drive_gone &&
  expect "flow 7 found the config drive" [ -n "$CD_NSID" ] && [ -n "$CD_FILE" ] &&
  expect "DPU SPDK: PF0 namespace $CD_NSID gone" os_wait 20 "namespace gone" pf0_ns_gone "$CD_NSID" &&
  expect "DPU SPDK: the config drive's bdev is gone" [ -z "$(dpu_bdev "$CD_BDEV")" ] &&
  expect "node available and schedulable again" os_wait 90 "node free" node_free
}

SID2="" VOL="" VOLD="" VOLE="" PORTB="" T_ACTIVE2="" T_PORT2="" TGT_NQN=""
case_boot_from_volume() {
  local t0 tgt ctrl
  t0=$(os_now)
  VOL=$(openstack volume create --image "$IMAGE" --size 1 vol01 -f value -c id) &&
  VOLD=$(openstack volume create --size 1 data01 -f value -c id) &&
  VOLE=$(openstack volume create --size 1 data02 -f value -c id) || return 1
  expect "vol01 available" os_wait 120 "volume available" volume_is "$VOL" available &&
  expect "data01 available" os_wait 60 "volume available" volume_is "$VOLD" available &&
  expect "data02 available" os_wait 60 "volume available" volume_is "$VOLE" available || return 1
  os_log "  vol01 available after $(os_since "$t0")s"
  t0=$(os_now)
  # boot disk vol01 + two data disks (Nova marks both boot_index -1)
  SID2=$(openstack server create --flavor "$FLAVOR" --volume vol01 --network "$NET" \
    --block-device "source_type=volume,uuid=$VOLD,destination_type=volume,boot_index=-1" \
    --block-device "source_type=volume,uuid=$VOLE,destination_type=volume,boot_index=-1" bm-02 -f value -c id) || return 1
  expect "bm-02 ACTIVE" wait_server "$SID2" ACTIVE 120 || return 1
  T_ACTIVE2=$(os_since "$t0")
  PORTB=$(port_of "$SID2")
  os_wait 30 "port ACTIVE" port_active "$PORTB"; T_PORT2=$(os_since "$t0")
  os_log "  bm-02 ACTIVE after ${T_ACTIVE2}s, its port ACTIVE after ${T_PORT2}s"
  tgt=$(ir GET "/volume/targets?node=$NODE&detail=true" | jq -c '.targets[] | select(.boot_index == 0)')
  echo "$tgt" > "$BASE/log/volume-target.json"
  TGT_NQN=$(jq -r .properties.nqn <<<"$tgt")
  expect "Ironic volume target: nvmeof, boot_index 0, vol01, Cinder's legacy NVMe/TCP data" \
    jq -e --arg v "$VOL" --arg p "$NVMF_PORT" '.volume_type == "nvmeof" and .boot_index == 0 and .volume_id == $v
      and .properties.transport_type == "tcp" and .properties.target_port == $p and (.properties.nqn | startswith("nqn."))' \
      <<<"$tgt" >/dev/null &&
  expect "vol01 in-use by bm-02 in Cinder" [ "$(cv "/volumes/$VOL" | jq -r '.volume.status + " " + .volume.attachments[0].server_id')" = "in-use $SID2" ] &&
  expect "agent: vol01 attached as nsid 1" os_wait 15 "agent volume" agent_vol_nsid "$VOL" 1 &&
  expect "Ironic: data01/data02 targets are data disks (distinct negative boot_index)" \
    [ "$(jq -s -c 'map(.boot_index) | sort' <<<"$(target_of "$VOLD")$(target_of "$VOLE")")" = "[-2,-1]" ] &&
  expect "data01, data02 in-use by bm-02" [ "$(volume_status "$VOLD") $(volume_status "$VOLE")" = "in-use in-use" ] &&
  expect "agent: vol01 nsid 1, data01 and data02 nsids 2 and 3" os_wait 15 "data disks" data_nsids_ok &&
  expect "DPU SPDK: PF0 has namespaces 1, 2 and 3" [ -n "$(pf0_ns_bdev 1)" ] && [ -n "$(pf0_ns_bdev 2)" ] && [ -n "$(pf0_ns_bdev 3)" ] &&
  ctrl=$(dpu_spdk_rpc bdev_nvme_get_controllers | jq -c --arg n "$TGT_NQN" '[.result[] | select(.ctrlrs[].trid.subnqn == $n)]') &&
  echo "$ctrl" > "$BASE/log/dpu-controllers.json" &&
  expect "DPU SPDK: a controller to Cinder's target $TGT_NQN on 127.0.0.1:$NVMF_PORT with the DPU's host NQN" \
    jq -e --arg p "$NVMF_PORT" --arg h "nqn.2014-08.org.nvmexpress:uuid:$NODE" 'length == 1 and (.[0].ctrlrs[0] |
      .state == "enabled" and .trid.trtype == "TCP" and .trid.traddr == "127.0.0.1" and .trid.trsvcid == $p
      and .host.nqn == $h)' <<<"$ctrl" >/dev/null &&
  expect "target SPDK exports vol01's lvol in $TGT_NQN" target_exports "$TGT_NQN" "$VOL" &&
  port_wired "$PORTB"
}

target_exports() {   # NQN VOLUME_ID: the subsystem's namespace is the lvol lvs0/volume-<id>
  local bdev
  bdev=$(spdk_rpc nvmf_get_subsystems | jq -r --arg n "$1" '.result[] | select(.nqn == $n) | .namespaces[0].bdev_name')
  [ -n "$bdev" ] && spdk_rpc bdev_get_bdevs "{\"name\":\"$bdev\"}" | jq -e --arg a "lvs0/volume-$2" '.result[0].aliases | index($a)' >/dev/null
}
data_nsids_ok() {   # vol01 nsid 1; the two data disks 2 and 3 (either order)
  local st; st=$(agent_state) || return 1
  agent_vol_nsid "$VOL" 1 &&
  [ "$(jq -c --arg d "$VOLD" --arg e "$VOLE" '[.observed.volumes[] | select(.volume_id == $d or .volume_id == $e)
      | select(.state == "attached") | .nsid] | sort' <<<"$st")" = "[2,3]" ]
}
target_gone() { ! spdk_rpc nvmf_get_subsystems | jq -e --arg n "$1" '.result[] | select(.nqn == $n)' >/dev/null; }
dpu_ctrl_gone() { dpu_spdk_rpc bdev_nvme_get_controllers | jq -e --arg n "$1" '[.result[] | select(.ctrlrs[].trid.subnqn == $n)] | length == 0' >/dev/null; }

case_delete() {
  local t0; t0=$(os_now)
  expect "bm-02 and vol01 from flow 2" [ -n "$SID2" ] && [ -n "$VOL" ] && [ -n "$PORTB" ] && [ -n "$TGT_NQN" ] || return 1
  openstack server delete --wait bm-02 || return 1
  os_log "  bm-02 deleted after $(os_since "$t0")s"
  expect "vol01 available again in Cinder" os_wait 60 "volume available" volume_is "$VOL" available &&
  expect "data01, data02 available again in Cinder" os_wait 60 "volume available" volume_is "$VOLD" available &&
  expect "data02 available" os_wait 30 "volume available" volume_is "$VOLE" available &&
  expect "agent: data01, data02 detached" os_wait 20 "agent detach" agent_vol_gone "$VOLD" && agent_vol_gone "$VOLE" &&
  expect "agent: vol01 detached" os_wait 20 "agent detach" agent_vol_gone "$VOL" &&
  expect "DPU SPDK: controller to $TGT_NQN gone" os_wait 10 "ctrl gone" dpu_ctrl_gone "$TGT_NQN" &&
  expect "Cinder's target no longer exports $TGT_NQN" os_wait 20 "export gone" target_gone "$TGT_NQN" &&
  expect "Ironic volume target removed" [ "$(ir GET "/volume/targets?node=$NODE" | jq '.targets | length')" = 0 ] &&
  port_unwired "$PORTB" &&
  expect "node available and schedulable again" os_wait 90 "node free" node_free
}

# ---------------------------------------------------------------- issue 9: a tenant's server lifecycle
CD_NSID="" CD_FILE="" CD_BDEV=""
note_config_drive() {   # CD_NSID, CD_BDEV, CD_FILE of the config drive PF0 has now
  CD_NSID=$(agent_drive | jq .nsid); CD_BDEV=$(pf0_ns_bdev "$CD_NSID")
  CD_FILE=$(dpu_bdev "$CD_BDEV" | jq -r '.driver_specific.aio.filename // empty')
}
# Flow 1 asked for a config drive: the agent wrote Nova's ISO under
# config_drive_dir and PF0 exposes it read-only; read it back as cloud-init.
case_config_drive() {
  local cd sha out
  need_bm01 || return 1
  expect "agent: config drive attached with an nsid" os_wait 15 "config drive" agent_drive_attached || return 1
  cd=$(agent_drive); echo "$cd" > "$BASE/log/agent-config-drive.json"
  sha=$(jq -r .sha256 <<<"$cd")
  note_config_drive
  expect "DPU SPDK: PF0's subsystem $(pf0_nqn) has namespace $CD_NSID" [ -n "$CD_BDEV" ] || return 1
  dpu_bdev "$CD_BDEV" > "$BASE/log/config-drive-bdev.json"
  expect "namespace $CD_NSID is an AIO bdev on a file under config_drive_dir (got '$CD_FILE')" \
    under "$BASE/agent/config-drive" "$CD_FILE" &&
  expect "the file exists" [ -f "$CD_FILE" ] &&
  expect "the AIO bdev is read-only" jq_true '.driver_specific.aio.readonly == true' "$BASE/log/config-drive-bdev.json" &&
  expect "the file's sha256 is the agent's" [ "$(sha256sum "$CD_FILE" | cut -d' ' -f1)" = "$sha" ] || return 1
  out=$($PY "$OS_REPO/tests/python/read_configdrive.py" "$CD_FILE") || return 1
  echo "$out" > "$BASE/log/config-drive-content.json"
  expect "ISO volume label config-2 (what cloud-init looks for)" jq_true '.label == "config-2"' <<<"$out" &&
  expect "meta_data uuid = bm-01" jq_true --arg s "$SID1" '.uuid == $s' <<<"$out" &&
  expect "user data = the file given to server create" [ "$(jq -r .user_data <<<"$out")" = "$(cat "$BASE/user-data")" ] &&
  expect "public key key01 in meta_data" [ "$(jq -r .public_keys.key01 <<<"$out")" = "$(cat "$BASE/key01.pub")" ] &&
  expect "Ironic's driver_internal_info holds the config drive by sha256 only" \
    [ "$(ir GET "/nodes/$NODE" | jq -c .driver_internal_info.dpu_desired_state.config_drive)" = "{\"sha256\":\"$sha\"}" ] &&
  expect "the agent fetched it from the conductor's http_url (not inline in apply_state)" \
    grep -q "\"msg\":\"config drive fetched\",.*\"sha256\":\"$sha\".*\"from\":\"http://127.0.0.1:$IRONIC_HTTP_PORT/\.\.\.\"" "$BASE/log/agent.out"
}

VOL2="" VOL2_NSID="" VOL2_BDEV="" VOL2_NQN="" T_ADDVOL="" T_EXTEND=""
# Per-volume QoS (Cinder front-end specs) and hot-plug: `server add volume`.
case_volume_add_qos() {
  local t0 tgt vol
  need_bm01 || return 1
  as_admin openstack volume qos create --consumer front-end --property total_iops_sec=2500 \
    --property total_bytes_sec=10485760 q1 -f value -c id > /dev/null &&
  as_admin openstack volume type create gold -f value -c id > /dev/null &&
  as_admin openstack volume qos associate q1 gold &&
  VOL2=$(openstack volume create --size 1 --type gold vol02 -f value -c id) || return 1
  expect "vol02 available" os_wait 60 "vol02 available" volume_is "$VOL2" available || return 1
  t0=$(os_now)
  openstack server add volume bm-01 vol02 > /dev/null || return 1
  expect "agent: vol02 attached" os_wait 60 "agent attach" agent_vol_attached "$VOL2" || return 1
  T_ADDVOL=$(os_since "$t0")
  expect "vol02 in-use in Cinder" os_wait 30 "vol02 in-use" volume_is "$VOL2" in-use || return 1
  os_log "  server add volume → attached on the DPU after ${T_ADDVOL}s"
  vol=$(agent_vol "$VOL2"); echo "$vol" > "$BASE/log/agent-vol02.json"
  VOL2_NSID=$(jq .nsid <<<"$vol"); VOL2_BDEV=$(jq -r '.bdev // empty' <<<"$vol")
  tgt=$(target_of "$VOL2"); echo "$tgt" > "$BASE/log/volume-target-vol02.json"
  VOL2_NQN=$(jq -r .properties.nqn <<<"$tgt")
  expect "Nova lists vol02 attached to bm-01" jq_true --arg v "$VOL2" '.volumeAttachments | map(.volumeId) | index($v)' \
    <<<"$(nv "/servers/$SID1/os-volume_attachments")" &&
  expect "Ironic target: nvmeof, a data disk (negative boot_index), Cinder's front-end QoS in the connection data" \
    jq_true '.volume_type == "nvmeof" and .boot_index < 0 and .properties.qos_specs.total_iops_sec == "2500"' <<<"$tgt" &&
  expect "DPU SPDK: PF0 exposes vol02's bdev '$VOL2_BDEV' as namespace $VOL2_NSID" \
    [ -n "$VOL2_BDEV" ] && [ "$(pf0_ns_bdev "$VOL2_NSID")" = "$VOL2_BDEV" ] &&
  dpu_bdev "$VOL2_BDEV" > "$BASE/log/dpu-bdev-vol02.json" &&
  expect "DPU SPDK: vol02's bdev limited to 3000 IO/s (2500 rounded up, as SPDK does) and 10 MB/s" \
    jq_true '.assigned_rate_limits.rw_ios_per_sec == 3000 and .assigned_rate_limits.rw_mbytes_per_sec == 10' \
    "$BASE/log/dpu-bdev-vol02.json" &&
  expect "agent reports the limits SPDK holds" jq_true '.qos.rw_ios_per_sec == 3000 and .qos.rw_mbytes_per_sec == 10' <<<"$vol" &&
  expect "config drive still attached" agent_drive_attached
}

need_vol2() { expect "vol02 from flow 8 attached to bm-01" [ -n "$VOL2_BDEV" ] && agent_vol_attached "$VOL2"; }
cinder_vol_is() { jq_true --argjson s "$2" --arg st "$3" '.volume.size == $s and .volume.status == $st' <<<"$(cv "/volumes/$1")"; }

# Online extend: Cinder grows the lvol, Nova's volume-extended event reaches
# the driver, which waits for the agent to see the new size on the DPU.
case_volume_extend() {
  local t0 ev
  need_bm01 && need_vol2 || return 1
  t0=$(os_now)
  openstack --os-volume-api-version 3.42 volume set --size 2 vol02 || return 1
  expect "Cinder: vol02 2 GiB, still in-use" os_wait 60 "vol02 extended" cinder_vol_is "$VOL2" 2 in-use &&
  expect "agent: vol02 is 2 GiB" os_wait 30 "agent size" agent_vol_size "$VOL2" $((2 << 30)) || return 1
  T_EXTEND=$(os_since "$t0")
  os_log "  volume extend → new size on the DPU after ${T_EXTEND}s"
  expect "DPU SPDK: vol02's bdev is 2 GiB" dpu_bdev_bytes "$VOL2_BDEV" $((2 << 30)) &&
  expect "Nova's compute_extend_volume event done" os_wait 30 "extend event" event_done "$SID1" extend_volume compute_extend_volume || return 1
  ev=$(action_event "$SID1" extend_volume compute_extend_volume)
  expect "Nova: extend_volume succeeded ($ev)" jq_true '.result == "Success"' <<<"$ev" &&
  expect "vol02 kept nsid $VOL2_NSID" agent_vol_nsid "$VOL2" "$VOL2_NSID" &&
  expect "QoS still applied after the extend" jq_true '.assigned_rate_limits.rw_ios_per_sec == 3000' <<<"$(dpu_bdev "$VOL2_BDEV")"
}

# After each power or provisioning action: the port's OVS row and the
# volume's namespace are the same ones.
kept() {   # WHAT IFACE_UUID
  expect "$1: bm-01 ACTIVE" wait_server "$SID1" ACTIVE 120 &&
  expect "$1: the port's OVS Interface row is the same (_uuid $2)" [ "$(iface_uuid "$PORT1")" = "$2" ] &&
  expect "$1: vol02 attached as nsid $VOL2_NSID" os_wait 20 "vol02 nsid" agent_vol_nsid "$VOL2" "$VOL2_NSID" &&
  expect "$1: PF0 namespace $VOL2_NSID is vol02's bdev" [ "$(pf0_ns_bdev "$VOL2_NSID")" = "$VOL2_BDEV" ] &&
  expect "$1: vol02's QoS on the DPU bdev (re-applied after a re-attach)" \
    jq_true '.assigned_rate_limits.rw_ios_per_sec == 3000' <<<"$(dpu_bdev "$VOL2_BDEV")" &&
  expect "$1: config drive attached" os_wait 20 "config drive" agent_drive_attached &&
  expect "$1: port ACTIVE" os_wait 30 "port ACTIVE" port_active "$PORT1"
}

case_lifecycle() {
  local ifu
  need_bm01 && need_vol2 || return 1
  ifu=$(iface_uuid "$PORT1")
  openstack server reboot --hard --wait bm-01 && kept "reboot --hard" "$ifu" || return 1
  openstack server stop bm-01 && expect "bm-01 SHUTOFF" wait_server "$SID1" SHUTOFF 120 &&
  expect "stopped: the port's OVS Interface row stays" [ "$(iface_uuid "$PORT1")" = "$ifu" ] || return 1
  openstack server start bm-01 && kept "stop/start" "$ifu" || return 1
  openstack server rebuild --image "$IMAGE" --wait bm-01 > /dev/null && kept "rebuild" "$ifu" &&
  note_config_drive   # Nova made a new one
}

case_volume_remove() {
  need_bm01 && need_vol2 || return 1
  openstack server remove volume bm-01 vol02 || return 1
  expect "vol02 available in Cinder" os_wait 60 "vol02 available" volume_is "$VOL2" available &&
  expect "agent: vol02 detached" os_wait 20 "agent detach" agent_vol_gone "$VOL2" &&
  expect "DPU SPDK: PF0 namespace $VOL2_NSID gone" os_wait 10 "namespace gone" pf0_ns_gone "$VOL2_NSID" &&
  expect "DPU SPDK: vol02's bdev gone" [ -z "$(dpu_bdev "$VOL2_BDEV" 2>/dev/null)" ] &&
  expect "DPU SPDK: controller to $VOL2_NQN gone" os_wait 10 "ctrl gone" dpu_ctrl_gone "$VOL2_NQN" &&
  expect "Ironic: vol02's target removed" [ -z "$(target_of "$VOL2")" ] &&
  expect "Nova: no volume attached to bm-01" jq_true '.volumeAttachments == []' <<<"$(nv "/servers/$SID1/os-volume_attachments")" &&
  expect "config drive still attached" agent_drive_attached &&
  expect "port still ACTIVE" port_active "$PORT1"
}

# A QoS value the agent refuses: the tenant reads the agent's reason.
bad_qos_type() {
  as_admin openstack volume type show bad -f value -c id > /dev/null 2>&1 && return 0
  as_admin openstack volume qos create --consumer front-end --property total_iops_sec=lots qbad -f value -c id > /dev/null &&
  as_admin openstack volume type create bad -f value -c id > /dev/null &&
  as_admin openstack volume qos associate qbad bad
}
case_bad_qos_attach() {
  local vol ev
  need_bm01 && bad_qos_type || return 1
  vol=$(openstack volume create --size 1 --type bad vol03 -f value -c id) &&
  expect "vol03 available" os_wait 60 "vol03 available" volume_is "$vol" available || return 1
  openstack server add volume bm-01 vol03 > /dev/null || return 1
  expect "Nova's compute_attach_volume event done" os_wait 60 "attach event" event_done "$SID1" attach_volume compute_attach_volume || return 1
  ev=$(action_event "$SID1" attach_volume compute_attach_volume)
  os_log "  attach_volume event: $ev"
  expect "the event failed with the agent's reason (total_iops_sec)" jq_true '.result == "Error" and (.details | test("total_iops_sec"))' <<<"$ev" &&
  expect "vol03 available again" os_wait 60 "vol03 available" volume_is "$vol" available &&
  expect "no Ironic target for vol03" [ -z "$(target_of "$vol")" ] &&
  expect "the agent never had vol03" agent_vol_gone "$vol" &&
  expect "bm-01 still ACTIVE" [ "$(server_field "$SID1" status)" = ACTIVE ] &&
  openstack volume delete "$vol"
}

# A boot the agent refuses: the server goes ERROR and its fault message (what
# `openstack server show -c fault` prints) carries the agent's reason.
case_bad_qos_boot() {
  local vol sid i st fault
  bad_qos_type || return 1
  expect "node free for the next server" os_wait 90 "node free" node_free || return 1
  vol=$(openstack volume create --image "$IMAGE" --size 1 --type bad vol04 -f value -c id) &&
  expect "vol04 available" os_wait 120 "vol04 available" volume_is "$vol" available || return 1
  sid=$(openstack server create --flavor "$FLAVOR" --volume vol04 --network "$NET" bm-04 -f value -c id) || return 1
  for ((i = 0; i < 600; i++)); do
    st=$(server_field "$sid" status); [ "$st" = ERROR ] || [ "$st" = ACTIVE ] && break; sleep 0.2
  done
  expect "bm-04 ERROR (got $st)" [ "$st" = ERROR ] || return 1
  fault=$(openstack server show bm-04 -f json -c fault | jq -r .fault.message)
  os_log "  bm-04 fault: $fault"
  expect "the fault message carries the agent's reason (total_iops_sec)" grep -q total_iops_sec <<<"$fault" &&
  expect "the agent has no volume of bm-04" agent_vol_gone "$vol" &&
  openstack server delete --wait bm-04 &&
  expect "vol04 available again" os_wait 60 "vol04 available" volume_is "$vol" available &&
  expect "node available and schedulable again" os_wait 90 "node free" node_free
}

# The agent deletes images no longer named once they are a minute old (one
# may belong to a state being admitted): by now bm-01's drive is gone.
case_config_drive_file_gone() {
  expect "flow 7 found the config drive" [ -n "$CD_FILE" ] &&
  expect "bm-01's config drive image deleted from config_drive_dir" os_wait 90 "ISO deleted" test ! -e "$CD_FILE"
}

# ---------------------------------------------------------------- issue 17: a server moves to another node
# bm-03 boots from mvol01 with data disk mdata01 and one port on one node
# (MSRC: whichever the scheduler picked), moves to the other (MDST) and back.
SIDM="" MVOL="" MVOLD="" PORTM="" MMAC="" MIP="" MSRC="" MDST="" T_MIGRATE=""
hyp_node() { nv "/servers/$1" | jq -r '.server."OS-EXT-SRV-ATTR:hypervisor_hostname"'; }
server_flavor() { nv "/servers/$1" | jq -r .server.flavor.original_name; }
port_ip() { nt "/ports/$1" | jq -r '.port.fixed_ips[0].ip_address'; }
# Cinder keeps each attachment's connector (not shown by its API): the host
# NQN the volume is attached with.
attachment_nqns() {   # VOLUME_ID -> the nqn of each live attachment's connector
  "$PGBIN/psql" -h "$BASE/pg/sock" -U os -d cinder -Atc "SELECT connector FROM volume_attachment
    WHERE volume_id = '$1' AND deleted = false AND attach_status = 'attached'" | jq -r '.nqn // "none"' | sort -u | xargs
}
pf0_ns_count() {
  dpu_spdk_rpc nvmf_get_subsystems | jq -r --arg q "$(pf0_nqn)" '[.result[] | select(.nqn == $q) | .namespaces[]?] | length'
}
rp_allocs() { adm -sf "$PLACEMENT/resource_providers/$NODE/allocations" | jq -c '.allocations | keys'; }
no_allocs() { [ "$(rp_allocs)" = "[]" ]; }
need_bm03() {
  expect "bm-03 from flow 16 with its volumes and port" \
    bash -c '[ -n "$1" ] && [ -n "$2" ] && [ -n "$3" ] && [ -n "$4" ]' _ "$SIDM" "$MVOL" "$MVOLD" "$PORTM"
}

# bm-03 runs on node N: its volumes at the same nsids on DPU N's PF0, attached
# by Cinder with node N's host NQN, its port (same MAC and IP) wired on DPU N.
bm03_on() {   # N
  use_dpu "$1"
  local nqn="nqn.2014-08.org.nvmexpress:uuid:$NODE"
  expect "bm-03 on node $1 ($NODE)" [ "$(hyp_node "$SIDM")" = "$NODE" ] &&
  expect "Ironic: node $1 active with bm-03" \
    [ "$(ir GET "/nodes/$NODE" | jq -r '.provision_state + " " + .instance_uuid')" = "active $SIDM" ] &&
  expect "agent $1: mvol01 attached as nsid 1" os_wait 20 "agent volume" agent_vol_nsid "$MVOL" 1 &&
  expect "agent $1: mdata01 attached as nsid 2" os_wait 20 "agent volume" agent_vol_nsid "$MVOLD" 2 &&
  expect "DPU $1 SPDK: PF0 has namespaces 1 and 2" [ -n "$(pf0_ns_bdev 1)" ] && [ -n "$(pf0_ns_bdev 2)" ] &&
  expect "Cinder: mvol01 and mdata01 in-use by bm-03" \
    [ "$(cv "/volumes/$MVOL" | jq -r '.volume.status + " " + .volume.attachments[0].server_id') $(volume_status "$MVOLD")" = "in-use $SIDM in-use" ] &&
  expect "Cinder: both attachments made with node $1's host NQN" \
    [ "$(attachment_nqns "$MVOL") $(attachment_nqns "$MVOLD")" = "$nqn $nqn" ] &&
  port_wired "$PORTM" "$MMAC" &&
  expect "port keeps IP $MIP" [ "$(port_ip "$PORTM")" = "$MIP" ] &&
  expect "port keeps MAC $MMAC" [ "$(port_field "$PORTM" mac_address)" = "$MMAC" ] &&
  expect "Ironic: a port of node $1 carries the VIF" \
    [ "$(ir GET "/ports?node=$NODE&detail=true" | jq -r --arg p "$PORTM" '[.ports[] | select(.internal_info.tenant_vif_port_id == $p)] | length')" = 1 ]
}

# Nothing of bm-03 is left on node N or its DPU; Placement may schedule on it.
bm03_not_on() {   # N
  use_dpu "$1"
  expect "agent $1: mvol01 and mdata01 detached" os_wait 20 "agent detach" agent_vol_gone "$MVOL" && agent_vol_gone "$MVOLD" &&
  expect "agent $1 reports no volume at all" [ "$(agent_state | jq '.observed.volumes // [] | length')" = 0 ] &&
  port_unwired "$PORTM" &&
  expect "DPU $1 SPDK: PF0 has no namespace" [ "$(pf0_ns_count)" = 0 ] &&
  expect "Ironic: node $1 available, no instance" \
    [ "$(ir GET "/nodes/$NODE" | jq -r '.provision_state + " " + (.instance_uuid // "none")')" = "available none" ] &&
  expect "Ironic: node $1 has no volume target" [ "$(ir GET "/volume/targets?node=$NODE" | jq '.targets | length')" = 0 ] &&
  expect "Ironic: no port of node $1 carries the VIF" \
    [ "$(ir GET "/ports?node=$NODE&detail=true" | jq -r '[.ports[] | select(.internal_info.tenant_vif_port_id)] | length')" = 0 ] &&
  expect "Placement: node $1 unreserved" os_wait 30 "node free" node_free
}

case_migrate() {
  local t0
  use_dpu 1; expect "node 1 free" os_wait 90 "node free" node_free || return 1
  MVOL=$(openstack volume create --image "$IMAGE" --size 1 mvol01 -f value -c id) &&
  MVOLD=$(openstack volume create --size 1 mdata01 -f value -c id) || return 1
  expect "mvol01, mdata01 available" os_wait 120 "volume available" volume_is "$MVOL" available &&
  os_wait 60 "volume available" volume_is "$MVOLD" available || return 1
  SIDM=$(openstack server create --flavor "$FLAVOR" --volume mvol01 --network "$NET" \
    --block-device "source_type=volume,uuid=$MVOLD,destination_type=volume,boot_index=-1" bm-03 -f value -c id) || return 1
  expect "bm-03 ACTIVE" wait_server "$SIDM" ACTIVE 180 || return 1
  # node 2 is provided only now (unless an earlier case did): bm-03 starts on node 1
  node_provide 2 || return 1
  PORTM=$(port_of "$SIDM"); MMAC=$(port_field "$PORTM" mac_address); MIP=$(port_ip "$PORTM")
  use_dpu 1; if [ "$(hyp_node "$SIDM")" = "$NODE" ]; then MSRC=1 MDST=2; else MSRC=2 MDST=1; fi
  os_log "  bm-03 booted on node $MSRC; port $PORTM $MMAC $MIP"
  bm03_on "$MSRC" && bm03_not_on "$MDST" || return 1
  t0=$(os_now)
  as_admin openstack server migrate "$SIDM" || return 1
  expect "bm-03 VERIFY_RESIZE" wait_server "$SIDM" VERIFY_RESIZE 300 || return 1
  T_MIGRATE=$(os_since "$t0"); os_log "  migrate: VERIFY_RESIZE on the other node after ${T_MIGRATE}s"
  bm03_on "$MDST" && bm03_not_on "$MSRC" || return 1
  use_dpu "$MSRC"
  expect "Placement: node $MSRC holds the migration's allocation only (a revert finds it free)" \
    [ "$(rp_allocs)" = "[\"$(nv "/os-migrations?instance_uuid=$SIDM" | jq -r '.migrations[0].uuid')\"]" ] || return 1
  openstack server resize confirm bm-03 || return 1
  expect "bm-03 ACTIVE after confirm" wait_server "$SIDM" ACTIVE 120 || return 1
  bm03_on "$MDST" && bm03_not_on "$MSRC" &&
  use_dpu "$MSRC" && expect "Placement: no allocation left on node $MSRC" os_wait 30 "allocations gone" no_allocs
}

# resize to bm.large moves bm-03 back to the other node; revert returns it
# (bm.small) where it was; a second resize is confirmed.
case_resize_revert() {
  local here there
  need_bm03 || return 1
  here=$MDST there=$MSRC
  openstack server resize --flavor "$FLAVOR_LARGE" bm-03 || return 1
  expect "bm-03 VERIFY_RESIZE" wait_server "$SIDM" VERIFY_RESIZE 300 &&
  expect "flavor $FLAVOR_LARGE" [ "$(server_flavor "$SIDM")" = "$FLAVOR_LARGE" ] &&
  bm03_on "$there" && bm03_not_on "$here" || return 1
  openstack server resize revert bm-03 || return 1
  expect "bm-03 ACTIVE after revert" wait_server "$SIDM" ACTIVE 300 &&
  expect "flavor bm.small again" [ "$(server_flavor "$SIDM")" = "$FLAVOR" ] &&
  bm03_on "$here" && bm03_not_on "$there" &&
  use_dpu "$there" && expect "Placement: no allocation left on node $there" os_wait 30 "allocations gone" no_allocs
}

case_resize_confirm() {
  local here there
  need_bm03 || return 1
  here=$MDST there=$MSRC
  openstack server resize --flavor "$FLAVOR_LARGE" bm-03 || return 1
  expect "bm-03 VERIFY_RESIZE" wait_server "$SIDM" VERIFY_RESIZE 300 || return 1
  openstack server resize confirm bm-03 || return 1
  expect "bm-03 ACTIVE after confirm" wait_server "$SIDM" ACTIVE 120 &&
  expect "flavor $FLAVOR_LARGE" [ "$(server_flavor "$SIDM")" = "$FLAVOR_LARGE" ] &&
  bm03_on "$there" && bm03_not_on "$here" || return 1
  openstack server delete --wait bm-03 || return 1
  expect "mvol01, mdata01 available again" os_wait 60 "volume available" volume_is "$MVOL" available &&
  os_wait 60 "volume available" volume_is "$MVOLD" available &&
  bm03_not_on "$there" && use_dpu 1 &&
  openstack volume delete "$MVOL" "$MVOLD"   # the suite's storage array is finite
}

# A server booted from an image keeps its disk in its machine: migrate is
# refused before anything changes, with the reason in the instance action.
migration_is() { [ "$(nv "/os-migrations?instance_uuid=$1" | jq -r '.migrations[0].status')" = "$2" ]; }
case_migrate_image_refused() {
  local sid port n ev
  node_provide 2 || return 1   # a destination to schedule to (the refusal comes after)
  sid=$(openstack server create --flavor "$FLAVOR" --image "$IMAGE" --network "$NET" bm-05 -f value -c id) || return 1
  expect "bm-05 ACTIVE" wait_server "$sid" ACTIVE 180 || return 1
  port=$(port_of "$sid")
  use_dpu 1; if [ "$(hyp_node "$sid")" = "$NODE" ]; then n=1; else n=2; fi
  as_admin openstack server migrate "$sid" || return 1
  expect "the migration ends in error" os_wait 120 "migration error" migration_is "$sid" error &&
  expect "Nova's compute_resize_instance event done" os_wait 30 "event" event_done "$sid" migrate compute_resize_instance || return 1
  ev=$(action_event "$sid" migrate compute_resize_instance); os_log "  compute_resize_instance event: $ev"
  expect "the event failed with the reason (not booted from a volume)" \
    jq_true '.result == "Error" and (.details | test("booted from a Cinder volume"))' <<<"$ev" &&
  expect "bm-05 ACTIVE" wait_server "$sid" ACTIVE 60 &&
  use_dpu "$n" &&
  expect "bm-05 still on node $n, its node active with it" \
    [ "$(hyp_node "$sid") $(ir GET "/nodes/$NODE" | jq -r '.provision_state + " " + .instance_uuid + " " + .power_state')" = "$NODE active $sid power on" ] &&
  port_wired "$port" || return 1
  openstack server delete --wait "$sid" &&
  expect "node $n available and schedulable again" os_wait 90 "node free" node_free || return 1
  # node 2 back to manageable, as setup left it: later cases expect their
  # first server on node 1 and provide node 2 themselves
  use_dpu 2 && ir PUT "/nodes/$NODE/states/provision" '{"target":"manage"}' &&
  expect "node 2 manageable again" os_wait 30 "node 2 manageable" node_is manageable && use_dpu 1
}

# ---------------------------------------------------------------- issue 17: a server that moves to other hardware
SID15="" VOL15="" VOLD15="" PORT15="" IP15="" NSID15=""
srv_attr() { server_field "$1" "\"OS-EXT-SRV-ATTR:$2\""; }
on_node() { [ "$(srv_attr "$1" hypervisor_hostname)" = "$2" ] && [ "$(srv_attr "$1" host)" = "$3" ]; }   # SID NODE HOST
allocated_rps() { adm -sf "$PLACEMENT/allocations/$1" | jq -r '.allocations | keys | join(" ")'; }
# the current DPU's controllers to Cinder's target (subsystem NQNs), or nothing
dpu_target_nqns() { dpu_spdk_rpc bdev_nvme_get_controllers | jq -r '[.result[].ctrlrs[].trid.subnqn] | unique | join(" ")'; }
# every controller of the current DPU connects with its node's host NQN
dpu_host_nqn_is() {
  dpu_spdk_rpc bdev_nvme_get_controllers | jq -e --arg h "nqn.2014-08.org.nvmexpress:uuid:$NODE" \
    '(.result | length) > 0 and all(.result[].ctrlrs[]; .host.nqn == $h and .state == "enabled")' >/dev/null
}
targets_gone() { local q; for q in "$@"; do target_gone "$q" || return 1; done; }   # NQN...
dpu_no_ctrl() { [ -z "$(dpu_target_nqns)" ] && dpu_spdk_rpc bdev_nvme_get_controllers >/dev/null; }
agent_empty() {   # the current DPU's agent reports no volume and no VIF
  agent_state | jq -e '(.observed.volumes // []) == [] and (.observed.vifs // []) == []' >/dev/null
}
node_holds() {   # the current node: provision state, instance, number of volume targets, ports with a VIF
  local n; n=$(ir GET "/nodes/$NODE") || return 1
  [ "$(jq -r '.provision_state + " " + (.instance_uuid // "none")' <<<"$n") $(ir GET "/volume/targets?node=$NODE" |
      jq '.targets | length') $(ir GET "/ports?node=$NODE&detail=true" |
      jq '[.ports[] | select(.internal_info.tenant_vif_port_id // .extra.vif_port_id)] | length')" = "$*" ]
}
# both volumes in use by SERVER, same ids, attached to it in Cinder
vols_in_use_by() {
  [ "$(cv "/volumes/$VOL15" | jq -r '.volume.status + " " + .volume.attachments[0].server_id') $(cv "/volumes/$VOLD15" |
      jq -r '.volume.status + " " + .volume.attachments[0].server_id')" = "in-use $1 in-use $1" ]
}
# the server's disks on the current DPU: root nsid 1, data disk at NSID15, PF0 namespaces, the node's host NQN
disks_on_dpu() {
  expect "agent $DPU_N: vol15 attached as nsid 1" os_wait 30 "agent volume" agent_vol_nsid "$VOL15" 1 &&
  expect "agent $DPU_N: data15 attached as nsid $NSID15" os_wait 30 "agent data volume" agent_vol_nsid "$VOLD15" "$NSID15" &&
  expect "DPU $DPU_N SPDK: PF0 namespaces 1 and $NSID15" [ -n "$(pf0_ns_bdev 1)" ] && [ -n "$(pf0_ns_bdev "$NSID15")" ] &&
  expect "DPU $DPU_N SPDK: controllers to the target with node $NODE's host NQN" dpu_host_nqn_is
}
# nothing of the server on the current DPU (agent, SPDK, OVS)
gone_from_dpu() {
  expect "agent $DPU_N: no volume, no VIF" os_wait 30 "agent empty" agent_empty &&
  expect "DPU $DPU_N SPDK: no controller to Cinder's target left" os_wait 15 "controllers gone" dpu_no_ctrl &&
  expect "DPU $DPU_N SPDK: PF0 namespaces gone" pf0_ns_gone 1 && pf0_ns_gone "$NSID15" &&
  port_unwired "$PORT15"
}

# bm-15 boots on whichever node Nova picks (F15), is shelved, and unshelved
# onto the other one (T15) by its compute host.
F15="" T15=""
case_shelve_unshelve() {
  local t0 nqns=()
  node_provide 2 || return 1
  VOL15=$(openstack volume create --image "$IMAGE" --size 1 vol15 -f value -c id) &&
  VOLD15=$(openstack volume create --size 1 data15 -f value -c id) || return 1
  expect "vol15, data15 available" os_wait 120 "volume available" volume_is "$VOL15" available &&
  os_wait 60 "volume available" volume_is "$VOLD15" available || return 1
  SID15=$(openstack server create --flavor "$FLAVOR" --volume vol15 --network "$NET" \
    --block-device "source_type=volume,uuid=$VOLD15,destination_type=volume,boot_index=-1" bm-15 -f value -c id) || return 1
  expect "bm-15 ACTIVE" wait_server "$SID15" ACTIVE 180 || return 1
  if [ "$(srv_attr "$SID15" hypervisor_hostname)" = "${NODE_OF[1]}" ]; then F15=1 T15=2; else F15=2 T15=1; fi
  use_dpu "$F15"
  expect "bm-15 on node $F15 (nova-ironic-$F15)" on_node "$SID15" "$NODE" "nova-ironic-$F15" || return 1
  PORT15=$(port_of "$SID15") IP15=$(port_ip "$PORT15")
  expect "agent $F15: vol15 nsid 1" os_wait 30 "agent volume" agent_vol_nsid "$VOL15" 1 || return 1
  NSID15=$(agent_vol "$VOLD15" | jq -r .nsid)
  disks_on_dpu && port_wired "$PORT15" || return 1
  read -ra nqns <<< "$(dpu_target_nqns)"
  t0=$(os_now)
  openstack server shelve bm-15 || return 1
  expect "bm-15 SHELVED_OFFLOADED" wait_server "$SID15" SHELVED_OFFLOADED 180 || return 1
  os_log "  bm-15 offloaded from node $F15 after $(os_since "$t0")s"
  expect "Cinder: vol15, data15 reserved for bm-15 (no connector)" os_wait 30 "volumes reserved" \
    eval '[ "$(volume_status "$VOL15") $(volume_status "$VOLD15")" = "reserved reserved" ]' &&
  gone_from_dpu &&
  expect "Cinder's target no longer exports ${nqns[*]}" os_wait 20 "exports gone" targets_gone "${nqns[@]}" &&
  expect "node $F15 available, no instance, no volume target, no VIF" os_wait 90 "node released" node_holds available none 0 0 &&
  expect "Placement: no allocation of bm-15" [ -z "$(allocated_rps "$SID15")" ] || return 1
  # the operator unshelves it onto the other node's compute (API 2.91 host)
  t0=$(os_now)
  adm -sSf -X POST "${NOVA_H[@]}" -H 'Content-Type: application/json' "$NOVA/servers/$SID15/action" \
    -d "{\"unshelve\": {\"host\": \"nova-ironic-$T15\"}}" || return 1
  expect "bm-15 ACTIVE again" wait_server "$SID15" ACTIVE 240 || return 1
  os_log "  bm-15 unshelved onto node $T15 after $(os_since "$t0")s"
  use_dpu "$T15"
  expect "bm-15 on node $T15 (nova-ironic-$T15)" on_node "$SID15" "$NODE" "nova-ironic-$T15" &&
  expect "Cinder: the same vol15 and data15 in-use by bm-15" vols_in_use_by "$SID15" &&
  disks_on_dpu &&
  expect "the same port $PORT15 with the same IP $IP15" [ "$(port_of "$SID15") $(port_ip "$PORT15")" = "$PORT15 $IP15" ] &&
  port_wired "$PORT15" &&
  expect "node $T15 active with bm-15, its 2 volume targets and 1 VIF" node_holds active "$SID15" 2 1 &&
  expect "Placement: bm-15 allocated on node $T15 only" [ "$(allocated_rps "$SID15")" = "$NODE" ] || return 1
  use_dpu "$F15"
  expect "node $F15 still available, holding nothing" node_holds available none 0 0 &&
  expect "DPU $F15: nothing of bm-15" agent_empty && dpu_no_ctrl
}

# The spdkpair log lines after line $2 of spdk.out, as one JSON array
spdk_log_since() { tail -n +"$(($1 + 1))" "$BASE/log/spdk.out" | jq -sc '.'; }
migration_of() { nv "/os-migrations?instance_uuid=$1&migration_type=evacuation" | jq -r '.migrations[0].status // empty'; }
service_is() { nv "/os-services?host=$1&binary=nova-compute" | jq -e --arg s "$2" '.services[0].state == $s' >/dev/null; }

# bm-15 (on node T15 after case 15) evacuated back to node F15.
case_evacuate() {
  local t0 l0 log order old=$T15 new=$F15 oldc oldsock newsock
  expect "bm-15 from case 15" [ -n "$SID15" ] && [ -n "$old" ] &&
    on_node "$SID15" "${NODE_OF[$old]}" "nova-ironic-$old" || return 1
  oldc=$(nova_compute_proc "nova-ironic-$old")
  oldsock=$(basename "$(dpu_sock "$old")") newsock=$(basename "$(dpu_sock "$new")")
  l0=$(wc -l < "$BASE/log/spdk.out")
  # Node $old's hardware fails: the operator puts it in maintenance, its
  # nova-compute is gone (stopped here) and forced down, then evacuates.
  use_dpu "$old"
  ir PUT "/nodes/$NODE/maintenance" '{"reason": "e2e: hardware failure"}' &&
  os_stop "$oldc" &&
  as_admin openstack --os-compute-api-version 2.11 compute service set --down "nova-ironic-$old" nova-compute &&
  expect "nova-ironic-$old down" os_wait 30 "service down" service_is "nova-ironic-$old" down || return 1
  t0=$(os_now)
  # `openstack server evacuate` of Zed's client sends it, then fails on
  # Nova's empty answer (2.29+) with 'TupleWithMeta' has no to_dict: REST
  adm -sSf -X POST "${NOVA_H[@]}" -H 'Content-Type: application/json' "$NOVA/servers/$SID15/action" \
    -d '{"evacuate": {}}' > /dev/null || return 1
  use_dpu "$new"
  expect "bm-15 ACTIVE after the evacuation (REBUILD until then)" wait_server "$SID15" ACTIVE 300 || return 1
  os_log "  bm-15 ACTIVE after $(os_since "$t0")s"
  # Nova saves the evacuated server ACTIVE before its resource tracker moves
  # instance.host (finish_evacuation waits for the tracker's lock, which its
  # periodic audit may hold): the host follows shortly after.
  expect "bm-15 on node $new (nova-ironic-$new)" os_wait 30 "host moved" on_node "$SID15" "$NODE" "nova-ironic-$new" &&
  expect "instance action evacuate: event ironic_dpu_fence_node Success" \
    [ "$(action_event "$SID15" evacuate ironic_dpu_fence_node | jq -r .result)" = Success ] || return 1
  # Fencing first, from the SPDK calls' log: the old DPU detached its
  # controllers, then Cinder's target deleted the exports, then the new DPU
  # attached.
  log=$(spdk_log_since "$l0")
  echo "$log" > "$BASE/log/evacuate-spdk.json"
  order=$(jq -c --arg o "$oldsock" --arg n "$newsock" '
    ([.[] | select(.dpu == $o and .req.method == "bdev_nvme_detach_controller") | .t]) as $old |
    ([.[] | select(.dpu == $o) | .t] | max) as $oldlast |
    ([.[] | select(.dpu == null and .req.method == "nvmf_delete_subsystem") | .t]) as $del |
    ([.[] | select(.dpu == $n and .req.method == "bdev_nvme_attach_controller") | .t] | min) as $new |
    {old_detaches: ($old | length), old_last: $oldlast, deletes: ($del | length), del_first: ($del | min),
     del_last: ($del | max), new_first_attach: $new}' <<<"$log")
  os_log "  fencing order: $order"
  expect "DPU $old detached its controllers, and its last call came before Cinder's target deleted the exports" \
    jq_true '.old_detaches >= 1 and .deletes >= 2 and .old_last < .del_first' <<<"$order" &&
  expect "Cinder's target deleted the old exports before DPU $new attached any" \
    jq_true '.new_first_attach != null and .del_last < .new_first_attach' <<<"$order" || return 1
  expect "Cinder: the same vol15 and data15 in-use by bm-15" vols_in_use_by "$SID15" &&
  disks_on_dpu &&
  expect "the same port $PORT15 with the same IP $IP15" [ "$(port_of "$SID15") $(port_ip "$PORT15")" = "$PORT15 $IP15" ] &&
  port_wired "$PORT15" &&
  expect "node $new active with bm-15, its 2 volume targets and 1 VIF" node_holds active "$SID15" 2 1 || return 1
  use_dpu "$old"
  gone_from_dpu &&
  expect "node $old (maintenance) keeps no instance, volume target or VIF" node_holds active none 0 0 &&
  expect "node $old's recorded desired state is empty (its DPU catches up with it)" \
    jq_true '.maintenance and .driver_internal_info.dpu_desired_state.volumes == [] and
      .driver_internal_info.dpu_desired_state.vifs == []' <<<"$(ir GET "/nodes/$NODE")" || return 1
  # nova-compute of node $old comes back (restarted, still forced down, as
  # Nova asks). Nova completes an evacuation (record "completed", bm-15's
  # allocation on node $old dropped) only for a node the returning service
  # still owns, and the ironic hash ring gave node $old to the other service
  # while this one was down: its driver completes it at start, since it
  # fenced that node, and leaves bm-15 alone. Then the API lets the operator
  # force the service up again ("done" evacuation records stop that).
  nova_compute_start "nova-ironic-$old" &&
  expect "$oldc completed the evacuation of the fenced node at start" \
    os_wait 120 "evacuation completed" grep -qs "Evacuation .* of instance $SID15 completed: node ${NODE_OF[$old]} was fenced" \
    "$BASE/nova/log/$oldc.log" &&
  expect "the evacuation record is completed" [ "$(migration_of "$SID15")" = completed ] &&
  expect "bm-15 allocated on node $new only (its allocation on the failed node removed)" \
    [ "$(allocated_rps "$SID15")" = "${NODE_OF[$new]}" ] &&
  as_admin openstack --os-compute-api-version 2.11 compute service set --up "nova-ironic-$old" nova-compute &&
  expect "nova-ironic-$old up again" os_wait 120 "service up" service_is "nova-ironic-$old" up || return 1
  use_dpu "$new"
  expect "bm-15 still ACTIVE on node $new" [ "$(server_field "$SID15" status)" = ACTIVE ] &&
    on_node "$SID15" "$NODE" "nova-ironic-$new" &&
  expect "node $new still active with bm-15" node_holds active "$SID15" 2 1 &&
  expect "DPU $new still serves bm-15's disks and port" agent_vol_nsid "$VOL15" 1 && agent_vif_bound "$PORT15" &&
  expect "SB Port_Binding still on $DPU_CHASSIS" [ "$(sb_chassis_of "$PORT15")" = "$DPU_CHASSIS" ] || return 1
  # leave both nodes schedulable for the cases after this one
  openstack server delete --wait bm-15 &&
  expect "vol15, data15 available" os_wait 60 "volumes available" \
    eval '[ "$(volume_status "$VOL15") $(volume_status "$VOLD15")" = "available available" ]' &&
  openstack volume delete "$VOL15" "$VOLD15" || return 1
  use_dpu "$old"
  ir DELETE "/nodes/$NODE/maintenance" &&
  ir PUT "/nodes/$NODE/states/provision" '{"target":"deleted"}' &&
  expect "node $old undeployed" os_wait 120 "node available" node_is available &&
  node_provide "$old" &&
  use_dpu "$new" &&
  expect "node $new schedulable again" os_wait 90 "node free" node_free
  local rc=$?
  use_dpu 1
  return $rc
}

# ---------------------------------------------------------------- snapshot
# target_calls METHOD -> the Unix times (one per line) Cinder's target
# answered METHOD (spdkpair's call log)
target_calls() { jq -r --arg m "$1" 'select(.req.method == $m and .resp.result != null) | .t' "$BASE/log/spdk.out"; }
# agent_log_times MSG -> the times (Unix seconds) DPU 1's agent logged MSG
agent_log_times() {
  jq -r --arg m "$1" 'select(.msg == $m) | .ts | sub("\\.[0-9]+Z$"; "Z") as $s | (.|capture("\\.(?<f>[0-9]+)Z$").f) as $f
    | ($s | fromdateiso8601 | tostring) + "." + $f' "$BASE/log/$(dpu_agent_proc "$DPU_N").out" 2>/dev/null
}
# quiesce_brackets T: the agent paused the host before T and resumed it after
quiesce_brackets() {
  local q r
  q=$(agent_log_times "$QUIESCE_MSG" | tail -1) r=$(agent_log_times "$RESUME_MSG" | tail -1)
  [ -n "$q" ] && [ -n "$r" ] && awk -v q="$q" -v t="$1" -v r="$r" 'BEGIN{exit !(q < t && t < r)}'
}
QUIESCE_MSG=quiesce RESUME_MSG=unquiesce   # the agent's log lines once each call is done

# 18: `server image create` of a volume-backed server quiesces the host on
# its DPU while Cinder snapshots the root volume on the target; a server
# booted from that image (on node 2) gets a volume cloned from the snapshot.
case_snapshot() {
  local vol sid img bdm snap tsnap sid2 vol2 port2 n0
  # 10 GiB: the flavor's disk, which Nova makes the image's min_disk
  vol=$(openstack volume create --image "$IMAGE" --size 10 snaproot -f value -c id) || return 1
  expect "snaproot available" os_wait 120 "volume available" volume_is "$vol" available || return 1
  sid=$(openstack server create --flavor "$FLAVOR" --volume snaproot --network "$NET" bm-snap -f value -c id) || return 1
  use_dpu 1
  expect "bm-snap ACTIVE on node 1" wait_server "$sid" ACTIVE 120 &&
  expect "bm-snap on node 1" [ "$(server_field "$sid" '"OS-EXT-SRV-ATTR:hypervisor_hostname"')" = "$NODE" ] &&
  expect "agent 1: snaproot attached as nsid 1" os_wait 15 "agent volume" agent_vol_nsid "$vol" 1 || return 1
  n0=$(target_calls bdev_lvol_snapshot | wc -l)
  img=$(openstack server image create --name bm-snap-img "$sid" -f value -c id) || return 1
  expect "image bm-snap-img active" os_wait 60 "image active" image_active "$img" || return 1
  bdm=$(adm -sf "$GLANCE/v2/images/$img" | jq -r '.block_device_mapping // empty')
  snap=$(jq -r '.[] | select(.boot_index == 0) | .snapshot_id // empty' <<<"$bdm" 2>/dev/null)
  expect "image bm-snap-img maps its root disk to a Cinder snapshot (got $bdm)" [ -n "$snap" ] &&
  expect "snapshot $snap of snaproot available in Cinder" os_wait 60 "snapshot available" snap_is "$snap" "available $vol" &&
  expect "the target's SPDK took lvol snapshot lvs0/snapshot-$snap (bdev_lvol_snapshot)" \
    spdk_rpc bdev_get_bdevs "{\"name\":\"lvs0/snapshot-$snap\"}" | jq_true '.result[0].driver_specific.lvol.snapshot == true' || return 1
  tsnap=$(target_calls bdev_lvol_snapshot | tail -n +$((n0 + 1)) | head -1)
  # Nova casts unquiesce once the snapshots are done: the resume may come a
  # moment after the image is active
  expect "the DPU paused the host's controllers before the snapshot and resumed them after (agent log vs target log)" \
    os_wait 30 "agent resumed the host" quiesce_brackets "$tsnap" &&
  expect "agent 1: snaproot still attached as nsid 1 after the snapshot" agent_vol_nsid "$vol" 1 &&
  expect "agent 1: host not left quiesced" not_quiesced || return 1
  # a new server from the image: Nova asks Cinder for a volume from the
  # snapshot (bdev_lvol_clone + bdev_lvol_inflate on the target), on node 2
  node_provide 2 || return 1
  sid2=$(openstack server create --flavor "$FLAVOR" --image bm-snap-img --network "$NET" bm-snap-copy -f value -c id) || return 1
  expect "bm-snap-copy ACTIVE" wait_server "$sid2" ACTIVE 180 || return 1
  use_dpu 2
  vol2=$(nv "/servers/$sid2" | jq -r '.server."os-extended-volumes:volumes_attached"[0].id // empty')
  port2=$(port_of "$sid2")
  expect "bm-snap-copy on node 2" [ "$(server_field "$sid2" '"OS-EXT-SRV-ATTR:hypervisor_hostname"')" = "$NODE" ] &&
  expect "its root volume $vol2 was made from snapshot $snap" [ "$(cv "/volumes/$vol2" | jq -r .volume.snapshot_id)" = "$snap" ] &&
  expect "the target cloned and inflated lvol volume-$vol2" \
    spdk_rpc bdev_get_bdevs "{\"name\":\"lvs0/volume-$vol2\"}" | jq_true '.result[0].driver_specific.lvol.clone == false' &&
  expect "agent 2: $vol2 attached as nsid 1" os_wait 15 "agent volume" agent_vol_nsid "$vol2" 1 &&
  expect "DPU 2 SPDK: PF0 namespace 1" [ -n "$(pf0_ns_bdev 1)" ] &&
  port_wired "$port2" || return 1
  use_dpu 1
  # release both nodes for the next cases
  openstack server delete --wait "$sid" "$sid2" || return 1
  expect "node 1 available again" os_wait 90 "node 1 free" node_free || return 1
  use_dpu 2
  expect "node 2 available again" os_wait 90 "node 2 free" node_free; local rc=$?
  use_dpu 1
  [ "$rc" = 0 ] || return 1
  as_admin openstack image delete "$img" &&
  openstack volume snapshot delete "$snap" &&
  expect "snaproot available" os_wait 60 "volume available" volume_is "$vol" available &&
  expect "its copy available" os_wait 60 "volume available" volume_is "$vol2" available &&
  expect "snapshot gone" os_wait 60 "snapshot deleted" snap_gone "$snap" &&
  openstack volume delete "$vol" "$vol2"
}
image_active() { [ "$(adm -sf "$GLANCE/v2/images/$1" | jq -r .status)" = active ]; }
snap_is() { [ "$(cv "/snapshots/$1" | jq -r '.snapshot.status + " " + .snapshot.volume_id')" = "$2" ]; }   # SNAP "STATUS VOLUME"
snap_gone() { [ "$(adm -s -o /dev/null -w '%{http_code}' "${CINDER_H[@]}" "$CINDER/snapshots/$1")" = 404 ]; }
not_quiesced() {   # the agent reports the host's controllers running again, resumed by a call
  agent_state | jq_true '.observed.quiesce | .quiesced == false and .resumed_at != null'
}
# Issue 17 item 5: the binding keeps the port's vnic_type, so nova-compute's
# network cache refreshes (the periodic heal, server add/remove port) never
# find it changed ('vnic_type ... changed in neutron from "normal" to ...').
case_no_vnic_type_flip() {
  local logs hits
  logs=$(ls "$BASE"/nova/log/nova-compute*.log 2>/dev/null)
  expect "nova-compute logged (${logs//$'\n'/ })" [ -n "$logs" ] || return 1
  # shellcheck disable=SC2086   # one path per line, no spaces in $BASE
  hits=$(grep -h ' ERROR .*vnic_type' $logs)
  [ -z "$hits" ] || os_log "  $(head -c 600 <<<"$hits")"
  expect "no vnic_type ERROR in nova-compute's log" [ -z "$hits" ]
}

# Ironic's neutron.get_client opens a new session, and with it a keep-alive
# connection to Neutron, on every call; the dpu network interface closes
# each one it makes. Left open they piled up until they filled the one
# Neutron API worker's greenthread pool (wsgi_default_pool_size 100) and a
# port binding (evacuate, case 17) waited forever for Neutron to accept it.
case_no_idle_neutron_connections() {
  local pid conns n
  pid=$(cat "$BASE/pids/ironic-conductor")
  conns=$(ss -Htnp state established "( dport = :$NEUTRON_PORT )")
  n=$(grep -c "pid=$pid," <<<"$conns")
  os_log "  connections to Neutron: ironic-conductor $n, all clients $(grep -c . <<<"$conns")"
  expect "ironic-conductor keeps at most 3 connections to Neutron open (has $n)" [ "$n" -le 3 ]
}
