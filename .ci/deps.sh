#!/bin/bash
# Install everything the build, the tests and the demo need on a Debian
# bookworm machine: Debian packages (RabbitMQ, oslo.messaging, OVS/OVN, Ironic
# Zed, clients) and the Go modules. Idempotent and quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(rabbitmq-server python3-oslo.messaging openvswitch-switch ovn-central ovn-host
      ironic-api ironic-conductor python3-ironicclient python3-openstackclient
      jq curl shellcheck iproute2 iputils-ping procps psmisc make
      # the database of both end-to-end suites (Ironic's conductors share it)
      postgresql-15 python3-psycopg2
      # the whole-OpenStack suite (tests/openstack): Nova, Neutron ML2/OVN, Cinder, Glance, Placement
      neutron-server placement-api nova-api nova-conductor nova-scheduler
      nova-compute-ironic cinder-api cinder-scheduler cinder-volume glance-api
      # ... behind Keystone (keystonemiddleware comes with each API)
      keystone
      # config drives: Nova and Ironic build the ISO, the suite reads it back
      genisoimage python3-pycdlib
      # pip install of the driver distribution, offline (suites and make python-unit)
      python3-pip python3-venv python3-setuptools python3-wheel)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# No init system runs package services here: keep postinst scripts from
# starting system-wide daemons (tests start private ones).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
fi
export PATH="$PATH:/usr/local/go/bin"
go mod download
