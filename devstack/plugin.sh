#!/bin/bash
# devstack plugin for ironic-dpu-agent: builds and installs the agent and the
# SPDK emulator, installs the ironic_dpu driver, enables the dpu hardware type
# and interfaces in ironic.conf, writes the agent's config and systemd unit,
# and (optionally) enrolls a dpu node for a single-node devstack where the
# devstack host's OVS/OVN plays the DPU with the sim driver.
# Lint: bash -n devstack/plugin.sh && shellcheck -x devstack/plugin.sh devstack/settings

# Appends ITEM to a comma-separated ironic.conf list option if missing.
function _ironic_dpu_add_to_list {
    local section=$1 option=$2 item=$3 current
    current=$(iniget "$IRONIC_CONF_FILE" "$section" "$option")
    if [[ -z "$current" ]]; then
        iniset "$IRONIC_CONF_FILE" "$section" "$option" "$item"
    elif [[ ",$current," != *",$item,"* ]]; then
        iniset "$IRONIC_CONF_FILE" "$section" "$option" "$current,$item"
    fi
}

function install_ironic_dpu {
    echo_summary "Building ironic-dpu-agent and the SPDK emulator"
    (cd "$IRONIC_DPU_DIR" && "$IRONIC_DPU_GO" build -trimpath -o "$IRONIC_DPU_DIR/bin/ironic-dpu-agent" ./cmd/ironic-dpu-agent) \
        || die $LINENO "go build of ironic-dpu-agent failed"
    (cd "$IRONIC_DPU_DIR" && "$IRONIC_DPU_GO" build -trimpath -o "$IRONIC_DPU_DIR/bin/spdk-emulator" ./cmd/spdk-emulator) \
        || die $LINENO "go build of spdk-emulator failed"
    sudo install -m 0755 "$IRONIC_DPU_DIR/bin/ironic-dpu-agent" "$IRONIC_DPU_AGENT_BIN"
    sudo install -m 0755 "$IRONIC_DPU_DIR/bin/spdk-emulator" "$IRONIC_DPU_SPDK_EMULATOR_BIN"

    echo_summary "Installing the ironic_dpu driver and its Nova driver"
    # One distribution: setup.cfg carries the Ironic entry points
    # (ironic.hardware.types dpu, ...) and installs nova/virt/ironic_dpu with
    # the nova and nova.virt namespace portions that join it to Nova's tree.
    setup_develop "$IRONIC_DPU_DIR"
}

# Nova loads compute drivers from its own package only (compute_driver = X
# imports nova.virt.X): check that it finds the installed driver there.
function verify_ironic_dpu_nova_driver {
    "$PYTHON" -c 'import nova.virt.ironic_dpu' \
        || die $LINENO "nova.virt.ironic_dpu does not import with $PYTHON after installing $IRONIC_DPU_DIR"
}

function configure_ironic_dpu_nova {
    local conf
    for conf in "$NOVA_CONF" "${NOVA_CPU_CONF:-}"; do
        [[ -n "$conf" && -f "$conf" ]] || continue
        iniset "$conf" DEFAULT compute_driver ironic_dpu.IronicDPUDriver
        iniset "$conf" ironic_dpu volume_timeout "$IRONIC_DPU_NOVA_VOLUME_TIMEOUT"
    done
}

function configure_ironic_dpu_conductor {
    echo_summary "Enabling the dpu hardware type in $IRONIC_CONF_FILE"
    _ironic_dpu_add_to_list DEFAULT enabled_hardware_types dpu
    _ironic_dpu_add_to_list DEFAULT enabled_deploy_interfaces dpu
    _ironic_dpu_add_to_list DEFAULT enabled_boot_interfaces dpu
    _ironic_dpu_add_to_list DEFAULT enabled_storage_interfaces dpu
    _ironic_dpu_add_to_list DEFAULT enabled_network_interfaces dpu
    _ironic_dpu_add_to_list DEFAULT enabled_vendor_interfaces dpu
    _ironic_dpu_add_to_list DEFAULT enabled_power_interfaces "$IRONIC_DPU_POWER_INTERFACE"
    _ironic_dpu_add_to_list DEFAULT enabled_management_interfaces "$IRONIC_DPU_MANAGEMENT_INTERFACE"

    iniset "$IRONIC_CONF_FILE" dpu_agent transport_url "$(_ironic_dpu_transport_url)"
    iniset "$IRONIC_CONF_FILE" dpu_agent exchange ironic_dpu
    iniset "$IRONIC_CONF_FILE" dpu_agent topic ironic-dpu-agent

    local binding=$IRONIC_DPU_NEUTRON_BINDING
    if [[ "$binding" == auto ]]; then
        binding=False
        if is_service_enabled neutron q-svc; then binding=True; fi
    fi
    iniset "$IRONIC_CONF_FILE" dpu neutron_binding "$binding"
}

