package sf

import (
	"context"
	"fmt"
	"sort"

	"github.com/vishvananda/netlink/nl"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
)

// Support is the read-only answer to "can the agent make host SFs here",
// per uplink (eswitch).
type Support struct {
	Devices []DeviceSupport
}

// DeviceSupport is one eswitch's SF readiness.
type DeviceSupport struct {
	PF     int
	Uplink string
	// PCI is the devlink handle (pci/<PCI>) SFs would be added on.
	PCI string
	// EswitchMode as devlink reports it; SFs need "switchdev".
	EswitchMode string
	// DevlinkPorts is how many devlink ports the device has; 0 means
	// devlink does not know the device (wrong PCI address, no devlink).
	DevlinkPorts int
	// HostSFs and OtherSFs are the existing pcisf ports with a netdev:
	// the host's (what Lookup returns) and the rest (the DPU's own SFs,
	// such as en3f0pf0sf0, which the agent never touches).
	HostSFs  []string
	OtherSFs []string
	// Ready is true when the agent could add host SFs as far as a
	// read-only look can tell: the device is in devlink, in switchdev
	// mode, and host function representors are named for the finder's
	// controller. Problems lists why not.
	Ready    bool
	Problems []string
}

// Probe looks, without changing anything, whether SFs can be made on each
// uplink's device: devlink must know the device, its eswitch must be in
// switchdev mode, and the host's functions must be visible under the
// finder's naming. (Whether firmware has SF resources enabled only shows on
// a real "devlink port add"; existing pcisf ports prove it.) A sysfs read
// error fails the whole probe; devlink errors are reported per device.
func (m *Manager) Probe(ctx context.Context) (Support, error) {
	if err := ctx.Err(); err != nil {
		return Support{}, err
	}
	inv, err := m.Finder.Inventory()
	if err != nil {
		return Support{}, err
	}
	host := map[string]bool{}
	for _, h := range inv.Host {
		host[h.Netdev] = true
	}
	ports, listErr := m.NL.DevLinkGetAllPortList()
	var out Support
	for _, u := range inv.Uplinks {
		d := DeviceSupport{PF: u.PF, Uplink: u.Netdev, PCI: u.PCI}
		switch {
		case u.PCI == "":
			d.Problems = append(d.Problems, fmt.Sprintf("uplink %s has no PCI device: %s", u.Netdev, u.PCIError))
		case listErr != nil:
			d.Problems = append(d.Problems, fmt.Sprintf("devlink port list: %v", listErr))
		default:
			for _, p := range ports {
				if p.BusName != "pci" || p.DeviceName != u.PCI {
					continue
				}
				d.DevlinkPorts++
				if p.PortFlavour == nl.DEVLINK_PORT_FLAVOUR_PCI_SF && p.NetdeviceName != "" {
					if host[p.NetdeviceName] {
						d.HostSFs = append(d.HostSFs, p.NetdeviceName)
					} else {
						d.OtherSFs = append(d.OtherSFs, p.NetdeviceName)
					}
				}
			}
			if d.DevlinkPorts == 0 {
				d.Problems = append(d.Problems, fmt.Sprintf("devlink has no ports on pci/%s", u.PCI))
			}
			if dev, err := m.NL.DevLinkGetDeviceByName("pci", u.PCI); err != nil {
				d.Problems = append(d.Problems, fmt.Sprintf("devlink dev pci/%s: %v", u.PCI, err))
			} else {
				d.EswitchMode = dev.Attrs.Eswitch.Mode
				if d.EswitchMode != "switchdev" {
					d.Problems = append(d.Problems, fmt.Sprintf("eswitch of pci/%s is in %q mode, SFs need switchdev", u.PCI, d.EswitchMode))
				}
			}
		}
		switch u.Naming {
		case representor.NamingLegacy:
			d.Problems = append(d.Problems, "host functions are named without a controller (old kernel): no host SFs")
		case representor.NamingNoHostPF:
			d.Problems = append(d.Problems, fmt.Sprintf("no host PF representor for pf%d under controller %d", u.PF, m.Finder.Controller))
		}
		sort.Strings(d.HostSFs)
		sort.Strings(d.OtherSFs)
		d.Ready = len(d.Problems) == 0
		out.Devices = append(out.Devices, d)
	}
	if len(out.Devices) == 0 {
		return out, fmt.Errorf("%w: no uplink representor (phys_port_name p<N>) under %s", errdefs.ErrNotFound, m.Finder.Root)
	}
	return out, nil
}
