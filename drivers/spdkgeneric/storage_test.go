package spdkgeneric_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const testNode = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"

var _ drivers.StorageDriver = (*spdkgeneric.Storage)(nil)

func TestOptions(t *testing.T) {
	c := spdk.NewUnix("/nonexistent", nil)
	node := "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	bad := map[string]spdkgeneric.Options{
		"no client":      {NodeUUID: node, VFIOUserDir: "/x"},
		"bad node":       {Client: c, NodeUUID: "x", VFIOUserDir: "/x"},
		"no vfio dir":    {Client: c, NodeUUID: node},
		"tcp no port":    {Client: c, NodeUUID: node, Transport: "tcp", ListenAddress: "127.0.0.1"},
		"rdma host side": {Client: c, NodeUUID: node, Transport: "RDMA"},
	}
	for name, o := range bad {
		if _, err := spdkgeneric.NewStorage(o); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	s, err := spdkgeneric.NewStorage(spdkgeneric.Options{Client: c, NodeUUID: node, VFIOUserDir: "/x", Card: drivers.Card{PFs: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ValidateFunction(nodestate.Function{PF: 1}); err != nil {
		t.Error(err)
	}
	if err := s.ValidateFunction(nodestate.Function{PF: 2}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("pf 2: %v", err)
	}
	if err := s.ValidateFunction(nodestate.Function{PF: 0, VF: nodestate.IntPtr(1)}); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Errorf("vf: %v", err)
	}
}

// A SIGKILLed SPDK leaves pf0's cntrl socket; the restarted SPDK cannot
// listen there (-32602) until the driver removes the stale file.
func TestActivateAfterCrashRemovesStaleSocket(t *testing.T) {
	ctx := context.Background()
	e := spdktest.StartT(t, spdktest.Options{})
	sock := e.Socket()
	dir := filepath.Join(t.TempDir(), "vfio-user")
	c := spdk.NewUnix(sock, nil)
	defer c.Close()
	s, err := spdkgeneric.NewStorage(spdkgeneric.Options{Client: c, NodeUUID: testNode, VFIOUserDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	activate := func() error {
		hc, err := s.EnsureController(ctx, nodestate.Function{PF: 0}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.Activate(ctx, hc)
	}
	if err := activate(); err != nil {
		t.Fatal(err)
	}
	cntrl := filepath.Join(dir, "pf0", "cntrl")
	if err := e.Crash(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(cntrl); err != nil {
		t.Fatalf("crash removed cntrl: %v", err)
	}
	if err := e.Start(sock); err != nil {
		t.Fatal(err)
	}
	if err := activate(); err != nil {
		t.Fatalf("listener after crash: %v", err)
	}
	hcs, err := s.Controllers(ctx)
	if err != nil || len(hcs) != 1 || !hcs[0].Active {
		t.Fatalf("controllers after recovery: %+v %v", hcs, err)
	}
	if fi, err := os.Lstat(cntrl); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no live cntrl after recovery: %v", err)
	}
}
