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


class DPUQuiesceNotSupported(DPUAgentError):
    """The node's agent cannot pause the host's controllers: it is older
    than agent RPC API 1.3, rpc_version_cap is below 1.3, or its DPU driver
    has no documented pause (a snapshot is then crash-consistent only)."""
    _msg_fmt = _("DPU agent of node %(node)s cannot quiesce the host: "
                 "%(reason)s")
