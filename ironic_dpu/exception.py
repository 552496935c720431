"""Errors of the dpu driver, worded for an operator reading last_error."""
from ironic.common import exception
from ironic.common.i18n import _


class DPUAgentError(exception.IronicException):
    """The agent answered with an error, or could not be asked."""
    _msg_fmt = _("DPU agent of node %(node)s failed %(method)s: %(error)s")


class DPUAgentUnreachable(DPUAgentError):
    """Nobody consumed the call, or no reply came in time."""
    _msg_fmt = _("DPU agent on node %(node)s unreachable (%(reason)s on "
                 "exchange %(exchange)s, topic %(topic)s): %(error)s")


class DPUStateError(DPUAgentError):
    """The agent accepted the state but could not realise part of it."""
    _msg_fmt = _("DPU agent of node %(node)s could not realise the desired "
                 "state: %(error)s")
