# A portion of Nova's ``nova`` package, not Nova itself: Nova imports a
# compute driver only as nova.virt.<compute_driver>, so the ironic_dpu driver
# is installed under nova/virt/ of whatever site directory pip chose (a
# virtualenv, /usr/local, a --target dir), usually not the one holding Nova.
# extend_path adds every other ``nova`` directory on sys.path, Nova's
# included, so whichever portion Python finds first, ``nova`` is all of them
# (Nova's own nova/virt/__init__.py does the same for nova.virt with
# pkg_resources; this one avoids importing pkg_resources, which imports
# threading, before Nova's services monkey-patch it).
__path__ = __import__('pkgutil').extend_path(__path__, __name__)
