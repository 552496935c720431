#!/bin/bash
# Sourced by the shell harnesses: OVN central (NB, SB, northd) and one DPU's
# Open vSwitch (dummy datapath, br-int) with its ovn-controller, unprivileged:
# every daemon in the foreground under proc_spawn (tests/lib/proc.sh), unix
# sockets and databases in $OVN_DIR (research/ovs-ovn.md 4.3).
# shellcheck disable=SC2034   # OVSDB, NBDB, SBDB are used by the sourcing scripts

# ovn_env_for DIR: the daemons' directories and the three database sockets.
ovn_env_for() {
  OVN_DIR=$1
  export OVS_RUNDIR=$OVN_DIR OVS_LOGDIR=$OVN_DIR OVS_DBDIR=$OVN_DIR OVS_SYSCONFDIR=$OVN_DIR \
    OVN_RUNDIR=$OVN_DIR OVN_LOGDIR=$OVN_DIR OVN_DBDIR=$OVN_DIR OVN_SYSCONFDIR=$OVN_DIR
  OVSDB=unix:$OVN_DIR/db.sock NBDB=unix:$OVN_DIR/ovnnb_db.sock SBDB=unix:$OVN_DIR/ovnsb_db.sock
}
vsctl() { ovs-vsctl --db="$OVSDB" --timeout=10 "$@"; }
nbctl() { ovn-nbctl --db="$NBDB" --timeout=10 "$@"; }
sbctl() { ovn-sbctl --db="$SBDB" --timeout=10 "$@"; }

# ovn_stack_up SYSTEM_ID HOSTNAME: after ovn_env_for, create the databases,
# start the servers, northd, ovs-vswitchd with br-int and ovn-controller as
# chassis SYSTEM_ID (hostname HOSTNAME); returns once the chassis is in the
# SB database, or 1.
ovn_stack_up() {
  local id=$1 host=$2 n
  mkdir -p "$OVN_DIR"
  ovsdb-tool create "$OVN_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-tool create "$OVN_DIR/ovnnb_db.db" /usr/share/ovn/ovn-nb.ovsschema
  ovsdb-tool create "$OVN_DIR/ovnsb_db.db" /usr/share/ovn/ovn-sb.ovsschema
  # manager_options: as ovs-ctl starts it, a Manager row added later is served too
  proc_spawn ovsdb-server ovsdb-server "$OVN_DIR/conf.db" --remote="punix:$OVN_DIR/db.sock" \
    --remote=db:Open_vSwitch,Open_vSwitch,manager_options --unixctl="$OVN_DIR/ovsdb-server.ctl" --no-chdir
  for n in ovnnb_db ovnsb_db; do
    proc_spawn "$n" ovsdb-server "$OVN_DIR/$n.db" --remote="punix:$OVN_DIR/$n.sock" --unixctl="$OVN_DIR/$n.ctl" --no-chdir
  done
  for n in db ovnnb_db ovnsb_db; do proc_wait 10 "$n.sock" test -S "$OVN_DIR/$n.sock" || return 1; done
  vsctl --no-wait init; nbctl init; sbctl init
  proc_spawn ovs-vswitchd ovs-vswitchd --enable-dummy=override --disable-system "$OVSDB" \
    --unixctl="$OVN_DIR/ovs-vswitchd.ctl" --no-chdir
  proc_spawn ovn-northd ovn-northd --ovnnb-db="$NBDB" --ovnsb-db="$SBDB" --unixctl="$OVN_DIR/ovn-northd.ctl" --no-chdir
  vsctl add-br br-int -- set Bridge br-int datapath_type=dummy fail-mode=secure other-config:disable-in-band=true
  vsctl set Open_vSwitch . external_ids:system-id="$id" external_ids:hostname="$host" \
    external_ids:ovn-remote="$SBDB" external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip=127.0.0.1 \
    external_ids:ovn-bridge=br-int external_ids:ovn-bridge-datapath-type=dummy
  proc_spawn ovn-controller ovn-controller "$OVSDB" --no-chdir
  proc_wait 30 "chassis $id" bash -c \
    "[ \"\$(ovn-sbctl --db=$SBDB --bare --columns=hostname find Chassis name=$id)\" = $host ]"
}

# ovn_chassis_up DIR SYSTEM_ID HOSTNAME ENCAP_IP SUFFIX: after ovn_stack_up,
# one more DPU: its own Open vSwitch (database and daemons under DIR, socket
# DIR/db.sock, br-int) and ovn-controller as chassis SYSTEM_ID on the same
# SB database, tunnels from ENCAP_IP. Its daemons are named NAME-SUFFIX
# (ovn_chassis_down SUFFIX stops them). Returns once the chassis is in SB.
ovn_chassis_up() {
  local dir=$1 id=$2 host=$3 ip=$4 sfx=$5 db=unix:$1/db.sock
  local envs=(OVS_RUNDIR="$dir" OVS_LOGDIR="$dir" OVS_DBDIR="$dir" OVS_SYSCONFDIR="$dir"
    OVN_RUNDIR="$dir" OVN_LOGDIR="$dir" OVN_DBDIR="$dir" OVN_SYSCONFDIR="$dir")
  mkdir -p "$dir"
  ovsdb-tool create "$dir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  proc_spawn "ovsdb-server-$sfx" "${envs[@]}" ovsdb-server "$dir/conf.db" --remote="punix:$dir/db.sock" \
    --remote=db:Open_vSwitch,Open_vSwitch,manager_options --unixctl="$dir/ovsdb-server.ctl" --no-chdir
  proc_wait 10 "$dir/db.sock" test -S "$dir/db.sock" || return 1
  ovs-vsctl --db="$db" --timeout=10 --no-wait init
  proc_spawn "ovs-vswitchd-$sfx" "${envs[@]}" ovs-vswitchd --enable-dummy=override --disable-system "$db" \
    --unixctl="$dir/ovs-vswitchd.ctl" --no-chdir
  ovs-vsctl --db="$db" --timeout=10 add-br br-int -- set Bridge br-int datapath_type=dummy fail-mode=secure \
    other-config:disable-in-band=true
  ovs-vsctl --db="$db" --timeout=10 set Open_vSwitch . external_ids:system-id="$id" external_ids:hostname="$host" \
    external_ids:ovn-remote="$SBDB" external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip="$ip" \
    external_ids:ovn-bridge=br-int external_ids:ovn-bridge-datapath-type=dummy
  proc_spawn "ovn-controller-$sfx" "${envs[@]}" ovn-controller "$db" --no-chdir
  proc_wait 30 "chassis $id" bash -c \
    "[ \"\$(ovn-sbctl --db=$SBDB --bare --columns=hostname find Chassis name=$id)\" = $host ]"
}
ovn_chassis_down() { proc_stop -t 10 "ovn-controller-$1" "ovs-vswitchd-$1"; proc_stop -t 10 "ovsdb-server-$1"; }

# ovn_stack_down: the chassis side first, then the databases.
ovn_stack_down() {
  proc_stop -t 10 ovn-controller ovn-northd ovs-vswitchd
  proc_stop -t 10 ovnsb_db ovnnb_db ovsdb-server
}
