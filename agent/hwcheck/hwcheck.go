// Package hwcheck is the read-only hardware dry run behind `ironic-dpu-agent
// check --hardware`: what the DPU has (SNAP version and NVMe emulation
// functions, representors per host function, OVS bridges and uplinks, SF
// support) and, for a desired state, what the agent would create. It
// changes nothing: only list/get calls, sysfs reads and one OVSDB select.
package hwcheck

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Network is the read-only part of the vendor network driver the check uses
// (drivers/bluefield.Network).
type Network interface {
	ValidateFunction(f nodestate.Function) error
	Inventory() (representor.Inventory, error)
	ProbeSF(ctx context.Context) (sf.Support, error)
}

// Storage is the read-only part of the SNAP storage driver the check uses
// (drivers/bluefield.Storage): the emulation functions SNAP reports and what
// exposing volumes on the given functions would create.
type Storage interface {
	Inventory(ctx context.Context) (bluefield.Inventory, error)
	Plan(ctx context.Context, fns []nodestate.Function) ([]bluefield.PlanStep, error)
}

// Options say where to look.
type Options struct {
	// OVSDB is the [ovs] ovsdb_connection endpoint, Bridge the integration
	// bridge.
	OVSDB, Bridge string
	// OVSDBTLS is the client TLS config of an ssl: OVSDB, else nil.
	OVSDBTLS *tls.Config
	Network  Network
	// Storage may be nil (a driver without a hardware view).
	Storage Storage
	// Desired, when set, is planned against what was found.
	Desired *nodestate.Desired
}

// Report is the outcome. Sections hold printable lines; Problems are what
// would stop the agent (or a state) from working on this hardware.
type Report struct {
	Storage  []string
	Network  []string
	SF       []string
	OVS      []string
	Plan     []string
	Problems []string
}

func (r *Report) problem(format string, a ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, a...))
}

// Collect looks at everything it can reach; an unreachable part is a
// problem, not an error, so the operator sees all of them at once.
func Collect(ctx context.Context, o Options) *Report {
	r := &Report{}
	if o.Storage != nil {
		inv, err := o.Storage.Inventory(ctx)
		if err != nil {
			r.problem("snap: %v", err)
		} else {
			r.Storage = storageLines(inv)
			if !slices.ContainsFunc(inv.Functions, func(f bluefield.EmulationFunction) bool { return f.Type == bluefield.EmulationTypeNVMe }) {
				r.problem("snap: no NVMe emulation function: volumes cannot be exposed (is NVMe emulation enabled in the card's firmware?)")
			}
		}
	}
	inv, invErr := o.Network.Inventory()
	if invErr != nil {
		r.problem("representors: %v", invErr)
	} else {
		r.Network = networkLines(inv)
		if len(inv.Uplinks) == 0 {
			r.problem("representors: no uplink (phys_port_name p<N>) found: is the card in switchdev mode?")
		}
	}
	if sup, err := o.Network.ProbeSF(ctx); err != nil {
		r.SF = []string{"unknown: " + err.Error()}
	} else {
		r.SF = sfLines(sup)
	}
	view, ovsErr := ReadOVS(ctx, o.OVSDB, o.OVSDBTLS)
	if ovsErr != nil {
		r.problem("ovsdb %s: %v", o.OVSDB, ovsErr)
	} else {
		r.OVS = ovsLines(view, o.Bridge, inv)
		if view.Bridge(o.Bridge) == nil {
			r.problem("ovs: integration bridge %s does not exist (ovn-controller creates it)", o.Bridge)
		}
	}
	if o.Desired != nil {
		if o.Storage != nil {
			steps, err := o.Storage.Plan(ctx, volumeFunctions(o.Desired))
			if err != nil {
				r.problem("plan: snap: %v", err)
			}
			for _, st := range steps {
				if st.Problem {
					r.problem("volumes on %s", st.Text)
					continue
				}
				r.Plan = append(r.Plan, "volumes on "+st.Text)
			}
		}
		if invErr == nil {
			r.Plan = append(r.Plan, planVIFs(r, o, inv, view, ovsErr == nil)...)
		}
	}
	return r
}

// volumeFunctions lists the distinct functions the state's volumes and
// config drive are exposed on (PF 0 when a volume names none).
func volumeFunctions(d *nodestate.Desired) []nodestate.Function {
	var out []nodestate.Function
	add := func(f nodestate.Function) {
		for _, o := range out {
			if o.String() == f.String() {
				return
			}
		}
		out = append(out, f)
	}
	for _, v := range d.Volumes {
		if v.Function != nil {
			add(*v.Function)
		} else {
			add(nodestate.Function{PF: 0})
		}
	}
	if d.ConfigDrive != nil {
		add(nodestate.Function{PF: 0})
	}
	return out
}

