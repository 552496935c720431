#!/usr/bin/python3
"""Read a config-drive ISO the way cloud-init does (label, then the
openstack/latest files) and print what a test checks, as JSON.

Usage: read_configdrive.py IMAGE
"""
from io import BytesIO
import json
import sys

import pycdlib


def read(iso, path):
    out = BytesIO()
    try:
        iso.get_file_from_iso_fp(out, rr_path=path)
    except pycdlib.pycdlibexception.PyCdlibException:
        iso.get_file_from_iso_fp(out, joliet_path=path)
    return out.getvalue().decode()


def main(image):
    iso = pycdlib.PyCdlib()
    iso.open(image)
    try:
        meta = json.loads(read(iso, '/openstack/latest/meta_data.json'))
        try:
            user_data = read(iso, '/openstack/latest/user_data')
        except pycdlib.pycdlibexception.PyCdlibException:
            user_data = None
        label = iso.pvd.volume_identifier.decode().strip()
    finally:
        iso.close()
    json.dump({'label': label, 'uuid': meta.get('uuid'),
               'public_keys': meta.get('public_keys') or {},
               'user_data': user_data}, sys.stdout)


if __name__ == '__main__':
    main(sys.argv[1])
