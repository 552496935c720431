// Package spdkgeneric is the storage driver for upstream SPDK (emulation
// "spdk-nvmf"): each host function gets an NVMe-oF subsystem whose listener is
// the host-facing transport — VFIOUSER (a vfio-user socket directory that a
// PCIe emulation layer or QEMU connects to) or, for tests and the sim driver,
// TCP on loopback. Volumes are namespaces of that subsystem.
package spdkgeneric

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// Options configure the driver; Transport and the listen fields are [spdk_nvmf]'s.
type Options struct {
	Client   *spdk.Client
	NodeUUID string
	// Transport is VFIOUSER (default) or TCP.
	Transport string
	// VFIOUserDir holds one listener directory per function (VFIOUSER).
	VFIOUserDir string
	// ListenAddress and ListenPort are the TCP listener (TCP).
	ListenAddress, ListenPort string
	// Card bounds the functions volumes may use (default: PF 0 only, which
	// is what one vfio-user server exposes per directory). VFs are allowed
	// when Card.VFsPerPF > 0 (each gets its own subsystem); the sim driver
	// and [dpu] max_vfs_per_pf set it.
	Card drivers.Card
	// AllowedHosts are the host NQNs allowed to connect to the host-facing
	// subsystems ([spdk_nvmf] allowed_host_nqns); empty allows any host,
	// which is refused for a TCP listener off loopback.
	AllowedHosts []string
	// DHCHAPKeyFile, with AllowedHosts, makes every allowed host prove the
	// secret in this file (DH-HMAC-CHAP, TCP only); SPDK reads the file.
	DHCHAPKeyFile string
	Logger        *zap.Logger
}

// MaxNamespaces is the namespace limit of each host subsystem.
const MaxNamespaces = 256

// Storage is the spdk-nvmf drivers.StorageDriver.
type Storage struct {
	o   Options
	log *zap.Logger
}

// NewStorage checks the options and returns the driver; it makes no SPDK call.
func NewStorage(o Options) (*Storage, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("%w: spdkgeneric: no SPDK client", errdefs.ErrInvalidArgument)
	}
	if !nodestate.ValidUUID(o.NodeUUID) {
		return nil, fmt.Errorf("%w: spdkgeneric: node uuid %q", errdefs.ErrInvalidArgument, o.NodeUUID)
	}
	o.Transport = strings.ToUpper(o.Transport)
	switch o.Transport {
	case "", "VFIOUSER":
		o.Transport = "VFIOUSER"
		if o.VFIOUserDir == "" {
			return nil, fmt.Errorf("%w: spdkgeneric: [spdk_nvmf] vfio_user_dir is empty", errdefs.ErrInvalidArgument)
		}
	case "TCP":
		if o.ListenAddress == "" || o.ListenPort == "" {
			return nil, fmt.Errorf("%w: spdkgeneric: TCP needs [spdk_nvmf] listen_address and listen_port", errdefs.ErrInvalidArgument)
		}
		if len(o.AllowedHosts) == 0 && !config.IsLoopback(o.ListenAddress) {
			return nil, fmt.Errorf("%w: spdkgeneric: a TCP listener on %s exposes the volumes to the network: set [spdk_nvmf] allowed_host_nqns",
				errdefs.ErrInvalidArgument, o.ListenAddress)
		}
	default:
		return nil, fmt.Errorf("%w: spdkgeneric: host transport %q (want VFIOUSER or TCP)", errdefs.ErrNotSupported, o.Transport)
	}
	if o.DHCHAPKeyFile != "" && (len(o.AllowedHosts) == 0 || !filepath.IsAbs(o.DHCHAPKeyFile)) {
		return nil, fmt.Errorf("%w: spdkgeneric: dhchap_key_file needs allowed_host_nqns and an absolute path", errdefs.ErrInvalidArgument)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Card.PFs <= 0 {
		o.Card.PFs = 1
	}
	return &Storage{o: o, log: o.Logger}, nil
}

// ValidateFunction implements drivers.StorageDriver.
func (s *Storage) ValidateFunction(f nodestate.Function) error {
	if err := nodestate.ValidateFunction(f); err != nil {
		return err
	}
	if f.SF != nil || (f.VF != nil && s.o.Card.VFsPerPF == 0) {
		return fmt.Errorf("%w: spdk-nvmf exposes volumes on PFs only, not %s", errdefs.ErrNotSupported, f)
	}
	return s.o.Card.Check(f)
}

func (s *Storage) listener(f nodestate.Function) spdk.ListenAddress {
	if s.o.Transport == "TCP" {
		return spdk.ListenAddress{Trtype: "TCP", Adrfam: adrfam(s.o.ListenAddress), Traddr: s.o.ListenAddress, Trsvcid: s.o.ListenPort}
	}
	return spdk.ListenAddress{Trtype: "VFIOUSER", Traddr: filepath.Join(s.o.VFIOUserDir, f.String()), Trsvcid: "0"}
}

func adrfam(addr string) string {
	if strings.Contains(addr, ":") {
		return "IPv6"
	}
	return "IPv4"
}

