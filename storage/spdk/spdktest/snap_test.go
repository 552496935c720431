package spdktest_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The SNAP methods: the agent's whole flow, and the errors the emulator
// gives where SNAP publishes none.
func TestSNAPMethods(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{SNAPPFs: 2, SNAPVFs: 2, SNAPNoInitConfig: true})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	call(t, c, "bdev_aio_create", map[string]any{"name": "d0", "filename": img, "block_size": 512}, nil)
	nqn := "nqn.2024-01.io.openstack.ironic-dpu:node-x:pf0"
	call(t, c, "nvme_subsystem_create", map[string]any{"nqn": nqn}, nil)
	code(t, c, -17, "nvme_subsystem_create", map[string]any{"nqn": nqn})
	call(t, c, "nvme_namespace_create", map[string]any{"nqn": nqn, "nsid": 1, "bdev_name": "d0", "bdev_type": "spdk", "uuid": "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"}, nil)
	code(t, c, -17, "nvme_namespace_create", map[string]any{"nqn": nqn, "nsid": 1, "bdev_name": "d0"})
	code(t, c, -19, "nvme_namespace_create", map[string]any{"nqn": nqn, "nsid": 2, "bdev_name": "nope"})
	code(t, c, -19, "nvme_controller_create", map[string]any{"nqn": nqn, "pf_id": 2})
	code(t, c, -19, "nvme_controller_create", map[string]any{"nqn": nqn, "pf_id": 0, "vf_id": 0}) // no SR-IOV yet
	code(t, c, -19, "nvme_controller_create", map[string]any{"nqn": nqn, "pci_bdf": "3b:00.7"})
	var res struct {
		CtrlID string `json:"ctrl_id"`
	}
	call(t, c, "nvme_controller_create", map[string]any{"nqn": nqn, "pci_bdf": "3b:00.2", "suspended": true}, &res)
	if res.CtrlID == "" {
		t.Fatal("no ctrl_id")
	}
	code(t, c, -17, "nvme_controller_create", map[string]any{"nqn": nqn, "pf_id": 0})
	call(t, c, "nvme_controller_attach_ns", map[string]any{"ctrl_id": res.CtrlID, "nsid": 1}, nil)
	code(t, c, -17, "nvme_controller_attach_ns", map[string]any{"ctrl_id": res.CtrlID, "nsid": 1})
	code(t, c, -16, "nvme_namespace_destroy", map[string]any{"nqn": nqn, "nsid": 1})
	code(t, c, -16, "nvme_subsystem_destroy", map[string]any{"nqn": nqn})
	if h := e.SNAPHost(); len(h) != 1 || h[0].Running || h[0].CtrlID != res.CtrlID || !reflect.DeepEqual(h[0].NSIDs, []int{1}) {
		t.Fatalf("host before resume = %+v", h)
	}
	call(t, c, "nvme_controller_resume", map[string]any{"ctrl_id": res.CtrlID}, nil)
	call(t, c, "nvme_controller_resume", map[string]any{"ctrl_id": res.CtrlID}, nil) // idempotent
	if h := e.SNAPHost(); !h[0].Running {
		t.Fatalf("host after resume = %+v", h)
	}
	// Quiesce: suspend holds the host's I/O until resume; both need the
	// controller (ctrl_id, the key NVIDIA's client sends for the same CLI
	// flag), the live-update flags belong to suspend only.
	code(t, c, -32602, "nvme_controller_suspend", map[string]any{})
	code(t, c, -32602, "nvme_controller_suspend", map[string]any{"ctrl": res.CtrlID})
	code(t, c, -32602, "nvme_controller_suspend", map[string]any{"ctrl_id": res.CtrlID, "timeout_ms": "soon"})
	code(t, c, -19, "nvme_controller_suspend", map[string]any{"ctrl_id": "NVMeCtrl99"})
	if h := e.SNAPHost(); !h[0].Running {
		t.Fatalf("a refused suspend suspended: %+v", h)
	}
	call(t, c, "nvme_controller_suspend", map[string]any{"ctrl_id": res.CtrlID}, nil)
	call(t, c, "nvme_controller_suspend", map[string]any{"ctrl_id": res.CtrlID}, nil) // idempotent
	if h := e.SNAPHost(); h[0].Running {
		t.Fatalf("host after suspend = %+v", h)
	}
	code(t, c, -32602, "nvme_controller_resume", map[string]any{"ctrl_id": res.CtrlID, "timeout_ms": 20})
	code(t, c, -19, "nvme_controller_resume", map[string]any{"ctrl_id": "NVMeCtrl99"})
	call(t, c, "nvme_controller_resume", map[string]any{"ctrl_id": res.CtrlID}, nil)
	if h := e.SNAPHost(); !h[0].Running {
		t.Fatalf("host after resume = %+v", h)
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

// As strict as SNAP: keys no public source shows are refused like SPDK
// refuses unknown keys, and the results carry only published fields.
func TestSNAPStrictKeysAndShapes(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{SNAPPFs: 1, SNAPVFs: 2})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	nqn := "nqn.2024-01.example:s"
	for _, bad := range []map[string]any{
		{"nqn": nqn, "serial_number": "S"}, {"nqn": nqn, "model_number": "M"}, {"nqn": nqn, "sn": "S"}, {"nqn": nqn, "nn": 8}, {},
	} {
		code(t, c, -32602, "nvme_subsystem_create", bad)
	}
	call(t, c, "nvme_subsystem_create", map[string]any{"nqn": nqn}, nil)
	code(t, c, -32602, "nvme_controller_create", map[string]any{"nqn": nqn, "pf_id": 0, "pci_bdf": "3b:00.2"}) // two selectors
	code(t, c, -32602, "nvme_controller_create", map[string]any{"nqn": nqn, "vf_id": 0})
	code(t, c, -32602, "nvme_controller_create", map[string]any{"nqn": nqn, "pci_bdf": "3b:00.2", "bogus": true})
	code(t, c, -32602, "emulation_function_list", map[string]any{"all": true, "type": "nvme"})

	var sub []map[string]json.RawMessage
	call(t, c, "nvme_subsystem_list", nil, &sub)
	if want := []string{"controllers", "mn", "mnan", "namespaces", "nn", "nqn", "sn"}; len(sub) != 2 || !reflect.DeepEqual(keys(sub[0]), want) {
		t.Fatalf("nvme_subsystem_list = %v", sub)
	}
	var ctrls []map[string]json.RawMessage
	call(t, c, "nvme_controller_list", nil, &ctrls)
	if want := []string{"ctrl_id", "namespaces", "nqn", "vhca_id"}; len(ctrls) != 1 || !reflect.DeepEqual(keys(ctrls[0]), want) {
		t.Fatalf("nvme_controller_list = %v", ctrls)
	}
	var fns []map[string]json.RawMessage
	call(t, c, "emulation_function_list", map[string]any{"all": true}, &fns)
	// The published init configuration's controller holds PF 0.
	if want := []string{"ctrl_id", "emulation_type", "hotplugged", "pci_bdf", "pf_index", "vfs", "vhca_id", "vuid"}; len(fns) != 1 || !reflect.DeepEqual(keys(fns[0]), want) ||
		string(fns[0]["ctrl_id"]) != `"`+spdktest.SNAPInitCtrl+`"` || string(fns[0]["vfs"]) != "[]" {
		t.Fatalf("emulation_function_list = %v", fns)
	}
}

