"""`pip install .` into a clean virtualenv (with system site packages:
Debian's Ironic and Nova, no PyPI) installs both sides of the driver, and
Ironic and Nova find them with their own loaders; nothing generated is
committed."""
import configparser
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PY = '/usr/bin/python3'  # Debian's: its site packages hold Ironic and Nova
# What a build needs; copied, because pip builds in the source tree
# (build/, *.egg-info) and the checkout must stay as it is.
SOURCES = ('setup.py', 'setup.cfg', 'ironic_dpu', 'nova')


def setup_cfg_entry_points():
    cp = configparser.ConfigParser()
    cp.read(os.path.join(ROOT, 'setup.cfg'))
    out = {}
    for group, text in cp['options.entry_points'].items():
        for line in text.strip().splitlines():
            name, _, target = line.partition('=')
            out.setdefault(group, {})[name.strip()] = target.strip()
    return out, cp['metadata']['version']


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode:
        raise AssertionError('%s failed (%d):\n%s\n%s' % (
            ' '.join(cmd), proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout


class InstallTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix='ironic-dpu-pip-')
        tmp = cls.tmp.name
        src = os.path.join(tmp, 'src')
        tar = subprocess.Popen(['tar', '-C', ROOT, '--exclude=__pycache__',
                                '--exclude=*.egg-info', '-cf', '-']
                               + list(SOURCES), stdout=subprocess.PIPE)
        os.mkdir(src)
        run(['tar', '-C', src, '-xf', '-'], stdin=tar.stdout)
        tar.stdout.close()
        assert tar.wait() == 0
        venv = os.path.join(tmp, 'venv')
        run([PY, '-m', 'venv', '--system-site-packages', venv])
        cls.python = os.path.join(venv, 'bin', 'python')
        # Plain: no --no-deps, no --target; requirements from Debian's.
        run([cls.python, '-m', 'pip', 'install', '--no-index',
             '--no-build-isolation', '--disable-pip-version-check', src])
        # The extras each host needs resolve against Debian's packages.
        run([cls.python, '-m', 'pip', 'install', '--no-index',
             '--no-build-isolation', '--disable-pip-version-check',
             '--dry-run', src + '[ironic,nova]'])
        cls.site = run([cls.python, '-c', 'import sysconfig; '
                        'print(sysconfig.get_paths()["purelib"])']).strip()
        # A directory of its own and no PYTHONPATH: nothing from the
        # checkout can be imported by accident.
        env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
        env['XDG_CACHE_HOME'] = os.path.join(tmp, 'cache')  # stevedore's
        check = os.path.join(ROOT, 'tests', 'python', 'check_install.py')
        cls.found = {side: json.loads(run([cls.python, check, side],
                                          cwd=tmp, env=env))
                     for side in ('entry-points', 'ironic', 'nova')}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_entry_points(self):
        eps, version = setup_cfg_entry_points()
        found = self.found['entry-points']
        self.assertEqual(version, found['version'])
        self.assertEqual('ironic_dpu.hardware:DPUHardware',
                         found['entry_points']['ironic.hardware.types']['dpu'])
        for group, names in eps.items():
            for name, target in names.items():
                self.assertEqual(target, found['entry_points'][group].get(name),
                                 '%s %s' % (group, name))

    def test_ironic_driver_factory_loads_the_installed_driver(self):
        ironic = self.found['ironic']
        self.assertEqual('ironic_dpu.hardware:DPUHardware',
                         ironic['hardware_type'])
        self.assertTrue(ironic['hardware_type_file'].startswith(self.site),
                        ironic['hardware_type_file'])
        eps, _ = setup_cfg_entry_points()
        for iface, cls in ironic['interfaces'].items():
            self.assertEqual(
                eps['ironic.hardware.interfaces.' + iface]['dpu'], cls)

    def test_nova_loads_the_compute_driver(self):
        nova = self.found['nova']
        self.assertEqual('nova.virt.ironic_dpu.driver.IronicDPUDriver',
                         nova['class'])
        self.assertTrue(nova['is_compute_driver'])
        self.assertEqual(os.path.join(self.site, 'nova', 'virt', 'ironic_dpu',
                                      'driver.py'), nova['file'])

    def test_nova_itself_is_not_installed_over(self):
        # Only the driver and the two namespace portions land in nova/.
        files = sorted(os.path.relpath(p, self.site) for p in glob.glob(
            os.path.join(self.site, 'nova', '**', '*.py'), recursive=True))
        self.assertEqual(['nova/__init__.py', 'nova/virt/__init__.py',
                          'nova/virt/ironic_dpu/__init__.py',
                          'nova/virt/ironic_dpu/driver.py'], files)

    def test_nothing_generated_is_committed(self):
        for pattern in ('*.dist-info', '*.egg-info', 'build', 'dist'):
            found = [p for p in glob.glob(os.path.join(ROOT, pattern))
                     if not self._ignored(p)]
            self.assertEqual([], found)

    @staticmethod
    def _ignored(path):
        # A developer's own build is fine as long as git ignores it.
        return subprocess.run(['git', '-C', ROOT, 'check-ignore', '-q', path],
                              capture_output=True).returncode == 0


if __name__ == '__main__':
    unittest.main(argv=[sys.argv[0]])
