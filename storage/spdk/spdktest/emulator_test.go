package spdktest_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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

func TestSNAPMethods(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{SNAPPFs: 1, SNAPVFs: 2})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	call(t, c, "bdev_aio_create", map[string]any{"name": "d0", "filename": img, "block_size": 512}, nil)
	nqn := "nqn.2024-01.io.openstack.ironic-dpu:node-x:pf0"
	call(t, c, "nvme_subsystem_create", map[string]any{"nqn": nqn, "serial_number": "S", "model_number": "M"}, nil)
	code(t, c, -17, "nvme_subsystem_create", map[string]any{"nqn": nqn})
	code(t, c, -32602, "nvme_subsystem_create", map[string]any{"nqn": nqn, "bogus": 1})
	call(t, c, "nvme_namespace_create", map[string]any{"nqn": nqn, "nsid": 1, "bdev_name": "d0", "bdev_type": "spdk", "uuid": "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"}, nil)
	code(t, c, -17, "nvme_namespace_create", map[string]any{"nqn": nqn, "nsid": 1, "bdev_name": "d0"})
	code(t, c, -19, "nvme_namespace_create", map[string]any{"nqn": nqn, "nsid": 2, "bdev_name": "nope"})
	code(t, c, -19, "nvme_controller_create", map[string]any{"nqn": nqn, "pf_id": 1})
	code(t, c, -19, "nvme_controller_create", map[string]any{"nqn": nqn, "pf_id": 0, "vf_id": 2})
	var res struct {
		CtrlID string `json:"ctrl_id"`
	}
	call(t, c, "nvme_controller_create", map[string]any{"nqn": nqn, "pf_id": 0, "suspended": true}, &res)
	if res.CtrlID == "" {
		t.Fatal("no ctrl_id")
	}
	code(t, c, -17, "nvme_controller_create", map[string]any{"nqn": nqn, "pf_id": 0})
	call(t, c, "nvme_controller_attach_ns", map[string]any{"ctrl_id": res.CtrlID, "nsid": 1}, nil)
	code(t, c, -17, "nvme_controller_attach_ns", map[string]any{"ctrl_id": res.CtrlID, "nsid": 1})
	code(t, c, -16, "nvme_namespace_destroy", map[string]any{"nqn": nqn, "nsid": 1})
	code(t, c, -16, "nvme_subsystem_destroy", map[string]any{"nqn": nqn})
	call(t, c, "nvme_controller_resume", map[string]any{"ctrl_id": res.CtrlID}, nil)
	var fns []struct {
		PFIndex int    `json:"pf_index"`
		CtrlID  string `json:"ctrl_id"`
		VFs     []struct {
			VFIndex int `json:"vf_index"`
		} `json:"vfs"`
	}
	call(t, c, "emulation_function_list", map[string]any{"all": true}, &fns)
	if len(fns) != 1 || fns[0].CtrlID != res.CtrlID || len(fns[0].VFs) != 2 {
		t.Fatalf("functions = %+v", fns)
	}
	var subs []struct {
		Namespaces []struct {
			NSID        int    `json:"nsid"`
			Bdev        string `json:"bdev"`
			Controllers []struct {
				CtrlID string `json:"ctrl_id"`
			} `json:"controllers"`
		} `json:"namespaces"`
	}
	call(t, c, "nvme_subsystem_list", nil, &subs)
	if len(subs) != 1 || subs[0].Namespaces[0].Bdev != "d0" || subs[0].Namespaces[0].Controllers[0].CtrlID != res.CtrlID {
		t.Fatalf("subsystems = %+v", subs)
	}
	// The bdev is claimed while SNAP exposes it.
	bs, _ := c.GetBdevs(context.Background(), "d0")
	if !bs[0].Claimed {
		t.Fatal("bdev not claimed")
	}
	call(t, c, "nvme_controller_detach_ns", map[string]any{"ctrl_id": res.CtrlID, "nsid": 1}, nil)
	code(t, c, -19, "nvme_controller_detach_ns", map[string]any{"ctrl_id": res.CtrlID, "nsid": 1})
	call(t, c, "nvme_namespace_destroy", map[string]any{"nqn": nqn, "nsid": 1}, nil)
	call(t, c, "nvme_controller_destroy", map[string]any{"ctrl_id": res.CtrlID, "force": true}, nil)
	call(t, c, "nvme_subsystem_destroy", map[string]any{"nqn": nqn}, nil)
	code(t, c, -19, "nvme_subsystem_destroy", map[string]any{"nqn": nqn})
	if e.MutatingCalls() == 0 || e.Calls("nvme_subsystem_list") != 1 {
		t.Fatalf("counters = %v", e.CallCounts())
	}
}