// The published init configuration (NVMeCtrl1, admin-only, on PF 0 in
// subsystem nqn.2022-10.io.nvda.nvme:0) exists from every start; VFs exist
// only once the host enabled SR-IOV, which outlives a SNAP restart.
func TestSNAPInitConfigAndSRIOV(t *testing.T) {
	e := spdktest.StartT(t, spdktest.Options{SNAPPFs: 2, SNAPVFs: 3})
	c := spdk.NewUnix(e.Socket(), nil)
	defer c.Close()
	want := []spdktest.SNAPHostFunction{{PF: 0, CtrlID: spdktest.SNAPInitCtrl, NQN: spdktest.SNAPInitNQN, AdminOnly: true, Running: true}}
	if h := e.SNAPHost(); !reflect.DeepEqual(h, want) {
		t.Fatalf("host at start = %+v", h)
	}
	code(t, c, -17, "nvme_controller_create", map[string]any{"nqn": spdktest.SNAPInitNQN, "pf_id": 0})
	type fn struct {
		PFIndex int    `json:"pf_index"`
		PCIBDF  string `json:"pci_bdf"`
		VUID    string `json:"vuid"`
		VhcaID  int    `json:"vhca_id"`
		VFs     []struct {
			EmulationType string `json:"emulation_type"`
			PFIndex       int    `json:"pf_index"`
			VFIndex       int    `json:"vf_index"`
			PCIBDF        string `json:"pci_bdf"`
			VUID          string `json:"vuid"`
			VhcaID        int    `json:"vhca_id"`
		} `json:"vfs"`
	}
	var fns []fn
	call(t, c, "emulation_function_list", map[string]any{"all": true}, &fns)
	if len(fns) != 2 || len(fns[0].VFs)+len(fns[1].VFs) != 0 {
		t.Fatalf("functions without SR-IOV = %+v", fns)
	}
	if err := e.EnableSRIOV(1, 4); err == nil {
		t.Fatal("4 VFs on a PF with 3")
	}
	if err := e.EnableSRIOV(1, 2); err != nil {
		t.Fatal(err)
	}
	call(t, c, "emulation_function_list", map[string]any{"all": true}, &fns)
	v := fns[1].VFs
	if len(fns[0].VFs) != 0 || len(v) != 2 || v[1].PFIndex != 1 || v[1].VFIndex != 1 || v[1].EmulationType != "NVME" || v[1].PCIBDF == "" || v[1].VUID == "" {
		t.Fatalf("functions with SR-IOV on pf1 = %+v", fns)
	}
	// Every selector names the same function.
	call(t, c, "nvme_subsystem_create", map[string]any{"nqn": "nqn.x:a"}, nil)
	for i, sel := range []map[string]any{{"vuid": v[0].VUID}, {"vhca_id": v[1].VhcaID}} {
		sel["nqn"] = "nqn.x:a"
		call(t, c, "nvme_controller_create", sel, nil)
		code(t, c, -17, "nvme_controller_create", map[string]any{"nqn": "nqn.x:a", "pf_id": 1, "vf_id": i})
	}
	if err := e.EnableSRIOV(1, 1); err == nil {
		t.Fatal("SR-IOV dropped a VF that holds a controller")
	}
	// A SNAP restart forgets the agent's objects, re-applies the init
	// configuration, and keeps the host's VFs.
	sock := e.Socket()
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(sock); err != nil {
		t.Fatal(err)
	}
	if h := e.SNAPHost(); !reflect.DeepEqual(h, want) {
		t.Fatalf("host after restart = %+v", h)
	}
	call(t, c, "emulation_function_list", map[string]any{"all": true}, &fns)
	if len(fns[1].VFs) != 2 {
		t.Fatalf("VFs after restart = %+v", fns)
	}
	// Without the init configuration PF 0 is free.
	bare := spdktest.StartT(t, spdktest.Options{SNAPNoInitConfig: true})
	if h := bare.SNAPHost(); len(h) != 0 {
		t.Fatalf("bare SNAP host = %+v", h)
	}
}
