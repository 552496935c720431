package drivers_test

import (
	"errors"
	"testing"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf/sftest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

const node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"

// Every driver's ValidateFunction honours [dpu] pfs and max_vfs_per_pf, so a
// function the card cannot have is refused at admission (except SNAP
// storage, which asks SNAP).
func TestEveryDriverChecksTheCard(t *testing.T) {
	card := drivers.Card{PFs: 2, VFsPerPF: 4}
	client := spdk.NewUnix("/nonexistent", nil)
	bf, err := representortest.New(t.TempDir(), representortest.Options{PFs: 4}) // sysfs shows 4 PFs; the config says 2
	if err != nil {
		t.Fatal(err)
	}
	f := representor.Finder{Root: bf.Root, Controller: bluefield.HostController}
	simStorage, err := sim.NewCardStorage(client, node, "", card, nil)
	if err != nil {
		t.Fatal(err)
	}
	generic, err := spdkgeneric.NewStorage(spdkgeneric.Options{Client: client, NodeUUID: node, VFIOUserDir: "/x", Card: card})
	if err != nil {
		t.Fatal(err)
	}
	validators := map[string]func(nodestate.Function) error{
		"sim network":       sim.NewCardNetwork(card).ValidateFunction,
		"sim storage":       simStorage.ValidateFunction,
		"spdk-generic":      generic.ValidateFunction,
		"bluefield network": bluefield.NewNetworkWith(f, &sf.Manager{NL: sftest.NewNetlink(bf), Finder: f, Log: zap.NewNop()}, card).ValidateFunction,
		// bluefield storage is not here: its NVMe functions are those SNAP
		// reports (bluefield.TestFunctionsComeFromSNAP).
	}
	for name, validate := range validators {
		for _, fn := range []nodestate.Function{{PF: 5}, {PF: 2}, {PF: 1, VF: nodestate.IntPtr(4)}, {PF: 0, VF: nodestate.IntPtr(100)}} {
			if err := validate(fn); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s accepted %s: %v", name, fn, err)
			}
		}
		for _, fn := range []nodestate.Function{{PF: 1}, {PF: 1, VF: nodestate.IntPtr(3)}} {
			if err := validate(fn); err != nil {
				t.Errorf("%s refused %s: %v", name, fn, err)
			}
		}
	}
}

func TestCardWithoutVFs(t *testing.T) {
	c := drivers.Card{PFs: 1}
	if err := c.Check(nodestate.Function{PF: 0, VF: nodestate.IntPtr(0)}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("vf on a card without VFs: %v", err)
	}
	if err := c.Check(nodestate.Function{PF: 0, SF: nodestate.IntPtr(7)}); err != nil {
		t.Fatalf("sfs are not bounded by the card: %v", err)
	}
}