# The conductor side's transport_url of the agents' RPC.
function _ironic_dpu_transport_url {
    if [[ -n "$IRONIC_DPU_TRANSPORT_URL" ]]; then
        echo "$IRONIC_DPU_TRANSPORT_URL"
    else
        echo "rabbit://$IRONIC_DPU_RABBIT_CONDUCTOR_USER:$IRONIC_DPU_RABBIT_CONDUCTOR_PASSWORD@$RABBIT_HOST:5672/$IRONIC_DPU_RABBIT_VHOST"
    fi
}

# Idempotent rabbitmq user with PASSWORD.
function _ironic_dpu_rabbit_user {
    local user=$1 password=$2
    if sudo rabbitmqctl -q list_users | awk '{print $1}' | grep -qxF -- "$user"; then
        sudo rabbitmqctl change_password "$user" "$password"
    else
        sudo rabbitmqctl add_user "$user" "$password"
    fi
}

# The DPUs' vhost, the conductor side's user there, and the agents' control
# exchange, declared by that user: a DPU's user may not create it (whoever may
# create an exchange may delete it). Flags as oslo declares it
# (amqp_durable_queues of ironic.conf).
function configure_ironic_dpu_rabbit {
    [[ -z "$IRONIC_DPU_TRANSPORT_URL" ]] || return 0
    echo_summary "Creating RabbitMQ vhost $IRONIC_DPU_RABBIT_VHOST for the DPUs"
    sudo rabbitmqctl -q list_vhosts name | grep -qxF -- "$IRONIC_DPU_RABBIT_VHOST" \
        || sudo rabbitmqctl add_vhost "$IRONIC_DPU_RABBIT_VHOST"
    _ironic_dpu_rabbit_user "$IRONIC_DPU_RABBIT_CONDUCTOR_USER" "$IRONIC_DPU_RABBIT_CONDUCTOR_PASSWORD"
    sudo rabbitmqctl set_permissions -p "$IRONIC_DPU_RABBIT_VHOST" "$IRONIC_DPU_RABBIT_CONDUCTOR_USER" '.*' '.*' '.*'
    local durable
    durable=$(iniget "$IRONIC_CONF_FILE" oslo_messaging_rabbit amqp_durable_queues)
    "$PYTHON" - "amqp://$IRONIC_DPU_RABBIT_CONDUCTOR_USER:$IRONIC_DPU_RABBIT_CONDUCTOR_PASSWORD@$RABBIT_HOST:5672/$IRONIC_DPU_RABBIT_VHOST" \
        "${durable:-False}" <<'PY' || die $LINENO "could not declare the ironic_dpu exchange"
import sys
import kombu
with kombu.Connection(sys.argv[1]) as conn:
    kombu.Exchange('ironic_dpu', 'topic', durable=sys.argv[2].lower() == 'true',
                   auto_delete=False)(conn.channel()).declare()
PY
}

