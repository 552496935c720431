package representor

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// fakeSysfs builds root/class/net/<dev>/{phys_port_name,phys_switch_id}; an
// empty port name means a plain netdev without the attribute.
func fakeSysfs(t *testing.T, devs map[string][2]string) string {
	t.Helper()
	root := t.TempDir()
	for dev, a := range devs {
		d := filepath.Join(root, "class", "net", dev)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if a[0] != "" {
			if err := os.WriteFile(filepath.Join(d, "phys_port_name"), []byte(a[0]+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "phys_switch_id"), []byte(a[1]+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestParsePortName(t *testing.T) {
	cases := map[string]Port{
		"p0":        {Kind: Uplink, PF: 0, Controller: -1},
		"p1":        {Kind: Uplink, PF: 1, Controller: -1},
		"pf0":       {Kind: HostPF, PF: 0, Controller: -1},
		"c1pf1":     {Kind: HostPF, PF: 1, Controller: 1},
		"pf0vf3":    {Kind: VF, PF: 0, Num: 3, Controller: -1},
		"c1pf0vf3":  {Kind: VF, PF: 0, Num: 3, Controller: 1},
		"pf0sf88":   {Kind: SF, PF: 0, Num: 88, Controller: -1},
		"c1pf0sf88": {Kind: SF, PF: 0, Num: 88, Controller: 1},
	}
	for in, want := range cases {
		got, ok := ParsePortName(in + "\n")
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("ParsePortName(%q) = %+v,%v want %+v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "eth0", "pf", "pfxvf1", "pf0vf", "vf3", "c1", "pf0vf3x", "p0pf0"} {
		if p, ok := ParsePortName(bad); ok {
			t.Errorf("ParsePortName(%q) = %+v, want not ok", bad, p)
		}
	}
}

func TestLookupBareNames(t *testing.T) {
	root := fakeSysfs(t, map[string][2]string{
		"p0":           {"p0", "aa"},
		"pf0hpf":       {"pf0", "aa"},
		"pf0vf3":       {"pf0vf3", "aa"},
		"en3f0pf0sf88": {"pf0sf88", "aa"},
		"p1":           {"p1", "bb"},
		"pf1hpf":       {"pf1", "bb"},
		"pf1vf3":       {"pf1vf3", "bb"},
		"eth0":         {"", ""},
		"oob_net0":     {"", ""},
	})
	f := Finder{Root: root, Controller: 1}
	for fn, want := range map[*nodestate.Function]string{
		{PF: 0, VF: nodestate.IntPtr(3)}:  "pf0vf3",
		{PF: 1, VF: nodestate.IntPtr(3)}:  "pf1vf3",
		{PF: 0, SF: nodestate.IntPtr(88)}: "en3f0pf0sf88",
		{PF: 0}:                           "pf0hpf",
		{PF: 1}:                           "pf1hpf",
	} {
		got, err := f.Lookup(*fn)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", fn, got, err, want)
		}
	}
	// The uplink and the host PF are never a VF/SF; a missing VF is NotFound.
	for _, fn := range []nodestate.Function{{PF: 0, VF: nodestate.IntPtr(0)}, {PF: 0, SF: nodestate.IntPtr(0)}, {PF: 2}, {PF: 0, VF: nodestate.IntPtr(4)}} {
		if got, err := f.Lookup(fn); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Lookup(%s) = %q, %v; want ErrNotFound", fn, got, err)
		}
	}
	pfs, err := f.PFs()
	if err != nil || !reflect.DeepEqual(pfs, []int{0, 1}) {
		t.Errorf("PFs() = %v, %v; want [0 1]", pfs, err)
	}
}

func TestLookupControllerPrefixWins(t *testing.T) {
	root := fakeSysfs(t, map[string][2]string{
		"p0":            {"p0", "aa"},
		"pf0hpf":        {"c1pf0", "aa"},
		"pf0vf3":        {"c1pf0vf3", "aa"},
		"ecpf0vf3":      {"pf0vf3", "aa"}, // the DPU's own (local controller) VF 3
		"en3f0pf0sf88":  {"c1pf0sf88", "aa"},
		"other0vf3":     {"c1pf0vf3", "zz"}, // another eswitch: ignored
		"en3f0pf0sf100": {"c2pf0sf100", "aa"},
	})
	f := Finder{Root: root, Controller: 1}
	got, err := f.Lookup(nodestate.Function{PF: 0, VF: nodestate.IntPtr(3)})
	if err != nil || got != "pf0vf3" {
		t.Errorf("vf3 = %q, %v; want pf0vf3 (c1 form)", got, err)
	}
	got, err = f.Lookup(nodestate.Function{PF: 0, SF: nodestate.IntPtr(88)})
	if err != nil || got != "en3f0pf0sf88" {
		t.Errorf("sf88 = %q, %v", got, err)
	}
	// A representor on another controller is not ours.
	if got, err := f.Lookup(nodestate.Function{PF: 0, SF: nodestate.IntPtr(100)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("sf100 on controller 2 = %q, %v; want ErrNotFound", got, err)
	}
	pfs, err := f.PFs()
	if err != nil || !reflect.DeepEqual(pfs, []int{0}) {
		t.Errorf("PFs() = %v, %v; want [0]", pfs, err)
	}
}

func TestPCIAddress(t *testing.T) {
	root := fakeSysfs(t, map[string][2]string{"p0": {"p0", "aa"}})
	if err := os.Symlink("../../../devices/pci0000:00/0000:03:00.0", filepath.Join(root, "class", "net", "p0", "device")); err != nil {
		t.Fatal(err)
	}
	got, err := Finder{Root: root}.PCIAddress("p0")
	if err != nil || got != "0000:03:00.0" {
		t.Errorf("PCIAddress = %q, %v", got, err)
	}
	if _, err := (Finder{Root: root}).PCIAddress("nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing device: %v", err)
	}
}

func TestMissingRootIsNetworkError(t *testing.T) {
	_, err := Finder{Root: filepath.Join(t.TempDir(), "none")}.Lookup(nodestate.Function{PF: 0})
	if !errors.Is(err, errdefs.ErrNetwork) {
		t.Errorf("err = %v, want ErrNetwork", err)
	}
}
