package representor

import (
	"reflect"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
)

func netdevs[T any](xs []T, name func(T) string) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, name(x))
	}
	return out
}

func TestInventoryBlueField(t *testing.T) {
	card, err := representortest.New(t.TempDir(), representortest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := card.EnableVFs(0, 2); err != nil {
		t.Fatal(err)
	}
	// A host SF made earlier, and the DPU's own VF (local controller).
	for _, r := range []representortest.Rep{{Netdev: "en3f1c1pf1sf5", PortName: "c1pf1sf5", PF: 1}, {Netdev: "pf0vf2", PortName: "pf0vf0", PF: 0}} {
		if err := card.AddRep(r); err != nil {
			t.Fatal(err)
		}
	}
	inv, err := Finder{Root: card.Root, Controller: 1}.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Uplinks) != 2 {
		t.Fatalf("uplinks = %+v", inv.Uplinks)
	}
	for pf, u := range inv.Uplinks {
		if u.Netdev != []string{"p0", "p1"}[pf] || u.PF != pf || u.PCI != representortest.UplinkPCI(pf) || u.SwitchID != card.SwitchID(pf) || u.Naming != NamingController {
			t.Errorf("uplink %d = %+v", pf, u)
		}
	}
	host := netdevs(inv.Host, func(h HostRep) string { return h.Function.String() + "=" + h.Netdev })
	if want := []string{"pf0=pf0hpf", "pf0vf0=pf0vf0", "pf0vf1=pf0vf1", "pf1=pf1hpf", "pf1sf5=en3f1c1pf1sf5"}; !reflect.DeepEqual(host, want) {
		t.Errorf("host = %v, want %v", host, want)
	}
	// The DPU's own SFs and VF are listed as not for host VIFs; plain
	// netdevs (oob_net0, tmfifo_net0, the SFs' own netdevs) not at all.
	other := netdevs(inv.NotForHost, func(o OtherRep) string { return o.Netdev + ": " + o.Why })
	if want := []string{"en3f0pf0sf0: " + WhyDPUOwn, "en3f1pf1sf0: " + WhyDPUOwn, "pf0vf2: " + WhyDPUOwn}; !reflect.DeepEqual(other, want) {
		t.Errorf("not for host = %v, want %v", other, want)
	}
}

func TestInventoryNaming(t *testing.T) {
	legacy, err := representortest.New(t.TempDir(), representortest.Options{Layout: representortest.BlueFieldLegacy, PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	local, err := representortest.New(t.TempDir(), representortest.Options{Layout: representortest.SwitchdevNIC, PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	noPF, err := representortest.New(t.TempDir(), representortest.Options{PFs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := noPF.Remove("pf0hpf"); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		f    Finder
		want Naming
	}{
		"legacy": {Finder{Root: legacy.Root, Controller: 1}, NamingLegacy},
		"local":  {Finder{Root: local.Root, Local: true}, NamingLocal},
		"no pf":  {Finder{Root: noPF.Root, Controller: 1}, NamingNoHostPF},
	} {
		inv, err := c.f.Inventory()
		if err != nil || len(inv.Uplinks) != 1 || inv.Uplinks[0].Naming != c.want {
			t.Errorf("%s: %+v, %v; want naming %s", name, inv.Uplinks, err, c.want)
		}
	}
}

func TestInventoryOtherControllerAndSwitch(t *testing.T) {
	root := fakeSysfs(t, map[string][2]string{
		"p0":     {"p0", "aa"},
		"pf0hpf": {"c1pf0", "aa"},
		"x":      {"c2pf0sf1", "aa"},
		"y":      {"c1pf0vf1", "zz"},
	})
	inv, err := Finder{Root: root, Controller: 1}.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	other := netdevs(inv.NotForHost, func(o OtherRep) string { return o.Netdev + ": " + o.Why })
	if want := []string{"x: " + WhyOtherController, "y: " + WhyOtherSwitch}; !reflect.DeepEqual(other, want) {
		t.Errorf("not for host = %v, want %v", other, want)
	}
}
