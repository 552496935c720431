// Package representor maps a host function (PF, VF or SF of a PF) to its
// representor netdev on the DPU's eswitch by the kernel's sysfs attributes:
// phys_port_name "p0" (uplink), "c1pf0" (host PF), "c1pf0vf3" (host VF),
// "c1pf0sf88" (host SF), all sharing the uplink's phys_switch_id. Udev names
// (pf0hpf, en3f0pf0sf88) vary; these attributes do not. Controller-less
// names ("pf0sf0") are the DPU's own functions on a BlueField; see Finder
// and docs/bluefield-network.md.
package representor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Kind of a representor port.
type Kind int

const (
	Uplink Kind = iota
	HostPF
	VF
	SF
)

// Port is one parsed representor.
type Port struct {
	Netdev     string
	Kind       Kind
	Controller int // -1: no "c<N>" prefix (local controller / old kernels)
	PF         int
	Num        int // VF or SF number
	SwitchID   string
}

var (
	uplinkRe = regexp.MustCompile(`^p(\d+)$`)
	// ctrlRe splits the "c<N>" controller prefix off a function name; the
	// rest is a nodestate.Function name (pf0, pf0vf3, pf0sf88).
	ctrlRe = regexp.MustCompile(`^c(\d+)(pf.*)$`)
)

// ParsePortName parses a phys_port_name; ok is false for names that are no
// representor of ours.
func ParsePortName(name string) (p Port, ok bool) {
	name = strings.TrimSpace(name)
	if m := uplinkRe.FindStringSubmatch(name); m != nil {
		n, err := strconv.Atoi(m[1])
		return Port{Kind: Uplink, PF: n, Controller: -1}, err == nil
	}
	p.Controller = -1
	if m := ctrlRe.FindStringSubmatch(name); m != nil {
		var err error
		if p.Controller, err = strconv.Atoi(m[1]); err != nil {
			return Port{}, false
		}
		name = m[2]
	}
	f, err := nodestate.ParseFunction(name)
	if err != nil {
		return Port{}, false
	}
	p.PF, p.Kind = f.PF, HostPF
	switch {
	case f.VF != nil:
		p.Kind, p.Num = VF, *f.VF
	case f.SF != nil:
		p.Kind, p.Num = SF, *f.SF
	}
	return p, true
}

// Finder looks representors up under a sysfs root.
//
// Which names are the host's functions (docs/bluefield-network.md):
//   - Controller N >= 1 (a BlueField in DPU mode: 1): host functions carry
//     the external controller's prefix, c1pf0, c1pf0vf3, c1pf0sf88. A
//     controller-less pf0sf0 is the DPU's own SF (en3f0pf0sf0 in ovsbr1) and
//     a controller-less pf0vf3 the DPU's own VF: neither is ever returned.
//     Only on an eswitch whose host PF is itself named without a prefix (a
//     kernel older than the devlink controller attribute) are pf0 and pf0vf3
//     accepted for host PFs and VFs, as sriovnet's GetVfRepresentorDPU and
//     GetPfRepresentorDPU do; SFs never (sriovnet's GetSfRepresentorDPU
//     matches c1pfNsfM only).
//   - Local: the functions are on the eswitch manager's own controller (a
//     switchdev NIC inside the host, spdk-generic): controller-less names
//     only.
type Finder struct {
	// Root is the sysfs mount ("/sys"); tests point it at a fake tree.
	Root string
	// Controller is the host's eswitch controller number (1 on a BlueField
	// in DPU mode). Must be >= 1 unless Local.
	Controller int
	// Local selects controller-less names (the functions live on the local
	// controller); Controller is then unused.
	Local bool
}

// Ports lists every representor under Root/class/net, sorted by netdev.
func (f Finder) Ports() ([]Port, error) {
	dir := filepath.Join(f.Root, "class", "net")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", errdefs.ErrNetwork, dir, err)
	}
	var out []Port
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "phys_port_name"))
		if err != nil {
			// Plain netdevs have no phys_port_name (or EOPNOTSUPP on read).
			continue
		}
		p, ok := ParsePortName(string(b))
		if !ok {
			continue
		}
		sw, err := os.ReadFile(filepath.Join(dir, e.Name(), "phys_switch_id"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		p.Netdev, p.SwitchID = e.Name(), strings.TrimSpace(string(sw))
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Netdev < out[j].Netdev })
	return out, nil
}

