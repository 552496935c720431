// Package representor maps a host function (PF, VF or SF of a PF) to its
// representor netdev on the DPU's eswitch, the way the kernel names them in
// sysfs: phys_port_name "p0" (uplink), "pf0"/"c1pf0" (host PF), "pf0vf3"/
// "c1pf0vf3" (host VF), "pf0sf88"/"c1pf0sf88" (SF), all sharing the uplink's
// phys_switch_id. Udev names (pf0hpf, en3f0pf0sf88) vary; these attributes
// do not.
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
type Finder struct {
	// Root is the sysfs mount ("/sys"); tests point it at a fake tree.
	Root string
	// Controller is the host's eswitch controller number for the "c<N>"
	// naming form (1 on a BlueField in DPU mode).
	Controller int
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

// PFs returns the PF numbers this eswitch has: those with an uplink or a host
// PF representor.
func (f Finder) PFs() ([]int, error) {
	ports, err := f.Ports()
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p.Kind == Uplink || p.Kind == HostPF {
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

// Lookup returns the representor netdev of fn. The external controller's
// "c<N>" form wins over the bare form; when uplink p<PF> exists, the
// representor must share its phys_switch_id. errdefs.ErrNotFound when no
// representor exists (yet).
func (f Finder) Lookup(fn nodestate.Function) (string, error) {
	ports, err := f.Ports()
	if err != nil {
		return "", err
	}
	return f.lookup(ports, fn)
}

func (f Finder) lookup(ports []Port, fn nodestate.Function) (string, error) {
	want := Port{Kind: HostPF, PF: fn.PF}
	switch {
	case fn.VF != nil:
		want.Kind, want.Num = VF, *fn.VF
	case fn.SF != nil:
		want.Kind, want.Num = SF, *fn.SF
	}
	switchID := ""
	for _, p := range ports {
		if p.Kind == Uplink && p.PF == fn.PF {
			switchID = p.SwitchID
		}
	}
	best, bestRank := "", 0
	for _, p := range ports {
		if p.Kind != want.Kind || p.PF != want.PF || (want.Kind != HostPF && p.Num != want.Num) {
			continue
		}
		if switchID != "" && p.SwitchID != switchID {
			continue
		}
		rank := 0
		switch p.Controller {
		case f.Controller:
			rank = 2
		case -1:
			rank = 1
		}
		if rank > bestRank {
			best, bestRank = p.Netdev, rank
		}
	}
	if best == "" {
		return "", fmt.Errorf("%w: no representor for %s under %s", errdefs.ErrNotFound, fn, f.Root)
	}
	return best, nil
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
