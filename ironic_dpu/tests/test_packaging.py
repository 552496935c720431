"""The committed dist-info must advertise exactly setup.cfg's entry points,
and every entry point must load, so that Debian's Ironic finds the driver on
PYTHONPATH without pip."""
import configparser
import importlib
import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def setup_cfg_entry_points():
    cp = configparser.ConfigParser()
    cp.read(os.path.join(ROOT, 'setup.cfg'))
    out = {}
    for group, text in cp['options.entry_points'].items():
        for line in text.strip().splitlines():
            name, _, target = line.partition('=')
            out.setdefault(group, {})[name.strip()] = target.strip()
    return out, cp['metadata']['version']


class PackagingTests(unittest.TestCase):

    def test_dist_info_matches_setup_cfg(self):
        eps, version = setup_cfg_entry_points()
        dist = os.path.join(ROOT, 'ironic_dpu-%s.dist-info' % version)
        cp = configparser.ConfigParser()
        cp.read(os.path.join(dist, 'entry_points.txt'))
        got = {g: dict(cp[g]) for g in cp.sections()}
        self.assertEqual(eps, got)
        with open(os.path.join(dist, 'METADATA')) as f:
            meta = f.read()
        self.assertIn('Name: ironic-dpu\n', meta)
        self.assertIn('Version: %s\n' % version, meta)
        self.assertEqual(set(eps['ironic.hardware.interfaces.deploy']), {'dpu'})

    def test_entry_points_load(self):
        eps, _ = setup_cfg_entry_points()
        for group, names in eps.items():
            for name, target in names.items():
                mod, _, attr = target.partition(':')
                obj = getattr(importlib.import_module(mod), attr)
                self.assertTrue(callable(obj), '%s %s' % (group, name))

    def test_found_through_importlib_metadata(self):
        # A fresh interpreter with only the repo root added, like the
        # conductor started with PYTHONPATH=<repo>.
        code = ('from importlib.metadata import entry_points as e; '
                'print(sorted(x.value for x in e(group="ironic.hardware.types")'
                ' if x.name == "dpu"))')
        out = subprocess.run([sys.executable, '-c', code], check=True,
                             capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=ROOT)).stdout
        self.assertEqual("['ironic_dpu.hardware:DPUHardware']", out.strip())
