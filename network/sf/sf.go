// Package sf creates and removes scalable functions (SFs) on the DPU's
// eswitch through devlink, the kernel's vendor-neutral API:
//
//	devlink port add pci/<uplink pci> flavour pcisf pfnum N sfnum K controller C
//	devlink port function set <port> hw_addr <mac> state active
//	devlink port function set <port> state inactive; devlink port del <port>
//
// SFs are made on the host's controller (Finder.Controller, 1 on a
// BlueField; no controller attribute when Finder.Local). SF numbers are per
// controller, so the host's SF 0 (c1pf0sf0) and the DPU's own SF 0 (pf0sf0,
// en3f0pf0sf0 in ovsbr1) are different ports; this package only ever finds,
// changes or deletes the host's.
package sf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Netlink is the part of vishvananda/netlink's devlink API the manager uses;
// *netlink.Handle implements it, sftest fakes it.
type Netlink interface {
	DevLinkPortAdd(bus, device string, flavour uint16, attrs netlink.DevLinkPortAddAttrs) (*netlink.DevlinkPort, error)
	DevLinkPortDel(bus, device string, portIndex uint32) error
	DevlinkPortFnSet(bus, device string, portIndex uint32, attrs netlink.DevlinkPortFnSetAttrs) error
	DevLinkGetAllPortList() ([]*netlink.DevlinkPort, error)
	DevLinkGetDeviceByName(bus, device string) (*netlink.DevlinkDevice, error)
}

// Manager is the SF lifecycle on one eswitch.
type Manager struct {
	NL Netlink
	// Finder finds the host's SF representors; its Controller (or Local)
	// is also the controller SFs are created on.
	Finder representor.Finder
	Log    *zap.Logger
}

// Create makes SF sfnum of PF pf exist with hw_addr mac and state active, and
// returns its representor. An SF that already exists is only (re)configured.
func (m *Manager) Create(ctx context.Context, pf, sfnum int, mac string) (string, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return "", fmt.Errorf("%w: sf mac %q: %w", errdefs.ErrInvalidArgument, mac, err)
	}
	fn := nodestate.Function{PF: pf, SF: &sfnum}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if rep, err := m.Finder.Lookup(fn); err == nil {
		port, err := m.portOf(rep)
		if err != nil {
			return "", err
		}
		return rep, m.activate(port, hw)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return "", err
	}
	pci, err := m.uplinkPCI(pf)
	if err != nil {
		return "", err
	}
	attrs := netlink.DevLinkPortAddAttrs{PfNumber: uint16(pf), SfNumber: uint32(sfnum), SfNumberValid: true}
	ctrl := ""
	if !m.Finder.Local {
		// Without it the SF would land on the DPU's own controller.
		attrs.Controller, attrs.ControllerValid = uint32(m.Finder.Controller), true
		ctrl = fmt.Sprintf(" controller %d", m.Finder.Controller)
	}
	port, err := m.NL.DevLinkPortAdd("pci", pci, nl.DEVLINK_PORT_FLAVOUR_PCI_SF, attrs)
	if err != nil {
		return "", fmt.Errorf("%w: devlink port add pci/%s pcisf pfnum %d sfnum %d%s: %w", errdefs.ErrNetwork, pci, pf, sfnum, ctrl, err)
	}
	if err := m.activate(port, hw); err != nil {
		// Leave nothing half-made behind.
		if derr := m.NL.DevLinkPortDel(port.BusName, port.DeviceName, port.PortIndex); derr != nil {
			m.Log.Warn("rollback of sf port failed", zap.Int("pf", pf), zap.Int("sf", sfnum), zap.Error(derr))
		}
		return "", err
	}
	if rep, err := m.Finder.Lookup(fn); err == nil {
		return rep, nil
	}
	if port.NetdeviceName == "" {
		return "", fmt.Errorf("%w: sf pf%dsf%d created but has no representor netdev", errdefs.ErrNetwork, pf, sfnum)
	}
	return port.NetdeviceName, nil
}

// Delete deactivates and removes SF sfnum of PF pf. A missing SF is success.
func (m *Manager) Delete(ctx context.Context, pf, sfnum int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rep, err := m.Finder.Lookup(nodestate.Function{PF: pf, SF: &sfnum})
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	port, err := m.portOf(rep)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.NL.DevlinkPortFnSet(port.BusName, port.DeviceName, port.PortIndex, netlink.DevlinkPortFnSetAttrs{
		FnAttrs: netlink.DevlinkPortFn{State: nl.DEVLINK_PORT_FN_STATE_INACTIVE}, StateValid: true,
	}); err != nil {
		return fmt.Errorf("%w: deactivate sf %s: %w", errdefs.ErrNetwork, rep, err)
	}
	if err := m.NL.DevLinkPortDel(port.BusName, port.DeviceName, port.PortIndex); err != nil {
		return fmt.Errorf("%w: devlink port del %s/%s/%d: %w", errdefs.ErrNetwork, port.BusName, port.DeviceName, port.PortIndex, err)
	}
	return nil
}

