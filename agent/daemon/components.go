package daemon

import (
	"context"
	"fmt"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// driverNames are the [dpu] driver values the agent knows.
const driverNames = "sim, bluefield, spdk-generic"

// buildDriver selects the DPU vendor driver: the only place vendor packages
// are named. Adding a vendor is one package plus one case here.
func buildDriver(cfg *config.Config, client *spdk.Client, log *zap.Logger) (*drivers.Driver, error) {
	node := cfg.Default.NodeUUID
	card := drivers.Card{PFs: cfg.DPU.PFs, VFsPerPF: cfg.DPU.MaxVFsPerPF}
	switch cfg.DPU.Driver {
	case "sim":
		st, err := sim.NewCardStorage(client, node, cfg.NVMf.ListenPort, card, log.Named("sim"), cfg.NVMf.AllowedHostNQNs...)
		if err != nil {
			return nil, err
		}
		// What a pause would do to the host, for tests and the demo.
		st.WithPauseFile(filepath.Join(cfg.Default.StateDir, sim.PauseFileName))
		return &drivers.Driver{Name: "sim", Network: sim.NewCardNetwork(card), Storage: st}, nil
	case "bluefield":
		// SNAP's NVMe functions come from SNAP (emulation_function_list),
		// not from [dpu] pfs/max_vfs_per_pf, which shape the network side.
		st, err := bluefield.NewStorage(bluefield.StorageOptions{Client: client, NodeUUID: node, Logger: log.Named("bluefield")})
		if err != nil {
			return nil, err
		}
		return &drivers.Driver{Name: "bluefield", Network: bluefield.NewNetwork(cfg.OVS.SysfsRoot, card, log.Named("bluefield")), Storage: st}, nil
	case "spdk-generic", "spdk-nvmf":
		st, err := spdkgeneric.NewStorage(spdkgeneric.Options{
			Client: client, NodeUUID: node, Transport: cfg.NVMf.Transport, VFIOUserDir: cfg.NVMf.VFIOUserDir,
			ListenAddress: cfg.NVMf.ListenAddress, ListenPort: cfg.NVMf.ListenPort, Card: card, AllowedHosts: cfg.NVMf.AllowedHostNQNs,
			DHCHAPKeyFile: cfg.NVMf.DHCHAPKeyFile, Logger: log.Named("spdk-generic"),
		})
		if err != nil {
			return nil, err
		}
		// A generic switchdev NIC in the host: its functions are on the
		// local controller (pf0vf3, pf0sf88), not on an external one.
		return &drivers.Driver{Name: "spdk-generic", Network: bluefield.NewLocalNetwork(cfg.OVS.SysfsRoot, card, log.Named("spdk-generic")), Storage: st}, nil
	}
	return nil, fmt.Errorf("%w: [dpu] driver %q: want one of %s", errdefs.ErrInvalidArgument, cfg.DPU.Driver, driverNames)
}

// components are the reconcilers and what the daemon runs and closes for
// them. Building them starts nothing.
type components struct {
	reconcilers []agent.Reconciler
	// runs are the connection watchers (SPDK re-dial, OVSDB connection):
	// each blocks until its ctx is done.
	runs []func(context.Context)
	// hold pauses and resumes the host's controllers (quiesce).
	hold  *storage.Hold
	close func()
}

// buildComponents builds the DPU driver and the storage and network
// reconcilers. None of them needs its backend to be up; trigger asks for a
// reconcile when SPDK or OVSDB (re)connects.
func buildComponents(cfg *config.Config, log *zap.Logger, trigger func()) (*components, error) {
	// A restarted SPDK has forgotten every bdev and subsystem: reconcile as
	// soon as it answers again, even if the restart beat the health probe.
	client := spdk.NewUnix(cfg.SPDK.RPCSocket, log.Named("spdk"), spdk.WithOnReconnect(trigger))
	client.SetCallTimeout(cfg.SPDK.RPCTimeout)
	drv, err := buildDriver(cfg, client, log)
	if err != nil {
		return nil, err
	}
	no := NetworkOptions(cfg.OVS)
	no.NodeUUID, no.Driver, no.Trigger, no.Logger = cfg.Default.NodeUUID, drv.Network, trigger, log
	no.RetryBase, no.RetryMax = cfg.Default.RetryBase, cfg.Default.ReconcileInterval
	net, err := network.New(no)
	if err != nil {
		return nil, err
	}
	// A record of controllers a previous agent left paused is read here,
	// before anything connects; the agent's Run resumes them.
	hold, err := storage.NewHold(storage.HoldOptions{
		Driver: drv.Storage, DriverName: drv.Name, File: filepath.Join(cfg.Default.StateDir, storage.QuiesceFileName),
		MaxHold: cfg.Storage.QuiesceMaxHold, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	st, err := storage.New(storage.Options{
		Client: client, Storage: StorageSettings(cfg.Storage), NodeUUID: cfg.Default.NodeUUID, Driver: drv.Storage, Logger: log,
		NSIDFile: filepath.Join(cfg.Default.StateDir, "nsids.json"), Hold: hold,
	})
	if err != nil {
		return nil, err
	}
	return &components{
		reconcilers: []agent.Reconciler{st, net},
		hold:        hold,
		runs:        []func(context.Context){client.Run, net.Run},
		close:       func() { _ = client.Close() },
	}, nil
}
