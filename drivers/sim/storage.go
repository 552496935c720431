package sim

import (
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// DefaultStoragePort is the loopback TCP port of the sim host controllers
// when [spdk_nvmf] listen_port is empty.
const DefaultStoragePort = "4430"

// NewStorage returns the sim drivers.StorageDriver: upstream SPDK emulation
// with a TCP listener on 127.0.0.1 instead of VFIOUSER, so every host
// controller and namespace is plain nvmf state that the SPDK emulator (or a
// real SPDK) shows, and nothing needs PCIe. PFs 0..DefaultPFs-1 and their VFs
// are accepted; each function gets its own subsystem.
func NewStorage(client *spdk.Client, nodeUUID, listenPort string, log *zap.Logger) (*Storage, error) {
	return NewCardStorage(client, nodeUUID, listenPort, drivers.Card{PFs: DefaultPFs, VFsPerPF: drivers.DefaultCard.VFsPerPF}, log)
}

// NewCardStorage is NewStorage for a card shaped like card ([dpu] pfs,
// max_vfs_per_pf). allowedHosts, when given, restrict the subsystems to those
// host NQNs ([spdk_nvmf] allowed_host_nqns).
func NewCardStorage(client *spdk.Client, nodeUUID, listenPort string, card drivers.Card, log *zap.Logger, allowedHosts ...string) (*Storage, error) {
	if listenPort == "" {
		listenPort = DefaultStoragePort
	}
	st, err := spdkgeneric.NewStorage(spdkgeneric.Options{
		Client: client, NodeUUID: nodeUUID, Transport: "TCP",
		ListenAddress: "127.0.0.1", ListenPort: listenPort,
		Card: card, AllowedHosts: allowedHosts, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	return &Storage{Storage: st}, nil
}
