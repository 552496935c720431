// Package sftest fakes the devlink side of SF handling: a Netlink whose SF
// ports appear in (and vanish from) a fake sysfs tree the way mlx5 SF
// representors do on a BlueField.
package sftest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// MakeCard writes a BlueField-like sysfs tree under root: uplinks p<N> (with a
// PCI device link 0000:03:00.<N>) and host PF representors pf<N>hpf, one
// eswitch per PF.
func MakeCard(root string, pfs int) error {
	for pf := 0; pf < pfs; pf++ {
		sw := fmt.Sprintf("b8cef6%06d", pf)
		if err := writeDev(root, fmt.Sprintf("p%d", pf), fmt.Sprintf("p%d", pf), sw); err != nil {
			return err
		}
		dev := filepath.Join(root, "class", "net", fmt.Sprintf("p%d", pf), "device")
		if err := os.Symlink(fmt.Sprintf("../../../devices/pci0000:00/0000:03:00.%d", pf), dev); err != nil {
			return err
		}
		if err := writeDev(root, fmt.Sprintf("pf%dhpf", pf), fmt.Sprintf("c1pf%d", pf), sw); err != nil {
			return err
		}
	}
	return nil
}

func writeDev(root, netdev, portName, switchID string) error {
	d := filepath.Join(root, "class", "net", netdev)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "phys_port_name"), []byte(portName+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "phys_switch_id"), []byte(switchID+"\n"), 0o644)
}

// Netlink is a fake devlink. Safe for concurrent use.
type Netlink struct {
	Root string // sysfs tree made by MakeCard

	mu    sync.Mutex
	ports map[uint32]*netlink.DevlinkPort
	next  uint32
	calls []string
	// FailFnSet, when set, makes DevlinkPortFnSet fail (to test rollback).
	FailFnSet error
}

// NewNetlink returns an empty fake over root.
func NewNetlink(root string) *Netlink {
	return &Netlink{Root: root, ports: map[uint32]*netlink.DevlinkPort{}, next: 32768}
}

// DevLinkPortAdd creates an SF port and its representor en3f<pf>pf<pf>sf<sf>.
func (f *Netlink) DevLinkPortAdd(bus, device string, flavour uint16, a netlink.DevLinkPortAddAttrs) (*netlink.DevlinkPort, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("add %s/%s flavour %d pfnum %d sfnum %d controller %d", bus, device, flavour, a.PfNumber, a.SfNumber, a.Controller))
	if flavour != nl.DEVLINK_PORT_FLAVOUR_PCI_SF || !a.SfNumberValid {
		return nil, fmt.Errorf("fake devlink: only pcisf ports with an sfnum")
	}
	for _, p := range f.ports {
		if p.NetdeviceName == repName(a) {
			return nil, fmt.Errorf("fake devlink: sfnum %d exists (EEXIST)", a.SfNumber)
		}
	}
	sw, err := os.ReadFile(filepath.Join(f.Root, "class", "net", fmt.Sprintf("p%d", a.PfNumber), "phys_switch_id"))
	if err != nil {
		return nil, fmt.Errorf("fake devlink: no pf %d: %w", a.PfNumber, err)
	}
	p := &netlink.DevlinkPort{BusName: bus, DeviceName: device, PortIndex: f.next, PortFlavour: flavour,
		NetdeviceName: repName(a), Fn: &netlink.DevlinkPortFn{}}
	f.next++
	if err := writeDev(f.Root, p.NetdeviceName, fmt.Sprintf("c%dpf%dsf%d", a.Controller, a.PfNumber, a.SfNumber), strings.TrimSpace(string(sw))); err != nil {
		return nil, err
	}
	f.ports[p.PortIndex] = p
	cp := *p
	return &cp, nil
}

func repName(a netlink.DevLinkPortAddAttrs) string {
	return fmt.Sprintf("en3f%dpf%dsf%d", a.PfNumber, a.PfNumber, a.SfNumber)
}

// DevLinkPortDel removes a port and its representor.
func (f *Netlink) DevLinkPortDel(bus, device string, idx uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("del %s/%s/%d", bus, device, idx))
	p, ok := f.ports[idx]
	if !ok {
		return fmt.Errorf("fake devlink: no port %d (ENODEV)", idx)
	}
	delete(f.ports, idx)
	return os.RemoveAll(filepath.Join(f.Root, "class", "net", p.NetdeviceName))
}

// DevlinkPortFnSet records hw_addr/state on the port.
func (f *Netlink) DevlinkPortFnSet(bus, device string, idx uint32, a netlink.DevlinkPortFnSetAttrs) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("fnset %s/%s/%d hw=%v state=%v", bus, device, idx, a.HwAddrValid, a.StateValid))
	if f.FailFnSet != nil {
		return f.FailFnSet
	}
	p, ok := f.ports[idx]
	if !ok {
		return fmt.Errorf("fake devlink: no port %d", idx)
	}
	if a.HwAddrValid {
		p.Fn.HwAddr = a.FnAttrs.HwAddr
	}
	if a.StateValid {
		p.Fn.State = a.FnAttrs.State
	}
	return nil
}

// DevLinkGetAllPortList lists the ports.
func (f *Netlink) DevLinkGetAllPortList() ([]*netlink.DevlinkPort, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*netlink.DevlinkPort, 0, len(f.ports))
	for _, p := range f.ports {
		cp := *p
		fn := *p.Fn
		cp.Fn = &fn
		out = append(out, &cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PortIndex < out[j].PortIndex })
	return out, nil
}

// Calls returns the calls made so far, in order.
func (f *Netlink) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Ports returns a copy of the current ports.
func (f *Netlink) Ports() []*netlink.DevlinkPort {
	ps, _ := f.DevLinkGetAllPortList()
	return ps
}
