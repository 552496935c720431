// Package sim is the simulated DPU driver for demos and CI. Its network half
// names representors exactly like a BlueField (pf0vf3, pf0sf88) so that on
// OVS's dummy datapath they are ordinary Interfaces ovn-controller binds; SFs
// are "created" in memory with their MAC recorded, and so is the MAC given
// to a VF (what a BlueField sets through devlink), so the MAC the host would
// see can be read back (FunctionMAC).
package sim

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// DefaultPFs is how many PFs the simulated card has.
const DefaultPFs = 2

// Network is the sim drivers.NetworkDriver.
type Network struct {
	card drivers.Card

	mu  sync.Mutex
	sfs map[string]string // representor -> MAC of SFs that exist
	vfs map[string]string // representor -> MAC given to the VF
}

// NewNetwork returns a card with pfs PFs (DefaultPFs when pfs <= 0) and
// drivers.DefaultCard's VFs.
func NewNetwork(pfs int) *Network {
	if pfs <= 0 {
		pfs = DefaultPFs
	}
	return NewCardNetwork(drivers.Card{PFs: pfs, VFsPerPF: drivers.DefaultCard.VFsPerPF})
}

// NewCardNetwork returns a sim card shaped like card ([dpu] pfs, max_vfs_per_pf).
func NewCardNetwork(card drivers.Card) *Network {
	return &Network{card: card, sfs: map[string]string{}, vfs: map[string]string{}}
}

// ValidateFunction implements drivers.NetworkDriver.
func (n *Network) ValidateFunction(f nodestate.Function) error {
	if err := nodestate.ValidateFunction(f); err != nil {
		return err
	}
	return n.card.Check(f)
}

// Representor implements drivers.NetworkDriver: VFs and PFs always exist
// (the host made them); SFs only after Prepare.
func (n *Network) Representor(_ context.Context, f nodestate.Function) (string, error) {
	if err := n.ValidateFunction(f); err != nil {
		return "", err
	}
	name := repName(f)
	if f.IsSF() {
		n.mu.Lock()
		_, ok := n.sfs[name]
		n.mu.Unlock()
		if !ok {
			return "", fmt.Errorf("%w: sf %s not created", errdefs.ErrNotFound, name)
		}
	}
	return name, nil
}

// Prepare implements drivers.NetworkDriver like the BlueField driver: an SF
// is created with mac, a VF is given mac, a host PF's MAC is not the
// DPU's to set.
func (n *Network) Prepare(_ context.Context, f nodestate.Function, mac string) (string, error) {
	if err := n.ValidateFunction(f); err != nil {
		return "", err
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return "", fmt.Errorf("%w: function %s mac %q: %w", errdefs.ErrInvalidArgument, f, mac, err)
	}
	name := repName(f)
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case f.IsSF():
		n.sfs[name] = hw.String()
	case f.VF != nil:
		n.vfs[name] = hw.String()
	}
	return name, nil
}

// FunctionMAC implements network.MACReader: the MAC Prepare gave an SF or
// a VF ("" for a VF given none since the driver started, like a reset
// card's). errdefs.ErrNotFound for an SF that does not exist,
// errdefs.ErrNotSupported for a host PF (its MAC is the host's).
func (n *Network) FunctionMAC(_ context.Context, f nodestate.Function) (string, error) {
	if err := n.ValidateFunction(f); err != nil {
		return "", err
	}
	name := repName(f)
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case f.IsSF():
		mac, ok := n.sfs[name]
		if !ok {
			return "", fmt.Errorf("%w: sf %s not created", errdefs.ErrNotFound, name)
		}
		return mac, nil
	case f.VF != nil:
		return n.vfs[name], nil
	}
	return "", fmt.Errorf("%w: the DPU does not set host PF %s's MAC", errdefs.ErrNotSupported, name)
}

// Release implements drivers.NetworkDriver.
func (n *Network) Release(_ context.Context, f nodestate.Function) error {
	if f.IsSF() {
		n.mu.Lock()
		delete(n.sfs, repName(f))
		n.mu.Unlock()
	}
	return nil
}

// SFs returns the SFs that exist now, representor -> MAC (for tests and status).
func (n *Network) SFs() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]string, len(n.sfs))
	for k, v := range n.sfs {
		out[k] = v
	}
	return out
}

// repName is BlueField's representor netdev name for f: the function's
// name, except that the host PF's is pf<N>hpf (udev's name for it).
func repName(f nodestate.Function) string {
	if f.VF == nil && f.SF == nil {
		return f.String() + "hpf"
	}
	return f.String()
}
