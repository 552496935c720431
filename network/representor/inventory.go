package representor

import (
	"fmt"
	"sort"

	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Naming of one eswitch's host functions, as Lookup sees them.
type Naming string

const (
	// NamingController: host functions carry the c<Controller> prefix.
	NamingController Naming = "external-controller"
	// NamingLegacy: the host PF is a bare pf<N> (kernel without the devlink
	// controller attribute); bare PF/VF names are the host's, SFs none.
	NamingLegacy Naming = "legacy"
	// NamingLocal: Finder.Local, the functions are the manager's own.
	NamingLocal Naming = "local"
	// NamingNoHostPF: no host PF representor is visible (the card exposes
	// no networking PF to the host, or the kernel shows none yet).
	NamingNoHostPF Naming = "no-host-pf"
)

// Inventory is what the finder sees, for an operator's dry run (check
// --hardware). Reading it changes nothing.
type Inventory struct {
	// Finder settings the inventory was taken with.
	Controller int
	Local      bool
	Uplinks    []UplinkInfo
	// Host are the representors Lookup returns, one per host function.
	Host []HostRep
	// NotForHost are representors on the card that are no host function
	// under this naming: the DPU's own SFs (pf0sf0 = en3f0pf0sf0 in ovsbr1)
	// and VFs, ports of other controllers or of another switch. The agent
	// never plugs, re-MACs or deletes them.
	NotForHost []OtherRep
}

// OtherRep is a representor that is not for host VIFs, and why.
type OtherRep struct {
	Port
	// Why: WhyDPUOwn, WhyOtherController or WhyOtherSwitch.
	Why string
}

// Reasons a representor is not for host VIFs.
const (
	WhyDPUOwn          = "the DPU's own function (local controller)"
	WhyOtherController = "another controller's function"
	WhyOtherSwitch     = "on another eswitch than its uplink"
)

// UplinkInfo is one uplink (p<PF>) and its eswitch.
type UplinkInfo struct {
	Port
	// PCI is the devlink handle of the eswitch (pci/<PCI>); "" with
	// PCIError set when the device link cannot be read.
	PCI      string
	PCIError string
	Naming   Naming
}

// HostRep is a host function and its representor.
type HostRep struct {
	Function nodestate.Function
	Port
}

// Inventory lists uplinks, host function representors and the ports that
// are not for host VIFs. It fails only when sysfs cannot be read or the
// finder is misconfigured.
func (f Finder) Inventory() (Inventory, error) {
	if err := f.check(); err != nil {
		return Inventory{}, err
	}
	ports, err := f.Ports()
	if err != nil {
		return Inventory{}, err
	}
	inv := Inventory{Controller: f.Controller, Local: f.Local}
	for _, p := range ports {
		switch {
		case p.Kind == Uplink:
			u := UplinkInfo{Port: p, Naming: f.naming(ports, p.PF)}
			if pci, err := f.PCIAddress(p.Netdev); err != nil {
				u.PCIError = err.Error()
			} else {
				u.PCI = pci
			}
			inv.Uplinks = append(inv.Uplinks, u)
		case f.isHost(ports, p):
			fn := nodestate.Function{PF: p.PF}
			switch p.Kind {
			case VF:
				fn.VF = nodestate.IntPtr(p.Num)
			case SF:
				fn.SF = nodestate.IntPtr(p.Num)
			}
			inv.Host = append(inv.Host, HostRep{Function: fn, Port: p})
		default:
			o := OtherRep{Port: p, Why: WhyOtherController}
			switch sw := switchOf(ports, p.PF); {
			case sw != "" && p.SwitchID != sw:
				o.Why = WhyOtherSwitch
			case p.Controller == -1:
				o.Why = WhyDPUOwn
			}
			inv.NotForHost = append(inv.NotForHost, o)
		}
	}
	sort.Slice(inv.Uplinks, func(i, j int) bool { return inv.Uplinks[i].PF < inv.Uplinks[j].PF })
	sort.SliceStable(inv.Host, func(i, j int) bool { return hostLess(inv.Host[i], inv.Host[j]) })
	return inv, nil
}

func (f Finder) naming(ports []Port, pf int) Naming {
	if f.Local {
		return NamingLocal
	}
	if legacyNaming(ports, pf) {
		return NamingLegacy
	}
	for _, p := range ports {
		if p.Kind == HostPF && p.PF == pf && f.isHost(ports, p) {
			return NamingController
		}
	}
	return NamingNoHostPF
}

func hostLess(a, b HostRep) bool {
	if a.PF != b.PF {
		return a.PF < b.PF
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Num < b.Num
}

// String names a kind the way the kernel's devlink flavours do.
func (k Kind) String() string {
	switch k {
	case Uplink:
		return "physical"
	case HostPF:
		return "pcipf"
	case VF:
		return "pcivf"
	case SF:
		return "pcisf"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}
