# A portion of Nova's ``nova.virt`` (see nova/__init__.py): adds every other
# nova/virt directory, Nova's included, to this package's path.
__path__ = __import__('pkgutil').extend_path(__path__, __name__)