// Controllers implements drivers.StorageDriver with one nvmf_get_subsystems.
func (s *Storage) Controllers(ctx context.Context) ([]drivers.HostController, error) {
	subs, err := s.o.Client.GetSubsystems(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []drivers.HostController
	for _, sub := range subs {
		f, ok := drivers.ParseHostSubsystemNQN(s.o.NodeUUID, sub.NQN)
		if !ok {
			continue
		}
		// Not active until the listener is there and the host ACL is the
		// configured one: Activate fixes both.
		c := drivers.HostController{Function: f, ID: sub.NQN, Active: s.listening(sub) && s.aclDone(sub)}
		for _, ns := range sub.Namespaces {
			c.Namespaces = append(c.Namespaces, drivers.HostNamespace{NSID: ns.NSID, Bdev: ns.BdevName, UUID: ns.UUID})
		}
		out = append(out, c)
	}
	return out, nil
}

// EnsureController implements drivers.StorageDriver: transport (if missing)
// and subsystem; the listener comes with Activate, after the namespaces.
func (s *Storage) EnsureController(ctx context.Context, f nodestate.Function, cur *drivers.HostController) (drivers.HostController, error) {
	if cur != nil {
		return *cur, nil
	}
	trs, err := s.o.Client.GetTransports(ctx)
	if err != nil {
		return drivers.HostController{}, err
	}
	have := false
	for _, t := range trs {
		have = have || strings.EqualFold(t.Trtype, s.o.Transport)
	}
	if !have {
		if err := s.o.Client.CreateTransport(ctx, s.o.Transport); err != nil {
			return drivers.HostController{}, err
		}
	}
	nqn := drivers.HostSubsystemNQN(s.o.NodeUUID, f)
	// With allowed hosts, nobody may connect before Activate lists them.
	err = s.o.Client.CreateSubsystem(ctx, spdk.CreateSubsystemParams{
		NQN: nqn, AllowAnyHost: len(s.o.AllowedHosts) == 0, SerialNumber: drivers.HostSerial(s.o.NodeUUID, f), ModelNumber: "Ironic DPU NVMe",
		// SPDK's default of 32 would cap the data disks of one host.
		MaxNamespaces: MaxNamespaces,
	})
	if err != nil {
		return drivers.HostController{}, err
	}
	logctx.Logger(ctx, s.log).Info("created host NVMe subsystem", zap.String("nqn", nqn))
	return drivers.HostController{Function: f, ID: nqn}, nil
}

// AddNamespace implements drivers.StorageDriver.
func (s *Storage) AddNamespace(ctx context.Context, c drivers.HostController, ns drivers.HostNamespace) error {
	// No uuid/nguid: SPDK derives both from the bdev, i.e. the remote
	// namespace, so the host sees the volume's own identity.
	got, err := s.o.Client.AddNamespace(ctx, c.ID, spdk.Namespace{NSID: ns.NSID, BdevName: ns.Bdev})
	if err != nil {
		return err
	}
	if got != ns.NSID {
		return fmt.Errorf("%w: nvmf_subsystem_add_ns gave nsid %d, asked for %d", errdefs.ErrStorage, got, ns.NSID)
	}
	return nil
}

// RemoveNamespace implements drivers.StorageDriver.
func (s *Storage) RemoveNamespace(ctx context.Context, c drivers.HostController, nsid int) error {
	err := s.o.Client.RemoveNamespace(ctx, c.ID, nsid)
	if spdk.HasCode(err, spdk.CodeInvalidParams) {
		// -32602 also means "no such nsid"; re-read to tell.
		subs, rerr := s.o.Client.GetSubsystems(ctx, c.ID)
		if rerr != nil {
			return err
		}
		for _, sub := range subs {
			for _, n := range sub.Namespaces {
				if n.NSID == nsid {
					return err
				}
			}
		}
		return nil
	}
	return err
}

// Activate implements drivers.StorageDriver: the host ACL, then the listener.
func (s *Storage) Activate(ctx context.Context, c drivers.HostController) error {
	if c.Active {
		return nil
	}
	subs, err := s.o.Client.GetSubsystems(ctx, c.ID)
	if err != nil {
		return err
	}
	if err := s.ensureACL(ctx, subs[0]); err != nil {
		return err
	}
	if s.listening(subs[0]) {
		return nil
	}
	return s.listen(ctx, c)
}

func (s *Storage) listen(ctx context.Context, c drivers.HostController) error {
	l := s.listener(c.Function)
	if l.Trtype != "VFIOUSER" {
		return s.o.Client.AddListener(ctx, c.ID, l)
	}
	if err := os.MkdirAll(l.Traddr, 0o750); err != nil {
		return fmt.Errorf("%w: vfio-user dir: %w", errdefs.ErrStorage, err)
	}
	err := s.o.Client.AddListener(ctx, c.ID, l)
	if !spdk.HasCode(err, spdk.CodeInvalidParams) {
		return err
	}
	// A killed SPDK leaves its cntrl socket and libvfio-user cannot bind
	// over it ("Address already in use" → -32602): remove it if it is
	// stale, then retry once.
	removed, rerr := removeStaleSocket(s.o.VFIOUserDir, filepath.Base(l.Traddr))
	if rerr != nil {
		return fmt.Errorf("%w (stale vfio-user socket check: %v)", err, rerr)
	}
	if !removed {
		return err
	}
	logctx.Logger(ctx, s.log).Warn("removed a stale vfio-user socket left by a killed SPDK; retrying the listener",
		zap.String("path", filepath.Join(l.Traddr, cntrlName)))
	return s.o.Client.AddListener(ctx, c.ID, l)
}

// RemoveController implements drivers.StorageDriver: deleting the subsystem
// drops its listener and namespaces too.
func (s *Storage) RemoveController(ctx context.Context, c drivers.HostController) error {
	if err := s.o.Client.DeleteSubsystem(ctx, c.ID); err != nil {
		if _, gerr := s.o.Client.GetSubsystems(ctx, c.ID); spdk.HasCode(gerr, spdk.CodeENODEV) {
			return nil // already gone
		}
		return err
	}
	logctx.Logger(ctx, s.log).Info("deleted host NVMe subsystem", zap.String("nqn", c.ID))
	return nil
}
