"""check_install.py entry-points|ironic|nova: run by an interpreter where the ironic-dpu distribution was pip-installed
(test_packaging: a fresh virtualenv with system site packages): finds the
driver the way Ironic and Nova do and prints what it found as JSON.

* entry points: importlib.metadata, every group setup.cfg declares;
* Ironic: its driver factory (stevedore over the entry points) builds the
  dpu hardware type and each dpu interface, as the conductor does;
* Nova: nova.virt.driver.load_compute_driver('ironic_dpu.IronicDPUDriver'),
  Nova's own loader (it imports nova.virt.<name> only).
"""
import importlib.metadata as md
import json
import sys

GROUPS = ('ironic.hardware.types', 'ironic.hardware.interfaces.deploy',
          'ironic.hardware.interfaces.boot',
          'ironic.hardware.interfaces.storage',
          'ironic.hardware.interfaces.network',
          'ironic.hardware.interfaces.vendor', 'oslo.config.opts')
IFACES = ('deploy', 'boot', 'storage', 'network', 'vendor')


def module_file(obj):
    return sys.modules[type(obj).__module__].__file__


def ironic_side():
    from ironic.common import driver_factory
    from ironic.conf import CONF
    CONF([], project='ironic', default_config_files=[])
    CONF.set_override('enabled_hardware_types', ['dpu'])
    for iface in IFACES:
        CONF.set_override('enabled_%s_interfaces' % iface, ['dpu'])
    CONF.set_override('enabled_management_interfaces', ['fake'])
    CONF.set_override('enabled_power_interfaces', ['fake'])
    hw = driver_factory.get_hardware_type('dpu')
    out = {'hardware_type': '%s:%s' % (type(hw).__module__,
                                       type(hw).__name__),
           'hardware_type_file': module_file(hw), 'interfaces': {}}
    for iface in IFACES:
        impl = driver_factory.get_interface(hw, iface, 'dpu')
        out['interfaces'][iface] = '%s:%s' % (type(impl).__module__,
                                              type(impl).__name__)
    return out


def nova_side():
    import nova.conf
    from nova.virt import driver
    from nova.virt import virtapi
    nova.conf.CONF([], project='nova', default_config_files=[])
    drv = driver.load_compute_driver(virtapi.VirtAPI(),
                                     'ironic_dpu.IronicDPUDriver')
    return {'class': '%s.%s' % (type(drv).__module__, type(drv).__name__),
            'file': module_file(drv),
            'is_compute_driver': isinstance(drv, driver.ComputeDriver)}


def entry_points():
    return {'entry_points': {g: {e.name: e.value
                                 for e in md.entry_points(group=g)}
                             for g in GROUPS},
            'version': md.distribution('ironic-dpu').version}


# One side per process: Ironic and Nova both register their options on
# oslo.config's global CONF and collide in one.
SIDES = {'entry-points': entry_points, 'ironic': ironic_side,
         'nova': nova_side}

if __name__ == '__main__':
    print(json.dumps(SIDES[sys.argv[1]]()))