func (f Finder) check() error {
	if !f.Local && f.Controller < 1 {
		return fmt.Errorf("%w: representor finder: host controller %d (a BlueField's host is controller 1; a NIC inside the host is Local)",
			errdefs.ErrInvalidArgument, f.Controller)
	}
	return nil
}

// PFs returns the PF numbers this eswitch has: those with an uplink or a host
// PF representor Lookup accepts.
func (f Finder) PFs() ([]int, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	ports, err := f.Ports()
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p.Kind == Uplink || (p.Kind == HostPF && f.isHost(ports, p)) {
			seen[p.PF] = true
		}
	}
	out := make([]int, 0, len(seen))
	for pf := range seen {
		out = append(out, pf)
	}
	sort.Ints(out)
	return out, nil
}

// Lookup returns the representor netdev of fn: a port of the host's naming
// (see Finder) on PF fn.PF; when uplink p<PF> exists, the representor must
// share its phys_switch_id. errdefs.ErrNotFound when no representor exists
// (yet).
func (f Finder) Lookup(fn nodestate.Function) (string, error) {
	if err := f.check(); err != nil {
		return "", err
	}
	ports, err := f.Ports()
	if err != nil {
		return "", err
	}
	want := Port{Kind: HostPF, PF: fn.PF}
	switch {
	case fn.VF != nil:
		want.Kind, want.Num = VF, *fn.VF
	case fn.SF != nil:
		want.Kind, want.Num = SF, *fn.SF
	}
	for _, p := range ports {
		if p.Kind != want.Kind || p.PF != want.PF || (want.Kind != HostPF && p.Num != want.Num) {
			continue
		}
		if f.isHost(ports, p) {
			return p.Netdev, nil
		}
	}
	return "", fmt.Errorf("%w: no representor for %s under %s", errdefs.ErrNotFound, fn, f.Root)
}

// switchOf is the phys_switch_id of uplink p<pf>, "" when there is none.
func switchOf(ports []Port, pf int) string {
	for _, p := range ports {
		if p.Kind == Uplink && p.PF == pf {
			return p.SwitchID
		}
	}
	return ""
}

// isHost says whether p (a PF, VF or SF port) is one of the host's
// functions under f's naming.
func (f Finder) isHost(ports []Port, p Port) bool {
	if p.Kind == Uplink {
		return false
	}
	if sw := switchOf(ports, p.PF); sw != "" && p.SwitchID != sw {
		return false
	}
	switch {
	case f.Local:
		return p.Controller == -1
	case p.Controller == f.Controller:
		return true
	case p.Controller == -1 && p.Kind != SF:
		return legacyNaming(ports, p.PF)
	}
	return false
}

// legacyNaming says whether PF pf's eswitch names host functions without a
// controller prefix: its host PF representor is a bare pf<N> and no port
// on that switch carries any c<N> prefix. A kernel with the controller
// attribute names the host PF c1pf<N> (always present on a BlueField with
// host PFs), so there a bare pf<N>vf<M> can only be the DPU's own VF.
func legacyNaming(ports []Port, pf int) bool {
	sw, bare := switchOf(ports, pf), false
	for _, p := range ports {
		if sw != "" && p.SwitchID != sw {
			continue
		}
		if p.Controller >= 0 {
			return false
		}
		if p.Kind == HostPF && p.PF == pf {
			bare = true
		}
	}
	return bare
}

// PCIAddress returns the PCI address of netdev's device (the devlink handle
// of an uplink, e.g. 0000:03:00.0).
func (f Finder) PCIAddress(netdev string) (string, error) {
	link, err := os.Readlink(filepath.Join(f.Root, "class", "net", netdev, "device"))
	if err != nil {
		return "", fmt.Errorf("%w: %s has no PCI device: %w", errdefs.ErrNotFound, netdev, err)
	}
	return filepath.Base(link), nil
}
