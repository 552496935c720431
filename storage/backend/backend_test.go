package backend_test

import (
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/backend"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

func TestNames(t *testing.T) {
	n := backend.ControllerName("6F1C5E0A-3B7D-4C2E-9A41-2D8F7B9E0C11")
	if n != "idpu-6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11" {
		t.Fatalf("name = %s", n)
	}
	if id, ok := backend.VolumeIDOf(n); !ok || id != "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11" {
		t.Fatalf("VolumeIDOf = %s %v", id, ok)
	}
	for _, other := range []string{"Nvme0", "idpu-cfgdrive", "idpu-6f1c5e0a", "xidpu-6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"} {
		if _, ok := backend.VolumeIDOf(other); ok {
			t.Errorf("%s taken for an agent controller", other)
		}
	}
}

func TestAttachParamsAndConfig(t *testing.T) {
	c := spdk.NewUnix("/nonexistent", nil)
	if _, err := backend.New(backend.Options{Client: c, Multipath: "disable"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("multipath disable accepted: %v", err)
	}
	b, err := backend.New(backend.Options{Client: c, HostNQN: "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6",
		Multipath: "failover", CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5, FastIOFailTimeoutSec: 10})
	if err != nil || b.CheckConfig() != nil {
		t.Fatal(err)
	}
	p := b.AttachParams("idpu-x", nvmeof.Target{NQN: "nqn.2010-10.org.openstack:volume-x"}, nvmeof.Portal{Address: "fd00::1", Port: 4420, Transport: "rdma"})
	if p.Trtype != "RDMA" || p.Adrfam != "IPv6" || p.Trsvcid != "4420" || p.Multipath != "failover" || p.Hostnqn == "" ||
		*p.CtrlrLossTimeoutSec != -1 || *p.ReconnectDelaySec != 5 || *p.FastIOFailTimeoutSec != 10 {
		t.Fatalf("params = %+v", p)
	}
	for _, bad := range [][3]int{{3, 5, 0}, {-1, 5, 3}, {30, 5, 30}, {-1, 0, 0}, {-2, 5, 0}} {
		bb, _ := backend.New(backend.Options{Client: c, HostNQN: "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6",
			CtrlrLossTimeoutSec: bad[0], ReconnectDelaySec: bad[1], FastIOFailTimeoutSec: bad[2]})
		if err := bb.CheckConfig(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("timeouts %v accepted", bad)
		}
	}
	for _, good := range [][3]int{{-1, 5, 0}, {30, 5, 10}, {0, 0, 0}, {-1, 5, 5}} {
		bb, _ := backend.New(backend.Options{Client: c, HostNQN: "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6",
			CtrlrLossTimeoutSec: good[0], ReconnectDelaySec: good[1], FastIOFailTimeoutSec: good[2]})
		if err := bb.CheckConfig(); err != nil {
			t.Errorf("timeouts %v refused: %v", good, err)
		}
	}
	nob, _ := backend.New(backend.Options{Client: c})
	if err := nob.CheckConfig(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty host nqn: %v", err)
	}
}

func TestSelectBdev(t *testing.T) {
	cands := []spdk.Bdev{{Name: "cn1", UUID: "11111111-1111-4111-8111-111111111111"}, {Name: "cn2", UUID: "22222222-2222-4222-8222-222222222222"}}
	cases := []struct {
		t    nvmeof.Target
		want string
	}{
		{nvmeof.Target{VolUUID: "22222222-2222-4222-8222-222222222222", NSID: 1}, "cn2"}, // vol_uuid wins over ns_id
		{nvmeof.Target{VolumeNGUID: "11111111111141118111111111111111"}, "cn1"},
		{nvmeof.Target{NSID: 2}, "cn2"},
	}
	for _, c := range cases {
		b, err := backend.SelectBdev("c", c.t, cands)
		if err != nil || b.Name != c.want {
			t.Errorf("%+v: %s %v", c.t, b.Name, err)
		}
	}
	if _, err := backend.SelectBdev("c", nvmeof.Target{}, cands); !errors.Is(err, errdefs.ErrStorage) {
		t.Errorf("ambiguous: %v", err)
	}
	if b, err := backend.SelectBdev("c", nvmeof.Target{}, cands[:1]); err != nil || b.Name != "cn1" {
		t.Errorf("single: %v", err)
	}
}
