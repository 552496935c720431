"""Boot interface 'dpu': the host boots its emulated NVMe disk.

There is no ramdisk: deploy and cleaning happen on the DPU.
"""
from oslo_log import log

from ironic.common import boot_devices
from ironic.conductor import utils as manager_utils
from ironic.drivers import base

LOG = log.getLogger(__name__)


def set_boot_disk(task):
    """Make the host boot its (emulated NVMe) disk, when the BMC can say so.

    A management interface that cannot select the disk (e.g. fake, which
    only knows PXE) leaves the host firmware's boot order in charge.
    """
    supported = task.driver.management.get_supported_boot_devices(task)
    if boot_devices.DISK not in supported:
        LOG.warning('Management interface of node %s cannot set the boot '
                    'device to disk (it supports %s); relying on the host '
                    'firmware boot order', task.node.uuid, supported)
        return
    manager_utils.node_set_boot_device(task, boot_devices.DISK,
                                       persistent=True)


class DPUBoot(base.BootInterface):

    capabilities = []

    def get_properties(self):
        return {}

    def validate(self, task):
        """Nothing to check: no kernel, ramdisk or image is needed."""

    def prepare_ramdisk(self, task, ramdisk_params):
        """No ramdisk: the DPU agent does the work."""

    def clean_up_ramdisk(self, task):
        """No ramdisk to clean up."""

    def prepare_instance(self, task):
        set_boot_disk(task)

    def clean_up_instance(self, task):
        """The disk is detached by the storage and deploy interfaces."""
