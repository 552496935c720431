"""Packaging for the ironic_dpu driver (metadata lives in setup.cfg)."""
import setuptools

setuptools.setup()