func storageLines(inv bluefield.Inventory) []string {
	out := []string{"snap version " + inv.Version}
	for _, f := range inv.Functions {
		ctrl := "no controller"
		if f.CtrlID != "" {
			ctrl = "controller " + f.CtrlID
		}
		hot := ""
		if f.Hotplugged {
			hot = ", hot-plugged"
		}
		out = append(out, fmt.Sprintf("%s function %s: pci %s, vuid %s, %s%s", f.Type, f.Function(), f.PCIBDF, f.VUID, ctrl, hot))
	}
	return out
}

func networkLines(inv representor.Inventory) []string {
	var out []string
	for _, u := range inv.Uplinks {
		pci := u.PCI
		if pci == "" {
			pci = "? (" + u.PCIError + ")"
		}
		out = append(out, fmt.Sprintf("uplink %s: pf%d, pci %s, switch %s, host naming %s", u.Netdev, u.PF, pci, u.SwitchID, u.Naming))
	}
	for _, h := range inv.Host {
		out = append(out, fmt.Sprintf("host %s: representor %s (%s)", h.Function, h.Netdev, h.Kind))
	}
	for _, o := range inv.NotForHost {
		out = append(out, fmt.Sprintf("not for host VIFs: %s (%s): %s", o.Netdev, o.Kind, o.Why))
	}
	return out
}

func sfLines(s sf.Support) []string {
	var out []string
	for _, d := range s.Devices {
		state := "ready"
		if !d.Ready {
			state = "NOT READY: " + strings.Join(d.Problems, "; ")
		}
		out = append(out, fmt.Sprintf("pf%d (%s, pci/%s, eswitch %s, %d devlink ports): %s; host SFs %v, other SFs %v",
			d.PF, d.Uplink, d.PCI, d.EswitchMode, d.DevlinkPorts, state, d.HostSFs, d.OtherSFs))
	}
	return out
}

func ovsLines(v OVSView, bridge string, inv representor.Inventory) []string {
	var out []string
	for _, b := range v.Bridges {
		role := ""
		if b.Name == bridge {
			role = " (integration bridge)"
		}
		out = append(out, fmt.Sprintf("bridge %s%s: %d ports", b.Name, role, len(b.Ports)))
	}
	for _, u := range inv.Uplinks {
		if b := v.BridgeOf(u.Netdev); b != "" {
			out = append(out, fmt.Sprintf("uplink %s is on bridge %s", u.Netdev, b))
		} else {
			out = append(out, fmt.Sprintf("uplink %s is on no bridge", u.Netdev))
		}
	}
	return out
}

// planVIFs says, per VIF, what the agent would do with its function.
func planVIFs(r *Report, o Options, inv representor.Inventory, view OVSView, haveOVS bool) []string {
	var out []string
	for _, v := range o.Desired.VIFs {
		if v.Function == nil {
			out = append(out, fmt.Sprintf("vif %s: no function named: the agent allocates a host SF and plugs it into %s", v.PortID, o.Bridge))
			continue
		}
		f := *v.Function
		if err := o.Network.ValidateFunction(f); err != nil {
			r.problem("vif %s: %v", v.PortID, err)
			continue
		}
		i := slices.IndexFunc(inv.Host, func(h representor.HostRep) bool { return h.Function.String() == f.String() })
		if i < 0 {
			switch {
			case f.SF != nil:
				out = append(out, fmt.Sprintf("vif %s: would create host SF %s (devlink pcisf pfnum %d sfnum %d controller %d, hw_addr %s, state active) and plug its representor into %s",
					v.PortID, f, f.PF, *f.SF, inv.Controller, v.MAC, o.Bridge))
			case f.VF != nil:
				out = append(out, fmt.Sprintf("vif %s: %s has no representor yet: waits until the host enables VF %d on PF %d (sriov_numvfs), then plugs it into %s",
					v.PortID, f, *f.VF, f.PF, o.Bridge))
			default:
				r.problem("vif %s: host PF %s has no representor on this card", v.PortID, f)
			}
			continue
		}
		rep := inv.Host[i].Netdev
		switch b := view.BridgeOf(rep); {
		case !haveOVS:
			out = append(out, fmt.Sprintf("vif %s: would plug %s (%s) into %s (OVSDB not read)", v.PortID, rep, f, o.Bridge))
		case b == o.Bridge:
			out = append(out, fmt.Sprintf("vif %s: %s (%s) is already on %s: only its external_ids would be checked", v.PortID, rep, f, o.Bridge))
		case b != "":
			r.problem("vif %s: representor %s (%s) is on bridge %s: the agent refuses to move it", v.PortID, rep, f, b)
		default:
			out = append(out, fmt.Sprintf("vif %s: would plug %s (%s) into %s with iface-id %s, attached-mac %s", v.PortID, rep, f, o.Bridge, v.PortID, v.MAC))
		}
	}
	return out
}

// Print writes the report as sections an operator reads top to bottom.
func (r *Report) Print(w io.Writer) {
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "%s:\n", title)
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	section("storage", r.Storage)
	section("representors", r.Network)
	section("sf support", r.SF)
	section("ovs", r.OVS)
	section("plan (nothing was changed)", r.Plan)
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "problems: none")
		return
	}
	section("PROBLEMS", r.Problems)
}
