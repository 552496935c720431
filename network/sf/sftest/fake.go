// Package sftest fakes devlink over a representortest.Card: every
// representor of the card is a devlink port (physical, pcipf, pcivf, pcisf),
// and SF ports added or deleted through it appear in (and vanish from) the
// card's sysfs the way mlx5 SF representors do. It checks what the mlx5
// driver checks on "devlink port add" (docs/bluefield-network.md).
package sftest

import (
	"fmt"
	"net"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"

	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
)

// Netlink is a fake devlink. Safe for concurrent use.
type Netlink struct {
	Card *representortest.Card

	mu    sync.Mutex
	index map[string]uint32 // netdev -> port index, stable while it exists
	fns   map[string]*netlink.DevlinkPortFn
	made  map[string]bool // SF ports added through the fake
	next  uint32
	calls []string
	// FailFnSet, when set, makes DevlinkPortFnSet fail (to test rollback).
	FailFnSet error
	// EswitchMode is what DevLinkGetDeviceByName reports ("switchdev").
	EswitchMode string
}

// NewNetlink returns a fake over card. The DPU's own SFs already exist,
// active, with MAC 02:00:00:00:0<pf>:00.
func NewNetlink(card *representortest.Card) *Netlink {
	f := &Netlink{Card: card, index: map[string]uint32{}, fns: map[string]*netlink.DevlinkPortFn{},
		made: map[string]bool{}, next: 32768, EswitchMode: "switchdev"}
	for _, r := range card.Reps() {
		if p, ok := representor.ParsePortName(r.PortName); ok && p.Kind == representor.SF {
			f.fns[r.Netdev] = &netlink.DevlinkPortFn{HwAddr: net.HardwareAddr{2, 0, 0, 0, byte(p.PF), byte(p.Num)},
				State: nl.DEVLINK_PORT_FN_STATE_ACTIVE, OpState: nl.DEVLINK_PORT_FN_OPSTATE_ATTACHED}
		}
	}
	return f
}

// SFRepName is the netdev the fake gives a new SF representor: the udev
// style en3f<pf>pf<pf>sf<n> on the local controller, en3f<pf>c<c>pf<pf>sf<n>
// on an external one. (The agent never relies on netdev names.)
func SFRepName(controller, pf, sfnum int) string {
	if controller == 0 {
		return fmt.Sprintf("en3f%dpf%dsf%d", pf, pf, sfnum)
	}
	return fmt.Sprintf("en3f%dc%dpf%dsf%d", pf, controller, pf, sfnum)
}

func (f *Netlink) pfOf(bus, device string) (int, bool) {
	if bus != "pci" {
		return 0, false
	}
	for pf := 0; pf < f.Card.PFs(); pf++ {
		if representortest.UplinkPCI(pf) == device {
			return pf, true
		}
	}
	return 0, false
}

// DevLinkPortAdd creates an SF port and its representor. Like mlx5 it
// refuses other flavours, a missing sfnum, a pfnum that is not the device's
// own, an external controller where there is none, and an sfnum already
// used on the same controller (SF numbers are per controller: host SF 0
// and the DPU's SF 0 coexist).
func (f *Netlink) DevLinkPortAdd(bus, device string, flavour uint16, a netlink.DevLinkPortAddAttrs) (*netlink.DevlinkPort, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("add %s/%s flavour %d pfnum %d sfnum %d controller %d(valid=%v)",
		bus, device, flavour, a.PfNumber, a.SfNumber, a.Controller, a.ControllerValid))
	pf, ok := f.pfOf(bus, device)
	switch {
	case !ok:
		return nil, fmt.Errorf("fake devlink: no device %s/%s (ENODEV)", bus, device)
	case flavour != nl.DEVLINK_PORT_FLAVOUR_PCI_SF:
		return nil, fmt.Errorf("fake devlink: only SF ports can be added (EOPNOTSUPP)")
	case !a.SfNumberValid:
		return nil, fmt.Errorf("fake devlink: sfnum required (EOPNOTSUPP)")
	case int(a.PfNumber) != pf:
		return nil, fmt.Errorf("fake devlink: invalid pfnum %d for %s (EOPNOTSUPP)", a.PfNumber, device)
	case f.EswitchMode != "switchdev":
		return nil, fmt.Errorf("fake devlink: eswitch not in switchdev mode (EOPNOTSUPP)")
	}
	ctrl := 0
	if a.ControllerValid {
		ctrl = int(a.Controller)
	}
	if ctrl != 0 && (f.Card.Layout() != representortest.BlueField || ctrl != representortest.HostController) {
		return nil, fmt.Errorf("fake devlink: external controller %d is unsupported (EOPNOTSUPP)", ctrl)
	}
	for _, r := range f.Card.Reps() {
		p, ok := representor.ParsePortName(r.PortName)
		if ok && p.Kind == representor.SF && r.PF == pf && p.Num == int(a.SfNumber) && max(p.Controller, 0) == ctrl {
			return nil, fmt.Errorf("fake devlink: sfnum %d exists on controller %d (EEXIST)", a.SfNumber, ctrl)
		}
	}
	name, portName := SFRepName(ctrl, pf, int(a.SfNumber)), fmt.Sprintf("pf%dsf%d", pf, a.SfNumber)
	if ctrl != 0 {
		portName = fmt.Sprintf("c%d%s", ctrl, portName)
	}
	if err := f.Card.AddRep(representortest.Rep{Netdev: name, PortName: portName, PF: pf}); err != nil {
		return nil, err
	}
	f.made[name] = true
	f.fns[name] = &netlink.DevlinkPortFn{}
	return f.port(representortest.Rep{Netdev: name, PortName: portName, PF: pf}), nil
}

