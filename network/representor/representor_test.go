package representor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
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

// A kernel without the devlink controller attribute names host functions
// pf0, pf0vf3 (sriovnet's legacy form): accepted for PFs and VFs, never for
// SFs, whose controller-less form is the DPU's own.
func TestLookupLegacyNames(t *testing.T) {
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
		{PF: 0, VF: nodestate.IntPtr(3)}: "pf0vf3",
		{PF: 1, VF: nodestate.IntPtr(3)}: "pf1vf3",
		{PF: 0}:                          "pf0hpf",
		{PF: 1}:                          "pf1hpf",
	} {
		got, err := f.Lookup(*fn)
		if err != nil || got != want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", fn, got, err, want)
		}
	}
	// The uplink and the host PF are never a VF/SF; a missing VF is
	// NotFound; a bare SF is never the host's.
	for _, fn := range []nodestate.Function{{PF: 0, VF: nodestate.IntPtr(0)}, {PF: 0, SF: nodestate.IntPtr(0)}, {PF: 2},
		{PF: 0, VF: nodestate.IntPtr(4)}, {PF: 0, SF: nodestate.IntPtr(88)}} {
		if got, err := f.Lookup(fn); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Lookup(%s) = %q, %v; want ErrNotFound", fn, got, err)
		}
	}
	pfs, err := f.PFs()
	if err != nil || !reflect.DeepEqual(pfs, []int{0, 1}) {
		t.Errorf("PFs() = %v, %v; want [0 1]", pfs, err)
	}
}

func TestLookupControllerPrefixOnly(t *testing.T) {
	root := fakeSysfs(t, map[string][2]string{
		"p0":            {"p0", "aa"},
		"pf0hpf":        {"c1pf0", "aa"},
		"pf0vf3":        {"c1pf0vf3", "aa"},
		"ecpf0vf3":      {"pf0vf3", "aa"}, // the DPU's own (local controller) VF 3
		"ecpf0vf4":      {"pf0vf4", "aa"}, // the DPU's own VF 4; the host has no VF 4
		"ecpf0":         {"pf0", "aa"},    // a local PF port: never the host PF
		"en3f0pf0sf88":  {"c1pf0sf88", "aa"},
		"en3f0pf0sf0":   {"pf0sf0", "aa"},   // the DPU's own SF 0
		"other0vf3":     {"c1pf0vf3", "zz"}, // another eswitch: ignored
		"en3f0pf0sf100": {"c2pf0sf100", "aa"},
	})
	f := Finder{Root: root, Controller: 1}
	for fn, want := range map[*nodestate.Function]string{
		{PF: 0, VF: nodestate.IntPtr(3)}:  "pf0vf3",
		{PF: 0, SF: nodestate.IntPtr(88)}: "en3f0pf0sf88",
		{PF: 0}:                           "pf0hpf",
	} {
		if got, err := f.Lookup(*fn); err != nil || got != want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", fn, got, err, want)
		}
	}
	// Another controller's, and the DPU's own VF 4 and SF 0, are not ours.
	for _, fn := range []nodestate.Function{{PF: 0, SF: nodestate.IntPtr(100)}, {PF: 0, VF: nodestate.IntPtr(4)}, {PF: 0, SF: nodestate.IntPtr(0)}} {
		if got, err := f.Lookup(fn); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Lookup(%s) = %q, %v; want ErrNotFound", fn, got, err)
		}
	}
	pfs, err := f.PFs()
	if err != nil || !reflect.DeepEqual(pfs, []int{0}) {
		t.Errorf("PFs() = %v, %v; want [0]", pfs, err)
	}
}

// The default BlueField (representortest): host PFs c1pf0/c1pf1, host VFs
// only once the host enabled SR-IOV, and the DPU's own SFs pf0sf0/pf1sf0
// (en3f0pf0sf0, en3f1pf1sf0) which no host function may resolve to (M4).
func TestBlueFieldCard(t *testing.T) {
	for _, perPF := range []bool{false, true} {
		card, err := representortest.New(t.TempDir(), representortest.Options{SwitchIDPerPF: perPF})
		if err != nil {
			t.Fatal(err)
		}
		f := Finder{Root: card.Root, Controller: representortest.HostController}
		for _, pf := range []int{0, 1} {
			if got, err := f.Lookup(nodestate.Function{PF: pf, SF: nodestate.IntPtr(0)}); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("perPF=%v: host sf 0 of pf%d = %q, %v; want ErrNotFound (%s is the DPU's own)", perPF, pf, got, err, representortest.DPUSF(pf))
			}
			if got, err := f.Lookup(nodestate.Function{PF: pf}); err != nil || got != fmt.Sprintf("pf%dhpf", pf) {
				t.Errorf("perPF=%v: host pf%d = %q, %v", perPF, pf, got, err)
			}
		}
		vf1 := nodestate.Function{PF: 1, VF: nodestate.IntPtr(1)}
		if got, err := f.Lookup(vf1); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("vf before the host enabled SR-IOV = %q, %v", got, err)
		}
		if err := card.EnableVFs(1, 2); err != nil {
			t.Fatal(err)
		}
		if got, err := f.Lookup(vf1); err != nil || got != "pf1vf1" {
			t.Errorf("vf after EnableVFs = %q, %v", got, err)
		}
		if err := card.DisableVFs(1); err != nil {
			t.Fatal(err)
		}
		if got, err := f.Lookup(vf1); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("vf after DisableVFs = %q, %v", got, err)
		}
		pfs, err := f.PFs()
		if err != nil || !reflect.DeepEqual(pfs, []int{0, 1}) {
			t.Errorf("PFs() = %v, %v", pfs, err)
		}
	}
}

