package representortest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func read(t *testing.T, root, dev, attr string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "class", "net", dev, attr))
	if err != nil {
		t.Fatalf("%s/%s: %v", dev, attr, err)
	}
	return strings.TrimSpace(string(b))
}

// The default card is laid out as docs/bluefield-network.md describes.
func TestDefaultBlueFieldLayout(t *testing.T) {
	c, err := New(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"p0": "p0", "p1": "p1", "pf0hpf": "c1pf0", "pf1hpf": "c1pf1", "en3f0pf0sf0": "pf0sf0", "en3f1pf1sf0": "pf1sf0"}
	if len(c.Reps()) != len(want) {
		t.Errorf("reps = %+v", c.Reps())
	}
	for dev, name := range want {
		if got := read(t, c.Root, dev, "phys_port_name"); got != name {
			t.Errorf("%s phys_port_name = %q, want %q", dev, got, name)
		}
		if got := read(t, c.Root, dev, "phys_switch_id"); got != c.SwitchID(0) {
			t.Errorf("%s phys_switch_id = %q, want the card's one id %q", dev, got, c.SwitchID(0))
		}
		link, err := os.Readlink(filepath.Join(c.Root, "class", "net", dev, "device"))
		pf := 0
		if strings.Contains(dev, "1") {
			pf = 1
		}
		if err != nil || filepath.Base(link) != UplinkPCI(pf) {
			t.Errorf("%s device -> %q, %v", dev, link, err)
		}
		if _, err := os.Stat(filepath.Join(c.Root, "class", "net", dev, "device", "..")); err != nil {
			t.Errorf("%s device link dangles: %v", dev, err)
		}
	}
	for _, dev := range []string{"oob_net0", "tmfifo_net0", "enp3s0f0s0", "enp3s0f1s1", "lo"} {
		if _, err := os.Stat(filepath.Join(c.Root, "class", "net", dev, "phys_port_name")); !os.IsNotExist(err) {
			t.Errorf("plain %s has phys_port_name: %v", dev, err)
		}
	}
	if err := c.EnableVFs(0, 2); err != nil {
		t.Fatal(err)
	}
	if got := read(t, c.Root, "pf0vf1", "phys_port_name"); got != "c1pf0vf1" {
		t.Errorf("pf0vf1 = %q", got)
	}
	if err := c.EnableVFs(0, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Rep("pf0vf1"); ok {
		t.Error("pf0vf1 left after the host lowered sriov_numvfs to 1")
	}
	if err := c.AddRep(Rep{Netdev: "pf0hpf", PortName: "c1pf0"}); err == nil {
		t.Error("duplicate netdev accepted")
	}
	perPF, err := New(t.TempDir(), Options{SwitchIDPerPF: true})
	if err != nil {
		t.Fatal(err)
	}
	if read(t, perPF.Root, "p0", "phys_switch_id") == read(t, perPF.Root, "p1", "phys_switch_id") {
		t.Error("SwitchIDPerPF: p0 and p1 share a switch id")
	}
}
