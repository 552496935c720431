package drivers

import (
	"fmt"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Card is the host-visible shape of the DPU: [dpu] pfs and max_vfs_per_pf.
// Every driver's ValidateFunction checks it, so a VIF or volume naming a
// function the card cannot have is refused at admission, not at plug time.
type Card struct {
	// PFs is the number of host PFs; functions use PF 0..PFs-1.
	PFs int
	// VFsPerPF is the number of VFs each PF may have; 0 refuses VFs.
	VFsPerPF int
}

// DefaultCard is a BlueField-2/3 in DPU mode: 2 host PFs, 127 VFs each.
var DefaultCard = Card{PFs: 2, VFsPerPF: 127}

// Check refuses f when it names a PF or VF outside the card.
func (c Card) Check(f nodestate.Function) error {
	if f.PF >= c.PFs {
		return fmt.Errorf("%w: function %s: the card has %d host PFs (pf 0..%d, [dpu] pfs)",
			errdefs.ErrInvalidArgument, f, c.PFs, c.PFs-1)
	}
	if f.VF != nil && *f.VF >= c.VFsPerPF {
		return fmt.Errorf("%w: function %s: the card has %d VFs per PF ([dpu] max_vfs_per_pf)",
			errdefs.ErrInvalidArgument, f, c.VFsPerPF)
	}
	return nil
}