// The DPU's own VFs (ECPF VFs: local controller, bare pf0vfN) are not host
// VFs on a kernel that names the host's c1pf0vfN, nor when the card shows
// no host PF at all (NUM_OF_PF=0).
func TestDPUOwnVFIsNotTheHosts(t *testing.T) {
	card, err := representortest.New(t.TempDir(), representortest.Options{PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := card.AddRep(representortest.Rep{Netdev: "pf0vf0", PortName: "pf0vf0", PF: 0}); err != nil {
		t.Fatal(err)
	}
	f := Finder{Root: card.Root, Controller: 1}
	vf0 := nodestate.Function{PF: 0, VF: nodestate.IntPtr(0)}
	if got, err := f.Lookup(vf0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DPU's own VF taken for host vf0: %q, %v", got, err)
	}
	if err := card.Remove("pf0hpf"); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Lookup(vf0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no host PF: DPU's own VF taken for host vf0: %q, %v", got, err)
	}
	if got, err := f.Lookup(nodestate.Function{PF: 0}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no host PF: pf0 = %q, %v", got, err)
	}
}

func TestLegacyBlueFieldCard(t *testing.T) {
	card, err := representortest.New(t.TempDir(), representortest.Options{Layout: representortest.BlueFieldLegacy})
	if err != nil {
		t.Fatal(err)
	}
	if err := card.EnableVFs(0, 4); err != nil {
		t.Fatal(err)
	}
	f := Finder{Root: card.Root, Controller: 1}
	if got, err := f.Lookup(nodestate.Function{PF: 0, VF: nodestate.IntPtr(3)}); err != nil || got != "pf0vf3" {
		t.Errorf("legacy vf3 = %q, %v", got, err)
	}
	if got, err := f.Lookup(nodestate.Function{PF: 1}); err != nil || got != "pf1hpf" {
		t.Errorf("legacy pf1 = %q, %v", got, err)
	}
	if got, err := f.Lookup(nodestate.Function{PF: 0, SF: nodestate.IntPtr(0)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("legacy sf0 = %q, %v; want ErrNotFound", got, err)
	}
}

// A switchdev NIC inside the host (spdk-generic) is Local: bare names are
// its own functions, and c<N> names are not.
func TestLocalNIC(t *testing.T) {
	card, err := representortest.New(t.TempDir(), representortest.Options{Layout: representortest.SwitchdevNIC, PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := card.EnableVFs(0, 2); err != nil {
		t.Fatal(err)
	}
	for _, r := range []representortest.Rep{{Netdev: "en3f0pf0sf88", PortName: "pf0sf88"}, {Netdev: "x", PortName: "c1pf0sf7"}} {
		if err := card.AddRep(r); err != nil {
			t.Fatal(err)
		}
	}
	f := Finder{Root: card.Root, Local: true}
	for fn, want := range map[*nodestate.Function]string{
		{PF: 0, VF: nodestate.IntPtr(1)}:  "pf0vf1",
		{PF: 0, SF: nodestate.IntPtr(88)}: "en3f0pf0sf88",
	} {
		if got, err := f.Lookup(*fn); err != nil || got != want {
			t.Errorf("Lookup(%s) = %q, %v; want %q", fn, got, err, want)
		}
	}
	if got, err := f.Lookup(nodestate.Function{PF: 0, SF: nodestate.IntPtr(7)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("c1 sf on a local finder = %q, %v", got, err)
	}
	if pfs, err := f.PFs(); err != nil || !reflect.DeepEqual(pfs, []int{0}) {
		t.Errorf("PFs() = %v, %v", pfs, err)
	}
	// The same card read as a BlueField has no host functions at all.
	if got, err := (Finder{Root: card.Root, Controller: 1}).Lookup(nodestate.Function{PF: 0, VF: nodestate.IntPtr(1)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("controller-1 finder on a local NIC = %q, %v", got, err)
	}
}

// A finder with neither a host controller nor Local refuses to guess.
func TestFinderWithoutControllerIsInvalid(t *testing.T) {
	card, err := representortest.New(t.TempDir(), representortest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := Finder{Root: card.Root}
	if _, err := f.Lookup(nodestate.Function{PF: 0}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Lookup: %v", err)
	}
	if _, err := f.PFs(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("PFs: %v", err)
	}
	if _, err := f.Inventory(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Inventory: %v", err)
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
	_, err := Finder{Root: filepath.Join(t.TempDir(), "none"), Controller: 1}.Lookup(nodestate.Function{PF: 0})
	if !errors.Is(err, errdefs.ErrNetwork) {
		t.Errorf("err = %v, want ErrNetwork", err)
	}
}
