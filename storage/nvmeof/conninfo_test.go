package nvmeof_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
)

func data(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseOldAndNewFormats(t *testing.T) {
	old, err := nvmeof.Parse(data(t, `{"nqn":"nqn.2010-10.org.openstack:volume-1","target_portal":"192.0.2.10","target_port":"4420","transport_type":"rdma","ns_id":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if old.NQN != "nqn.2010-10.org.openstack:volume-1" || len(old.Portals) != 1 || old.Portals[0] != (nvmeof.Portal{Address: "192.0.2.10", Port: 4420, Transport: "rdma"}) || old.NSID != 1 {
		t.Fatalf("old format: %+v", old)
	}
	nw, err := nvmeof.Parse(data(t, `{"target_nqn":"nqn.2010-10.org.openstack:volume-2","vol_uuid":"a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f","portals":[["192.0.2.10",4420,"tcp"],["192.0.2.11",4420,"RoCEv2"]]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(nw.Portals) != 2 || nw.Portals[1].Transport != "rdma" || nw.VolUUID == "" {
		t.Fatalf("new format: %+v", nw)
	}
}

func TestParseRejects(t *testing.T) {
	for name, s := range map[string]string{
		"no nqn":            `{"target_portal":"192.0.2.10","target_port":4420}`,
		"bad nqn":           `{"nqn":"iqn.2010-10.org:x","target_portal":"192.0.2.10","target_port":4420}`,
		"port 0":            `{"nqn":"nqn.2010-10.org.openstack:v","target_portal":"192.0.2.10","target_port":0}`,
		"port 65536":        `{"nqn":"nqn.2010-10.org.openstack:v","target_portal":"192.0.2.10","target_port":65536}`,
		"unknown transport": `{"nqn":"nqn.2010-10.org.openstack:v","target_portal":"192.0.2.10","target_port":4420,"transport_type":"fc"}`,
		"no portal":         `{"target_nqn":"nqn.2010-10.org.openstack:v"}`,
		"portal shape":      `{"target_nqn":"nqn.2010-10.org.openstack:v","portals":[["192.0.2.10",4420]]}`,
		"bad address":       `{"target_nqn":"nqn.2010-10.org.openstack:v","portals":[["not an address!",4420,"tcp"]]}`,
		"dup portal":        `{"target_nqn":"nqn.2010-10.org.openstack:v","portals":[["192.0.2.10",4420,"tcp"],["192.0.2.10",4420,"tcp"]]}`,
		"nqn not string":    `{"target_nqn":5,"portals":[["192.0.2.10",4420,"tcp"]]}`,
	} {
		if _, err := nvmeof.Parse(data(t, s)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
