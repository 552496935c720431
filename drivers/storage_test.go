package drivers_test

import (
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

func TestHostSubsystemNQN(t *testing.T) {
	node := "1BE26C0B-03f2-4d2e-ae87-c02d7f33c123"
	for _, f := range []nodestate.Function{{PF: 0}, {PF: 1, VF: nodestate.IntPtr(3)}} {
		nqn := drivers.HostSubsystemNQN(node, f)
		got, ok := drivers.ParseHostSubsystemNQN(node, nqn)
		if !ok || !got.Equal(f) {
			t.Errorf("%s -> %+v %v", nqn, got, ok)
		}
	}
	if n := drivers.HostSubsystemNQN(node, nodestate.Function{PF: 0}); n != "nqn.2024-01.io.openstack.ironic-dpu:node-1be26c0b-03f2-4d2e-ae87-c02d7f33c123:pf0" {
		t.Errorf("pf0 nqn = %s", n)
	}
	for _, bad := range []string{
		"nqn.2024-01.io.openstack.ironic-dpu:node-00000000-0000-4000-8000-000000000000:pf0", // other node
		"nqn.2024-01.io.openstack.ironic-dpu:node-1be26c0b-03f2-4d2e-ae87-c02d7f33c123:pf01",
		"nqn.2024-01.io.openstack.ironic-dpu:node-1be26c0b-03f2-4d2e-ae87-c02d7f33c123:pf0sf1",
		"nqn.2024-01.io.openstack.ironic-dpu:node-1be26c0b-03f2-4d2e-ae87-c02d7f33c123:vf1",
	} {
		if f, ok := drivers.ParseHostSubsystemNQN(node, bad); ok {
			t.Errorf("%s parsed as %+v", bad, f)
		}
	}
}

func TestHostSerial(t *testing.T) {
	node := "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	for f, want := range map[string]string{
		"pf0":    "1BE26C0B03F24D2EAPF0",
		"pf1vf3": "1BE26C0B03F24DPF1VF3",
	} {
		fn, err := nodestate.ParseFunction(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := drivers.HostSerial(node, fn); got != want || len(got) != 20 {
			t.Errorf("HostSerial(%s) = %q, want %q", f, got, want)
		}
	}
}
