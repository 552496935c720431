package spdktest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const host = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"

func call(t *testing.T, c *spdk.Client, method string, params, result any) {
	t.Helper()
	if err := c.Call(context.Background(), method, params, result); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

func code(t *testing.T, c *spdk.Client, want int, method string, params any) {
	t.Helper()
	err := c.Call(context.Background(), method, params, nil)
	var se *spdk.Error
	if !errors.As(err, &se) || se.Code != want {
		t.Fatalf("%s %v: err %v, want code %d", method, params, err, want)
	}
}

// TestSelfTarget: one instance is both the Cinder target (malloc + nvmf TCP)
// and the initiator, as a.setup + b-dpu in one process.
func TestSelfTarget(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	nqn := "nqn.2010-10.org.openstack:volume-1"
	call(t, c, "bdev_malloc_create", map[string]any{"name": "M0", "num_blocks": 2048, "block_size": 512, "uuid": "5b3c2a10-7d4e-4f61-9a8b-0c1d2e3f4a50"}, nil)
	call(t, c, "bdev_malloc_create", map[string]any{"name": "M1", "num_blocks": 2048, "block_size": 512}, nil)
	call(t, c, "nvmf_create_transport", map[string]any{"trtype": "TCP"}, nil)
	call(t, c, "nvmf_create_subsystem", map[string]any{"nqn": nqn, "allow_any_host": true}, nil)
	// Explicit namespace uuid: the attached bdev gets it.
	call(t, c, "nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "M0", "uuid": "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"}}, nil)
	// No uuid: it equals M1's, and the loopback bdev cannot register.
	call(t, c, "nvmf_subsystem_add_ns", map[string]any{"nqn": nqn, "namespace": map[string]any{"bdev_name": "M1"}}, nil)
	call(t, c, "nvmf_subsystem_add_listener", map[string]any{"nqn": nqn, "listen_address": map[string]any{"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": "4420"}}, nil)
	var names []string
	call(t, c, "bdev_nvme_attach_controller", map[string]any{"name": "N", "trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420", "subnqn": nqn, "hostnqn": host, "multipath": "disable"}, &names)
	if len(names) != 1 || names[0] != "Nn1" {
		t.Fatalf("attach = %v", names)
	}
	bs, err := c.GetBdevs(context.Background(), "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11")
	if err != nil || bs[0].Name != "Nn1" || bs[0].NumBlocks != 2048 {
		t.Fatalf("by alias: %+v %v", bs, err)
	}
	// The same path under another name is a duplicate (-17); once the
	// export is deleted nothing listens on the port any more (-19).
	code(t, c, -17, "bdev_nvme_attach_controller", map[string]any{"name": "X", "trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420", "subnqn": nqn, "hostnqn": host})
	call(t, c, "bdev_nvme_detach_controller", map[string]any{"name": "N"}, nil)
	call(t, c, "nvmf_delete_subsystem", map[string]any{"nqn": nqn}, nil)
	code(t, c, -19, "bdev_nvme_attach_controller", map[string]any{"name": "X", "trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4420", "subnqn": nqn, "hostnqn": host})
}

func TestRemoteRemovedMarksPathsFailed(t *testing.T) {
	id := "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"
	r := spdktest.CinderVolume(id, host, "4420")
	e := spdktest.StartT(t, spdktest.Options{Remotes: []spdktest.RemoteSubsystem{r}})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	call(t, c, "bdev_nvme_attach_controller", map[string]any{"name": "V", "trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": "4420", "subnqn": r.NQN, "hostnqn": host, "multipath": "multipath"}, nil)
	e.RemoveRemote(r.NQN)
	cs, err := c.GetControllers(context.Background(), "V")
	if err != nil || cs[0].Ctrlrs[0].State != "failed" {
		t.Fatalf("controllers = %+v %v", cs, err)
	}
	code(t, c, -19, "bdev_nvme_attach_controller", map[string]any{"name": "W", "trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": "4420", "subnqn": r.NQN, "hostnqn": "nqn.2014-08.org.nvmexpress:uuid:deadbeef-0000-4000-8000-000000000000"})
	// Injected failures come before any side effect.
	e.InjectError("bdev_nvme_detach_controller", -5, "Input/output error")
	code(t, c, -5, "bdev_nvme_detach_controller", map[string]any{"name": "V"})
	call(t, c, "bdev_nvme_detach_controller", map[string]any{"name": "V"}, nil)
}