# The agent's own broker user for NODE_UUID, with broker-acl's rights; prints
# the agent's transport_url.
function _ironic_dpu_agent_transport_url {
    local node_uuid=$1 user password
    if [[ -n "$IRONIC_DPU_TRANSPORT_URL" ]]; then
        echo "$IRONIC_DPU_AGENT_TRANSPORT_URL"
        return
    fi
    local cmds
    user=dpu-$node_uuid
    password=$(openssl rand -hex 16)
    _ironic_dpu_rabbit_user "$user" "$password" >&2
    cmds=$("$IRONIC_DPU_AGENT_BIN" broker-acl --config-file "$IRONIC_DPU_CONF" --node "$node_uuid" --user "$user" \
        --vhost "$IRONIC_DPU_RABBIT_VHOST") || die $LINENO "broker-acl failed"
    # -c, not stdin: the first rabbitmqctl would read the rest of the script
    sudo bash -ec "$cmds" </dev/null >&2 || die $LINENO "setting the DPU's broker permissions failed"
    echo "rabbit://$user:$password@$RABBIT_HOST:5672/$IRONIC_DPU_RABBIT_VHOST"
}

function configure_ironic_dpu_agent {
    local node_uuid=${1:-}
    echo_summary "Writing $IRONIC_DPU_CONF"
    sudo install -d -m 0700 "$IRONIC_DPU_CONF_DIR" "$IRONIC_DPU_CONF_DIR/conf.d" "$IRONIC_DPU_STATE_DIR"
    sudo install -m 0600 "$IRONIC_DPU_DIR/etc/ironic-dpu-agent/ironic-dpu-agent.conf.sample" "$IRONIC_DPU_CONF"
    sudo chown "$STACK_USER" "$IRONIC_DPU_CONF"
    iniset "$IRONIC_DPU_CONF" DEFAULT state_dir "$IRONIC_DPU_STATE_DIR"
    if [[ -n "$node_uuid" ]]; then
        iniset "$IRONIC_DPU_CONF" DEFAULT node_uuid "$node_uuid"
        iniset "$IRONIC_DPU_CONF" storage host_nqn "nqn.2014-08.org.nvmexpress:uuid:$node_uuid"
    fi
    iniset "$IRONIC_DPU_CONF" agent exchange ironic_dpu
    iniset "$IRONIC_DPU_CONF" agent topic ironic-dpu-agent
    iniset "$IRONIC_DPU_CONF" dpu driver "$IRONIC_DPU_DRIVER"
    iniset "$IRONIC_DPU_CONF" ovs ovsdb_connection "$IRONIC_DPU_OVSDB"
    iniset "$IRONIC_DPU_CONF" ovs integration_bridge "$IRONIC_DPU_BRIDGE"
    iniset "$IRONIC_DPU_CONF" spdk rpc_socket "$IRONIC_DPU_SPDK_SOCKET"
    iniset "$IRONIC_DPU_CONF" spdk_nvmf transport TCP
    iniset "$IRONIC_DPU_CONF" spdk_nvmf listen_address 127.0.0.1
    iniset "$IRONIC_DPU_CONF" spdk_nvmf listen_port "$IRONIC_DPU_NVMF_PORT"
    if [[ -n "$node_uuid" ]]; then
        # its own broker user (rights from broker-acl on the config above):
        # never the conductor's credentials on a DPU
        iniset "$IRONIC_DPU_CONF" DEFAULT transport_url "$(_ironic_dpu_agent_transport_url "$node_uuid")"
    fi
    # No [ironic] section: the agent holds no Ironic API credentials. After a
    # restart it announces itself on the broker and the conductor pushes the
    # node's recorded state (ironic_dpu/hello.py).
    # The unit runs as root without CAP_DAC_OVERRIDE: root must own it.
    sudo chown root:root "$IRONIC_DPU_CONF"
}

