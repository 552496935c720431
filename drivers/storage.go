package drivers

import (
	"context"
	"errors"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// HostNamespace is an SPDK bdev the host sees as an NVMe namespace.
type HostNamespace struct {
	NSID int    `json:"nsid"`
	Bdev string `json:"bdev"`
	// UUID is the namespace UUID shown to the host; "" lets the emulation
	// layer derive it from the bdev (for a remote volume: the remote
	// namespace's UUID, which keeps the boot disk's identity).
	UUID string `json:"uuid,omitempty"`
}

// HostController is the emulated NVMe controller of one host function, as
// the emulation layer holds it.
type HostController struct {
	Function nodestate.Function `json:"function"`
	// ID names the controller for the driver: the subsystem NQN (SPDK nvmf)
	// or the SNAP ctrl_id.
	ID string `json:"id"`
	// Active is true once the host can see the controller (listener added,
	// SNAP controller resumed).
	Active     bool            `json:"active"`
	Namespaces []HostNamespace `json:"namespaces"`
}

// ErrFunctionAbsent marks a ValidateFunction refusal that depends on what
// the card has at the moment (a VF exists only while the host has SR-IOV
// on). It fails admission like any refusal, but a reconcile of a state
// admitted earlier fails only the volumes on that function.
var ErrFunctionAbsent = errors.New("not on the card now")

// StorageDriver is the vendor half of volume exposure: turning SPDK bdevs
// into namespaces of an emulated NVMe controller on a host PCIe function. The
// generic half (Cinder connection info, bdev_nvme backend, what to add or
// remove) lives in storage/. The storage reconciler calls these methods only
// after reading the current state with Controllers, so that every call is a
// real change; implementations still treat "already done" as success where
// the backend says so unambiguously. AddNamespace may run concurrently for
// different nsids (also of one controller); the other methods are called
// one at a time.
type StorageDriver interface {
	// ValidateFunction checks that volumes can be exposed on f, without
	// side effects and without waiting long. Errors wrap
	// errdefs.ErrInvalidArgument or errdefs.ErrNotSupported, and also
	// ErrFunctionAbsent when the card may have f later.
	ValidateFunction(f nodestate.Function) error
	// Controllers lists the host controllers this agent created (recognised
	// by name) or adopted (a vendor's pre-existing controller holding the
	// agent's bdevs), read-only.
	Controllers(ctx context.Context) ([]HostController, error)
	// EnsureController creates f's controller, not yet visible to the host,
	// when cur (what Controllers returned for f) is nil, and returns it.
	EnsureController(ctx context.Context, f nodestate.Function, cur *HostController) (HostController, error)
	// AddNamespace exposes ns on c (hot-plug when c is active).
	AddNamespace(ctx context.Context, c HostController, ns HostNamespace) error
	// RemoveNamespace hot-unplugs nsid from c; a missing nsid is success.
	RemoveNamespace(ctx context.Context, c HostController, nsid int) error
	// Activate makes c visible to the host unless c.Active already.
	Activate(ctx context.Context, c HostController) error
	// RemoveController deletes c and whatever it still exposes; of an
	// adopted controller only the agent's namespaces.
	RemoveController(ctx context.Context, c HostController) error
}

// HostNQNPrefix is the prefix of the NVMe subsystem NQNs the agent creates.
const HostNQNPrefix = "nqn.2024-01.io.openstack.ironic-dpu:node-"

// HostSubsystemNQN is the NQN of the emulated controller of function f of
// node nodeUUID: nqn.2024-01.io.openstack.ironic-dpu:node-<uuid>:pf0.
func HostSubsystemNQN(nodeUUID string, f nodestate.Function) string {
	return HostNQNPrefix + strings.ToLower(nodeUUID) + ":" + f.String()
}

// ParseHostSubsystemNQN returns the function of one of this node's NQNs.
func ParseHostSubsystemNQN(nodeUUID, nqn string) (nodestate.Function, bool) {
	rest, ok := strings.CutPrefix(nqn, HostNQNPrefix+strings.ToLower(nodeUUID)+":")
	if !ok {
		return nodestate.Function{}, false
	}
	f, err := nodestate.ParseFunction(rest)
	if err != nil || f.IsSF() { // SFs have no NVMe controller
		return nodestate.Function{}, false
	}
	return f, true
}

// HostSerial is a stable 20-character NVMe serial number per node and
// function: the node UUID's hex digits, cut to leave room for the
// upper-cased function name (…PF0VF3).
func HostSerial(nodeUUID string, f nodestate.Function) string {
	s := strings.ToUpper(strings.ReplaceAll(nodeUUID, "-", ""))
	fn := strings.ToUpper(f.String())
	if len(s) > 20-len(fn) {
		s = s[:20-len(fn)]
	}
	return s + fn
}
