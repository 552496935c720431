package sf_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
)

func TestProbeBlueField(t *testing.T) {
	ctx := context.Background()
	m, fake := setup(t, representortest.Options{})
	if _, err := m.Create(ctx, 1, 5, "fa:16:3e:00:00:05"); err != nil {
		t.Fatal(err)
	}
	n := len(fake.Calls())
	s, err := m.Probe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fake.Calls()) != n {
		t.Errorf("Probe changed devlink: %v", fake.Calls()[n:])
	}
	if len(s.Devices) != 2 {
		t.Fatalf("devices = %+v", s.Devices)
	}
	d0, d1 := s.Devices[0], s.Devices[1]
	if !d0.Ready || d0.PCI != "0000:03:00.0" || d0.Uplink != "p0" || d0.EswitchMode != "switchdev" || d0.DevlinkPorts != 3 ||
		len(d0.HostSFs) != 0 || !reflect.DeepEqual(d0.OtherSFs, []string{"en3f0pf0sf0"}) {
		t.Errorf("pf0 = %+v", d0)
	}
	if !d1.Ready || !reflect.DeepEqual(d1.HostSFs, []string{"en3f1c1pf1sf5"}) || !reflect.DeepEqual(d1.OtherSFs, []string{"en3f1pf1sf0"}) {
		t.Errorf("pf1 = %+v", d1)
	}
}

func TestProbeProblems(t *testing.T) {
	ctx := context.Background()
	m, fake := setup(t, representortest.Options{PFs: 1})
	fake.EswitchMode = "legacy"
	s, err := m.Probe(ctx)
	if err != nil || len(s.Devices) != 1 || s.Devices[0].Ready || !strings.Contains(strings.Join(s.Devices[0].Problems, ";"), "switchdev") {
		t.Errorf("legacy eswitch: %+v, %v", s, err)
	}
	legacy, _ := setup(t, representortest.Options{Layout: representortest.BlueFieldLegacy, PFs: 1})
	s, err = legacy.Probe(ctx)
	if err != nil || s.Devices[0].Ready || !strings.Contains(strings.Join(s.Devices[0].Problems, ";"), "old kernel") {
		t.Errorf("legacy kernel: %+v, %v", s, err)
	}
	if err := fake.Card.Remove("p0"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Probe(ctx); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no uplink: %v", err)
	}
	local, _ := setup(t, representortest.Options{Layout: representortest.SwitchdevNIC, PFs: 1})
	if s, err := local.Probe(ctx); err != nil || !s.Devices[0].Ready {
		t.Errorf("local NIC: %+v, %v", s, err)
	}
}