// port builds the devlink view of r; f.mu held.
func (f *Netlink) port(r representortest.Rep) *netlink.DevlinkPort {
	idx, ok := f.index[r.Netdev]
	if !ok {
		idx = f.next
		f.next++
		f.index[r.Netdev] = idx
	}
	p := &netlink.DevlinkPort{BusName: "pci", DeviceName: representortest.UplinkPCI(r.PF), PortIndex: idx,
		PortType: nl.DEVLINK_PORT_TYPE_ETH, NetdeviceName: r.Netdev}
	if rp, ok := representor.ParsePortName(r.PortName); ok {
		switch rp.Kind {
		case representor.Uplink:
			p.PortFlavour = nl.DEVLINK_PORT_FLAVOUR_PHYSICAL
		case representor.HostPF:
			p.PortFlavour = nl.DEVLINK_PORT_FLAVOUR_PCI_PF
		case representor.VF:
			p.PortFlavour = nl.DEVLINK_PORT_FLAVOUR_PCI_VF
		case representor.SF:
			p.PortFlavour = nl.DEVLINK_PORT_FLAVOUR_PCI_SF
		}
	}
	if fn, ok := f.fns[r.Netdev]; ok {
		cp := *fn
		cp.HwAddr = append(net.HardwareAddr(nil), fn.HwAddr...)
		p.Fn = &cp
	}
	return p
}

func (f *Netlink) byIndex(bus, device string, idx uint32) (representortest.Rep, bool) {
	for name, i := range f.index {
		if i != idx {
			continue
		}
		r, ok := f.Card.Rep(name)
		if ok && bus == "pci" && device == representortest.UplinkPCI(r.PF) {
			return r, true
		}
	}
	return representortest.Rep{}, false
}

// DevLinkPortDel removes an SF port and its representor.
func (f *Netlink) DevLinkPortDel(bus, device string, idx uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("del %s/%s/%d", bus, device, idx))
	r, ok := f.byIndex(bus, device, idx)
	if !ok {
		return fmt.Errorf("fake devlink: no port %d (ENODEV)", idx)
	}
	if p, _ := representor.ParsePortName(r.PortName); p.Kind != representor.SF {
		return fmt.Errorf("fake devlink: port %d is no SF (EOPNOTSUPP)", idx)
	}
	delete(f.index, r.Netdev)
	delete(f.fns, r.Netdev)
	delete(f.made, r.Netdev)
	return f.Card.Remove(r.Netdev)
}

// DevlinkPortFnSet records hw_addr/state on the port.
func (f *Netlink) DevlinkPortFnSet(bus, device string, idx uint32, a netlink.DevlinkPortFnSetAttrs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("fnset %s/%s/%d hw=%v state=%v", bus, device, idx, a.HwAddrValid, a.StateValid))
	if f.FailFnSet != nil {
		return f.FailFnSet
	}
	r, ok := f.byIndex(bus, device, idx)
	if !ok {
		return fmt.Errorf("fake devlink: no port %d", idx)
	}
	fn, ok := f.fns[r.Netdev]
	if !ok {
		fn = &netlink.DevlinkPortFn{}
		f.fns[r.Netdev] = fn
	}
	if a.HwAddrValid {
		fn.HwAddr = append(net.HardwareAddr(nil), a.FnAttrs.HwAddr...)
	}
	if a.StateValid {
		fn.State = a.FnAttrs.State
		fn.OpState = a.FnAttrs.State // attached once active, in the fake
	}
	return nil
}

// DevLinkGetAllPortList lists a port per representor of the card.
func (f *Netlink) DevLinkGetAllPortList() ([]*netlink.DevlinkPort, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*netlink.DevlinkPort
	for _, r := range f.Card.Reps() {
		out = append(out, f.port(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PortIndex < out[j].PortIndex })
	return out, nil
}

// DevLinkGetDeviceByName reports the eswitch mode of an uplink's device.
func (f *Netlink) DevLinkGetDeviceByName(bus, device string) (*netlink.DevlinkDevice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.pfOf(bus, device); !ok {
		return nil, fmt.Errorf("fake devlink: no device %s/%s (ENODEV)", bus, device)
	}
	return &netlink.DevlinkDevice{BusName: bus, DeviceName: device,
		Attrs: netlink.DevlinkDevAttrs{Eswitch: netlink.DevlinkDevEswitchAttr{Mode: f.EswitchMode}}}, nil
}

// Calls returns the calls made so far, in order.
func (f *Netlink) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Port returns the devlink port of netdev.
func (f *Netlink) Port(netdev string) (*netlink.DevlinkPort, bool) {
	r, ok := f.Card.Rep(netdev)
	if !ok {
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.port(r), true
}

// Made returns the SF ports added through the fake and not deleted, sorted
// by netdev.
func (f *Netlink) Made() []*netlink.DevlinkPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*netlink.DevlinkPort
	for _, r := range f.Card.Reps() {
		if f.made[r.Netdev] {
			out = append(out, f.port(r))
		}
	}
	return out
}
