"""Hardware type 'dpu': a server whose disks and NICs are served by its DPU.

Power and management are the BMC's (IPMI, Redfish; fake for tests). Ironic
matches interfaces by exact class, so every dpu interface is listed here.
"""
from ironic.drivers import generic
from ironic.drivers.modules import fake
from ironic.drivers.modules import ipmitool
from ironic.drivers.modules.network import noop as noop_net
from ironic.drivers.modules import noop
from ironic.drivers.modules.redfish import management as redfish_mgmt
from ironic.drivers.modules.redfish import power as redfish_power
from ironic.drivers.modules.storage import noop as noop_storage

from ironic_dpu import boot
from ironic_dpu import deploy
from ironic_dpu import network
from ironic_dpu import storage
from ironic_dpu import vendor


class DPUHardware(generic.GenericHardware):

    @property
    def supported_boot_interfaces(self):
        return [boot.DPUBoot]

    @property
    def supported_deploy_interfaces(self):
        return [deploy.DPUDeploy]

    @property
    def supported_management_interfaces(self):
        return [ipmitool.IPMIManagement, redfish_mgmt.RedfishManagement,
                fake.FakeManagement]

    @property
    def supported_power_interfaces(self):
        return [ipmitool.IPMIPower, redfish_power.RedfishPower,
                fake.FakePower]

    @property
    def supported_network_interfaces(self):
        return [network.DPUNetwork, noop_net.NoopNetwork]

    @property
    def supported_storage_interfaces(self):
        return [storage.DPUStorage, noop_storage.NoopStorage]

    @property
    def supported_vendor_interfaces(self):
        return [vendor.DPUVendor, noop.NoVendor]
