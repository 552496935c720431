package spdkgeneric_test

import (
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

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
	if err := s.ValidateFunction(state.Function{PF: 1}); err != nil {
		t.Error(err)
	}
	if err := s.ValidateFunction(state.Function{PF: 2}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("pf 2: %v", err)
	}
	if err := s.ValidateFunction(state.Function{PF: 0, VF: state.IntPtr(1)}); !errors.Is(err, errdefs.ErrNotSupported) {
		t.Errorf("vf: %v", err)
	}
}
