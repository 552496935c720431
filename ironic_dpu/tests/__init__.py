import logging

# The driver logs through oslo.log; keep unit test output readable.
logging.getLogger('ironic_dpu').addHandler(logging.NullHandler())
