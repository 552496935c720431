// Package bluefield is the NVIDIA BlueField DPU driver. Its network half
// finds representors by sysfs phys_port_name (c1pf0vf3 / pf0vf3, c1pf0sf88)
// and creates SFs on the host controller through devlink.
package bluefield

import (
	"context"
	"fmt"
	"slices"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// HostController is the eswitch controller of the bare-metal host on a
// BlueField in DPU mode (representors named c1pf...).
const HostController = 1

// MaxSF is the highest SF number the agent may use: NVIDIA reserves
// sfnum >= 1000 for virtio-net-controller's hot-plugged devices.
const MaxSF = 999

// SFManager is the SF lifecycle the driver needs (network/sf.Manager).
type SFManager interface {
	Create(ctx context.Context, pf, sfnum int, mac string) (string, error)
	Delete(ctx context.Context, pf, sfnum int) error
}

// Network is the BlueField drivers.NetworkDriver.
type Network struct {
	finder representor.Finder
	sfs    SFManager
	card   drivers.Card
}

// NewNetwork uses sysfs under sysfsRoot and devlink through the kernel; card
// is [dpu] pfs and max_vfs_per_pf.
func NewNetwork(sysfsRoot string, card drivers.Card, log *zap.Logger) *Network {
	f := representor.Finder{Root: sysfsRoot, Controller: HostController}
	return NewNetworkWith(f, &sf.Manager{NL: &netlink.Handle{}, Finder: f, Controller: HostController, Log: log}, card)
}

// NewNetworkWith injects the representor finder and SF manager (tests).
func NewNetworkWith(f representor.Finder, sfs SFManager, card drivers.Card) *Network {
	return &Network{finder: f, sfs: sfs, card: card}
}

// ValidateFunction implements drivers.NetworkDriver: the PF must exist on
// this card (discovered from sysfs), the SF number must be ours to use.
func (n *Network) ValidateFunction(f nodestate.Function) error {
	if err := nodestate.ValidateFunction(f); err != nil {
		return err
	}
	if f.SF != nil && *f.SF > MaxSF {
		return fmt.Errorf("%w: function %s: sf numbers above %d are reserved for virtio-net-controller",
			errdefs.ErrInvalidArgument, f, MaxSF)
	}
	if err := n.card.Check(f); err != nil {
		return err
	}
	pfs, err := n.finder.PFs()
	if err != nil {
		return err
	}
	if !slices.Contains(pfs, f.PF) {
		return fmt.Errorf("%w: function %s: this card has PFs %v", errdefs.ErrInvalidArgument, f, pfs)
	}
	return nil
}

// Representor implements drivers.NetworkDriver.
func (n *Network) Representor(_ context.Context, f nodestate.Function) (string, error) {
	if err := n.ValidateFunction(f); err != nil {
		return "", err
	}
	return n.finder.Lookup(f)
}

// Prepare implements drivers.NetworkDriver: SFs are created and activated
// with the VIF's MAC; VFs and PFs belong to the host and are only looked up.
func (n *Network) Prepare(ctx context.Context, f nodestate.Function, mac string) (string, error) {
	if err := n.ValidateFunction(f); err != nil {
		return "", err
	}
	if f.SF != nil {
		return n.sfs.Create(ctx, f.PF, *f.SF, mac)
	}
	return n.finder.Lookup(f)
}

// Release implements drivers.NetworkDriver.
func (n *Network) Release(ctx context.Context, f nodestate.Function) error {
	if f.SF == nil {
		return nil
	}
	return n.sfs.Delete(ctx, f.PF, *f.SF)
}
