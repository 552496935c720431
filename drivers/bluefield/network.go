// Package bluefield is the NVIDIA BlueField DPU driver. Its network half
// finds representors by sysfs phys_port_name (c1pf0, c1pf0vf3, c1pf0sf88:
// the host's external controller 1) and creates SFs on that controller
// through devlink. The DPU's own functions (pf0sf0 = en3f0pf0sf0 in
// ovsbr1) are never used; see docs/bluefield-network.md.
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

// SFManager is the devlink side the driver needs (network/sf.Manager): the
// SF lifecycle and the host VFs' and SFs' MACs.
type SFManager interface {
	Create(ctx context.Context, pf, sfnum int, mac string) (string, error)
	Delete(ctx context.Context, pf, sfnum int) error
	SetVFMAC(ctx context.Context, rep, mac string) error
	FunctionMAC(ctx context.Context, rep string) (string, error)
}

// Network is the BlueField drivers.NetworkDriver.
type Network struct {
	finder representor.Finder
	sfs    SFManager
	card   drivers.Card
}

// NewNetwork is a BlueField in DPU mode: host functions on controller
// HostController, sysfs under sysfsRoot, devlink through the kernel; card
// is [dpu] pfs and max_vfs_per_pf.
func NewNetwork(sysfsRoot string, card drivers.Card, log *zap.Logger) *Network {
	return newNetwork(representor.Finder{Root: sysfsRoot, Controller: HostController}, card, log)
}

// NewLocalNetwork is a switchdev NIC inside the host itself (spdk-generic):
// its VFs and SFs are on the local controller and named without a
// controller prefix (pf0vf3, pf0sf88); SFs are added without one.
func NewLocalNetwork(sysfsRoot string, card drivers.Card, log *zap.Logger) *Network {
	return newNetwork(representor.Finder{Root: sysfsRoot, Local: true}, card, log)
}

func newNetwork(f representor.Finder, card drivers.Card, log *zap.Logger) *Network {
	return NewNetworkWith(f, &sf.Manager{NL: &netlink.Handle{}, Finder: f, Log: log}, card)
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
// with the VIF's MAC; a VF (the host makes it) gets the VIF's MAC through
// its devlink port function, so the server keeps its Neutron MAC on any
// machine; a PF is only looked up (re-MACing the host's PF under a running
// OS is not the agent's call).
func (n *Network) Prepare(ctx context.Context, f nodestate.Function, mac string) (string, error) {
	if err := n.ValidateFunction(f); err != nil {
		return "", err
	}
	if f.SF != nil {
		return n.sfs.Create(ctx, f.PF, *f.SF, mac)
	}
	rep, err := n.finder.Lookup(f)
	if err != nil || f.VF == nil {
		return rep, err
	}
	return rep, n.sfs.SetVFMAC(ctx, rep, mac)
}

// FunctionMAC implements network.MACReader: the hw_addr of a host VF's or
// SF's devlink port function. errdefs.ErrNotSupported for a host PF (Prepare
// never sets it), errdefs.ErrNotFound for a function that does not exist.
func (n *Network) FunctionMAC(ctx context.Context, f nodestate.Function) (string, error) {
	if err := n.ValidateFunction(f); err != nil {
		return "", err
	}
	if f.VF == nil && f.SF == nil {
		return "", fmt.Errorf("%w: the DPU does not set host PF %s's MAC", errdefs.ErrNotSupported, f)
	}
	rep, err := n.finder.Lookup(f)
	if err != nil {
		return "", err
	}
	return n.sfs.FunctionMAC(ctx, rep)
}

// Inventory lists, read-only, what the driver sees on the card: uplinks,
// host function representors and the ports that are not for host VIFs.
func (n *Network) Inventory() (representor.Inventory, error) { return n.finder.Inventory() }

// SFProber is an SF manager that can tell, read-only, whether SFs can be
// made (network/sf.Manager).
type SFProber interface {
	Probe(ctx context.Context) (sf.Support, error)
}

// ProbeSF reports, read-only, whether host SFs can be made on each uplink.
// errdefs.ErrNotSupported when the SF manager cannot probe.
func (n *Network) ProbeSF(ctx context.Context) (sf.Support, error) {
	p, ok := n.sfs.(SFProber)
	if !ok {
		return sf.Support{}, fmt.Errorf("%w: the SF manager %T cannot probe", errdefs.ErrNotSupported, n.sfs)
	}
	return p.Probe(ctx)
}

// Release implements drivers.NetworkDriver.
func (n *Network) Release(ctx context.Context, f nodestate.Function) error {
	if f.SF == nil {
		return nil
	}
	return n.sfs.Delete(ctx, f.PF, *f.SF)
}
