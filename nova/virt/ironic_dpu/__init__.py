"""Nova compute driver for bare-metal servers whose disks their DPU serves.

Nova imports compute drivers only from its own package (``compute_driver =
X`` loads ``nova.virt.X``): ``pip install`` of this repository installs this
package as nova/virt/ironic_dpu/ next to two namespace portions (nova/ and
nova/virt/, see nova/__init__.py) that join it to Nova's, wherever each is
installed. Selected with ``compute_driver = ironic_dpu.IronicDPUDriver``.
"""
from nova.virt.ironic_dpu import driver

IronicDPUDriver = driver.IronicDPUDriver
