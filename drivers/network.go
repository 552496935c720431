package drivers

import (
	"context"

	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// NetworkDriver is the vendor half of VIF plugging: which netdev represents a
// host function on the DPU's eswitch, and creating/removing the functions the
// DPU itself owns (SFs). The generic half (OVSDB rows, waiting for OVN to bind)
// lives in network/. Implementations must be safe for concurrent use.
type NetworkDriver interface {
	// ValidateFunction checks that f can exist on this card (known PF, VF/SF
	// number in range) without side effects. Errors wrap
	// errdefs.ErrInvalidArgument.
	ValidateFunction(f nodestate.Function) error
	// Representor returns f's representor netdev without side effects.
	// errdefs.ErrNotFound means f does not exist (yet): an SF not created, a
	// VF the host has not enabled.
	Representor(ctx context.Context, f nodestate.Function) (string, error)
	// Prepare makes f exist with the host-visible MAC mac (creates and
	// activates an SF) and returns its representor. Idempotent. Functions the
	// DPU cannot create (VFs, PFs: the host makes them) are only looked up.
	Prepare(ctx context.Context, f nodestate.Function, mac string) (string, error)
	// Release undoes Prepare (deletes an SF). A function that is already gone
	// is success; VFs and PFs are left alone.
	Release(ctx context.Context, f nodestate.Function) error
}
