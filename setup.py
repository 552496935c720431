"""Packaging for the ironic_dpu driver and its Nova driver (metadata lives in
setup.cfg)."""
import setuptools

setuptools.setup()
