"""Boot interface 'dpu': the host boots its emulated NVMe disk.

There is no ramdisk: deploy and cleaning happen on the DPU.
"""
from ironic.common import boot_devices
from ironic.conductor import utils as manager_utils
from ironic.drivers import base


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
        manager_utils.node_set_boot_device(task, boot_devices.DISK,
                                           persistent=True)

    def clean_up_instance(self, task):
        """The disk is detached by the storage and deploy interfaces."""
