// Package representortest builds fake sysfs trees of switchdev NICs for the
// representor lookup and everything above it. The default layout is a
// BlueField in DPU mode after a stock BFB install, as described in
// docs/bluefield-network.md:
//
//	p0, p1                 uplinks (phys_port_name p0/p1, device -> 0000:03:00.0/.1)
//	pf0hpf, pf1hpf         host PFs (c1pf0, c1pf1: external controller 1)
//	pf0vf0.. (EnableVFs)   host VFs (c1pf0vf0..), only once the host enabled SR-IOV
//	en3f0pf0sf0, en3f1pf1sf0  the DPU's own SFs (pf0sf0, pf1sf0: local controller),
//	                       which NVIDIA's default OVS config puts in ovsbr1/ovsbr2
//	oob_net0, tmfifo_net0, enp3s0f0s0, enp3s0f1s1  plain netdevs, no phys_port_name
//
// All representors of the card share one phys_switch_id (mlx5 reports the
// NIC's system image GUID for every port of both eswitches).
package representortest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// HostController is the controller number of the bare-metal host's
// functions on a BlueField in DPU mode.
const HostController = 1

// Layout selects what kind of card the tree imitates.
type Layout int

const (
	// BlueField in DPU (ECPF) mode on a kernel with the devlink controller
	// attribute: host functions are c1pf0, c1pf0vf3, c1pf0sf88.
	BlueField Layout = iota
	// BlueFieldLegacy is a BlueField on a kernel that predates the
	// controller attribute: host functions are pf0, pf0vf3 (no host SFs).
	BlueFieldLegacy
	// SwitchdevNIC is a NIC in switchdev mode inside the host itself
	// (spdk-generic): uplinks and local VFs/SFs, no host PF representors,
	// no external controller.
	SwitchdevNIC
)

// Options of a fake card; the zero value is a dual-port BlueField with its
// default SFs.
type Options struct {
	Layout Layout
	// PFs is the number of ports/PFs (default 2).
	PFs int
	// NoDPUSFs leaves out the DPU's own SFs en3f<N>pf<N>sf0.
	NoDPUSFs bool
	// SwitchIDPerPF gives each eswitch its own phys_switch_id, as kernels
	// before the system-image-GUID switch id did (pre 2018).
	SwitchIDPerPF bool
}

// Card is a fake sysfs tree. Its methods change it the way the kernel would
// (representors appearing and vanishing); safe for concurrent use.
type Card struct {
	Root string
	opts Options

	mu   sync.Mutex
	reps map[string]Rep // netdev -> representor
}

// Rep is one representor netdev of the card.
type Rep struct {
	Netdev   string
	PortName string // phys_port_name
	PF       int    // the eswitch (uplink PCI function) it belongs to
}