function install_ironic_dpu_units {
    echo_summary "Installing the systemd units"
    # The agent's unit is etc/ironic-dpu-agent/ironic-dpu-agent.service; only paths change.
    sed -e "s|/usr/bin/ironic-dpu-agent|$IRONIC_DPU_AGENT_BIN|g" \
        -e "s|/etc/ironic-dpu-agent|$IRONIC_DPU_CONF_DIR|g" \
        "$IRONIC_DPU_DIR/etc/ironic-dpu-agent/ironic-dpu-agent.service" \
        | sudo tee "/etc/systemd/system/$IRONIC_DPU_UNIT" > /dev/null
    # ProtectSystem=strict leaves only /var/lib/ironic-dpu-agent writable;
    # devstack keeps the state (and the emulator's socket) under $DATA_DIR.
    sudo install -d "/etc/systemd/system/$IRONIC_DPU_UNIT.d"
    printf '[Service]\nReadWritePaths=%s\n' "$IRONIC_DPU_STATE_DIR" \
        | sudo tee "/etc/systemd/system/$IRONIC_DPU_UNIT.d/devstack.conf" > /dev/null
    if [[ "$IRONIC_DPU_RUN_SPDK_EMULATOR" == True ]]; then
        sudo tee /etc/systemd/system/ironic-dpu-spdk-emulator.service > /dev/null <<UNIT
[Unit]
Description=SPDK JSON-RPC emulator standing in for SPDK on the devstack "DPU"
Before=$IRONIC_DPU_UNIT

[Service]
ExecStart=$IRONIC_DPU_SPDK_EMULATOR_BIN --socket $IRONIC_DPU_SPDK_SOCKET
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
    fi
    $SYSTEMCTL daemon-reload
}

function enroll_ironic_dpu_node {
    echo_summary "Enrolling dpu node $IRONIC_DPU_NODE_NAME"
    local uuid
    uuid=$(openstack baremetal node show "$IRONIC_DPU_NODE_NAME" -f value -c uuid 2>/dev/null || true)
    if [[ -z "$uuid" ]]; then
        uuid=$(openstack baremetal node create --driver dpu --name "$IRONIC_DPU_NODE_NAME" \
            --deploy-interface dpu --boot-interface dpu --storage-interface dpu \
            --network-interface dpu --vendor-interface dpu \
            --power-interface "$IRONIC_DPU_POWER_INTERFACE" \
            --management-interface "$IRONIC_DPU_MANAGEMENT_INTERFACE" \
            --driver-info "dpu_hostname=$IRONIC_DPU_HOSTNAME" -f value -c uuid)
    fi
    echo "$uuid"
}

function start_ironic_dpu {
    if [[ "$IRONIC_DPU_RUN_SPDK_EMULATOR" == True ]]; then
        $SYSTEMCTL enable --now ironic-dpu-spdk-emulator.service
    fi
    $SYSTEMCTL enable --now "$IRONIC_DPU_UNIT"
}

function stop_ironic_dpu {
    $SYSTEMCTL stop "$IRONIC_DPU_UNIT" || true
    $SYSTEMCTL stop ironic-dpu-spdk-emulator.service || true
}

function cleanup_ironic_dpu {
    stop_ironic_dpu
    sudo rm -f "/etc/systemd/system/$IRONIC_DPU_UNIT" /etc/systemd/system/ironic-dpu-spdk-emulator.service
    sudo rm -rf "/etc/systemd/system/$IRONIC_DPU_UNIT.d"
    sudo rm -f "$IRONIC_DPU_AGENT_BIN" "$IRONIC_DPU_SPDK_EMULATOR_BIN"
    sudo rm -rf "$IRONIC_DPU_CONF_DIR" "$IRONIC_DPU_STATE_DIR"
    $SYSTEMCTL daemon-reload
}

if is_service_enabled ironic-dpu-agent; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        install_ironic_dpu
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        configure_ironic_dpu_conductor
        configure_ironic_dpu_rabbit
        configure_ironic_dpu_agent
        install_ironic_dpu_units
        if [[ "$IRONIC_DPU_NOVA_DRIVER" == True ]] && is_service_enabled n-cpu; then
            verify_ironic_dpu_nova_driver
            configure_ironic_dpu_nova
        fi
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        # Ironic (and its conductor with the dpu type) is up by now.
        if [[ "$IRONIC_DPU_ENROLL_NODE" == True ]]; then
            node_uuid=$(enroll_ironic_dpu_node)
            configure_ironic_dpu_agent "$node_uuid"
        fi
        start_ironic_dpu
    fi
    if [[ "$1" == "unstack" ]]; then
        stop_ironic_dpu
    fi
    if [[ "$1" == "clean" ]]; then
        cleanup_ironic_dpu
    fi
fi