// SetVFMAC gives the host VF represented by rep the MAC mac through its
// devlink port function (hw_addr), so the host's NIC carries the Neutron
// port's MAC whatever machine it runs on: the host cannot set it itself (it
// does not own the eswitch). Nothing is sent when the function already has
// it, so a running host's VF is not touched again.
func (m *Manager) SetVFMAC(ctx context.Context, rep, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fmt.Errorf("%w: vf mac %q: %w", errdefs.ErrInvalidArgument, mac, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	ports, err := m.NL.DevLinkGetAllPortList()
	if err != nil {
		return fmt.Errorf("%w: devlink port list: %w", errdefs.ErrNetwork, err)
	}
	i := slices.IndexFunc(ports, func(p *netlink.DevlinkPort) bool {
		return p.NetdeviceName == rep && p.PortFlavour == nl.DEVLINK_PORT_FLAVOUR_PCI_VF
	})
	if i < 0 {
		return fmt.Errorf("%w: no devlink vf port has netdev %s", errdefs.ErrNotFound, rep)
	}
	port := ports[i]
	if port.Fn != nil && bytes.Equal(port.Fn.HwAddr, hw) {
		return nil
	}
	if err := m.NL.DevlinkPortFnSet(port.BusName, port.DeviceName, port.PortIndex, netlink.DevlinkPortFnSetAttrs{
		FnAttrs: netlink.DevlinkPortFn{HwAddr: hw}, HwAddrValid: true,
	}); err != nil {
		return fmt.Errorf("%w: devlink port function set %s/%s/%d hw_addr %s: %w",
			errdefs.ErrNetwork, port.BusName, port.DeviceName, port.PortIndex, hw, err)
	}
	m.Log.Info("set host vf mac", zap.String("representor", rep), zap.String("mac", hw.String()))
	return nil
}

// FunctionMAC returns the hw_addr of the host VF's or SF's devlink port
// function whose representor is rep: the MAC the host's NIC gets. "" when
// the function has none set.
func (m *Manager) FunctionMAC(ctx context.Context, rep string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	ports, err := m.NL.DevLinkGetAllPortList()
	if err != nil {
		return "", fmt.Errorf("%w: devlink port list: %w", errdefs.ErrNetwork, err)
	}
	i := slices.IndexFunc(ports, func(p *netlink.DevlinkPort) bool {
		return p.NetdeviceName == rep &&
			(p.PortFlavour == nl.DEVLINK_PORT_FLAVOUR_PCI_VF || p.PortFlavour == nl.DEVLINK_PORT_FLAVOUR_PCI_SF)
	})
	if i < 0 {
		return "", fmt.Errorf("%w: no devlink vf or sf port has netdev %s", errdefs.ErrNotFound, rep)
	}
	if fn := ports[i].Fn; fn != nil && len(fn.HwAddr) > 0 {
		return fn.HwAddr.String(), nil
	}
	return "", nil
}

func (m *Manager) activate(port *netlink.DevlinkPort, hw net.HardwareAddr) error {
	if err := m.NL.DevlinkPortFnSet(port.BusName, port.DeviceName, port.PortIndex, netlink.DevlinkPortFnSetAttrs{
		FnAttrs:     netlink.DevlinkPortFn{HwAddr: hw, State: nl.DEVLINK_PORT_FN_STATE_ACTIVE},
		HwAddrValid: true, StateValid: true,
	}); err != nil {
		return fmt.Errorf("%w: devlink port function set %s/%s/%d hw_addr %s state active: %w",
			errdefs.ErrNetwork, port.BusName, port.DeviceName, port.PortIndex, hw, err)
	}
	return nil
}

// portOf finds the devlink port whose netdev is rep. (netlink v1.3.1 does
// not expose pfnum/sfnum of a port, so the netdev is the join key.)
func (m *Manager) portOf(rep string) (*netlink.DevlinkPort, error) {
	ports, err := m.NL.DevLinkGetAllPortList()
	if err != nil {
		return nil, fmt.Errorf("%w: devlink port list: %w", errdefs.ErrNetwork, err)
	}
	for _, p := range ports {
		if p.NetdeviceName == rep && p.PortFlavour == nl.DEVLINK_PORT_FLAVOUR_PCI_SF {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: no devlink sf port has netdev %s", errdefs.ErrNotFound, rep)
}

func (m *Manager) uplinkPCI(pf int) (string, error) {
	ports, err := m.Finder.Ports()
	if err != nil {
		return "", err
	}
	for _, p := range ports {
		if p.Kind == representor.Uplink && p.PF == pf {
			return m.Finder.PCIAddress(p.Netdev)
		}
	}
	return "", fmt.Errorf("%w: no uplink representor for pf %d", errdefs.ErrNotFound, pf)
}