// New writes a card under root/class/net (and root/devices for the PCI
// device links).
func New(root string, o Options) (*Card, error) {
	if o.PFs == 0 {
		o.PFs = 2
	}
	c := &Card{Root: root, opts: o, reps: map[string]Rep{}}
	for pf := 0; pf < o.PFs; pf++ {
		if err := c.addRep(Rep{Netdev: fmt.Sprintf("p%d", pf), PortName: fmt.Sprintf("p%d", pf), PF: pf}); err != nil {
			return nil, err
		}
		switch o.Layout {
		case BlueField:
			if err := c.addRep(Rep{Netdev: fmt.Sprintf("pf%dhpf", pf), PortName: fmt.Sprintf("c%dpf%d", HostController, pf), PF: pf}); err != nil {
				return nil, err
			}
		case BlueFieldLegacy:
			if err := c.addRep(Rep{Netdev: fmt.Sprintf("pf%dhpf", pf), PortName: fmt.Sprintf("pf%d", pf), PF: pf}); err != nil {
				return nil, err
			}
		}
		if o.Layout != SwitchdevNIC && !o.NoDPUSFs {
			// The DPU's own SF 0 of each PF, created on the local
			// controller by the BFB's SF configuration.
			if err := c.addRep(Rep{Netdev: DPUSF(pf), PortName: fmt.Sprintf("pf%dsf0", pf), PF: pf}); err != nil {
				return nil, err
			}
			if err := c.plain(fmt.Sprintf("enp3s0f%ds%d", pf, pf)); err != nil {
				return nil, err
			}
		}
	}
	plains := []string{"lo"}
	if o.Layout != SwitchdevNIC {
		plains = append(plains, "oob_net0", "tmfifo_net0")
	}
	for _, n := range plains {
		if err := c.plain(n); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// DPUSF is the netdev of the DPU's own SF 0 representor on PF pf.
func DPUSF(pf int) string { return fmt.Sprintf("en3f%dpf%dsf0", pf, pf) }

// UplinkPCI is the PCI address of PF pf (the devlink handle of its eswitch).
func UplinkPCI(pf int) string { return fmt.Sprintf("0000:03:00.%d", pf) }

// SwitchID is the phys_switch_id of PF pf's eswitch.
func (c *Card) SwitchID(pf int) string {
	if c.opts.SwitchIDPerPF {
		return fmt.Sprintf("b8cef603%08x", pf)
	}
	return "b8cef60300a1b2c3"
}

// Layout returns the card's layout.
func (c *Card) Layout() Layout { return c.opts.Layout }

// PFs returns the number of PFs.
func (c *Card) PFs() int { return c.opts.PFs }

// HostVFName is the phys_port_name of host VF vf of PF pf on this card.
func (c *Card) HostVFName(pf, vf int) string {
	if c.opts.Layout == BlueField {
		return fmt.Sprintf("c%dpf%dvf%d", HostController, pf, vf)
	}
	return fmt.Sprintf("pf%dvf%d", pf, vf)
}

// EnableVFs is the host writing n to sriov_numvfs of PF pf: representors
// pf<pf>vf0..n-1 appear (and any beyond n vanish).
func (c *Card) EnableVFs(pf, n int) error {
	if pf < 0 || pf >= c.opts.PFs {
		return fmt.Errorf("representortest: no pf %d", pf)
	}
	if err := c.DisableVFs(pf); err != nil {
		return err
	}
	for vf := 0; vf < n; vf++ {
		if err := c.addRep(Rep{Netdev: fmt.Sprintf("pf%dvf%d", pf, vf), PortName: c.HostVFName(pf, vf), PF: pf}); err != nil {
			return err
		}
	}
	return nil
}

// DisableVFs is the host writing 0 to sriov_numvfs of PF pf.
func (c *Card) DisableVFs(pf int) error {
	prefix := fmt.Sprintf("pf%dvf", pf)
	for _, r := range c.Reps() {
		if r.PF == pf && strings.HasPrefix(r.Netdev, prefix) {
			if err := c.Remove(r.Netdev); err != nil {
				return err
			}
		}
	}
	return nil
}

// AddRep makes a representor appear (an SF the fake devlink created, the
// DPU's own VF, ...).
func (c *Card) AddRep(r Rep) error {
	if r.PF < 0 || r.PF >= c.opts.PFs {
		return fmt.Errorf("representortest: no pf %d", r.PF)
	}
	c.mu.Lock()
	_, dup := c.reps[r.Netdev]
	c.mu.Unlock()
	if dup {
		return fmt.Errorf("representortest: netdev %s exists", r.Netdev)
	}
	return c.addRep(r)
}

// Remove makes a representor vanish.
func (c *Card) Remove(netdev string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.reps[netdev]; !ok {
		return fmt.Errorf("representortest: no netdev %s", netdev)
	}
	delete(c.reps, netdev)
	return os.RemoveAll(filepath.Join(c.Root, "class", "net", netdev))
}

// Reps lists the representors, sorted by netdev.
func (c *Card) Reps() []Rep {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Rep, 0, len(c.reps))
	for _, r := range c.reps {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Netdev < out[j].Netdev })
	return out
}

// Rep returns the representor named netdev.
func (c *Card) Rep(netdev string) (Rep, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.reps[netdev]
	return r, ok
}

func (c *Card) addRep(r Rep) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := filepath.Join(c.Root, "class", "net", r.Netdev)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "phys_port_name"), []byte(r.PortName+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "phys_switch_id"), []byte(c.SwitchID(r.PF)+"\n"), 0o644); err != nil {
		return err
	}
	// Every representor of an eswitch hangs off its manager's PCI function.
	pci := filepath.Join(c.Root, "devices", "pci0000:00", UplinkPCI(r.PF))
	if err := os.MkdirAll(pci, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(d, pci)
	if err != nil {
		return err
	}
	if err := os.Symlink(rel, filepath.Join(d, "device")); err != nil {
		return err
	}
	c.reps[r.Netdev] = r
	return nil
}

// plain writes a netdev without phys_port_name/phys_switch_id.
func (c *Card) plain(netdev string) error {
	return os.MkdirAll(filepath.Join(c.Root, "class", "net", netdev), 0o755)
}
