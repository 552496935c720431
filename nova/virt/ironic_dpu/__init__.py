"""Nova compute driver for bare-metal servers whose disks their DPU serves.

Nova imports compute drivers only from its own package (``compute_driver =
X`` loads ``nova.virt.X``), so this small package is installed into Nova's
``nova/virt/`` (copied or symlinked, like nova-powervm's ``powervm_ext``)
and selected with ``compute_driver = ironic_dpu.IronicDPUDriver``.
"""
from nova.virt.ironic_dpu import driver

IronicDPUDriver = driver.IronicDPUDriver
