package bluefield

// Storage half of the BlueField driver: DOCA SNAP 4 (research/spdk.md §3.1).
// Per host function: an NVMe subsystem (nvme_subsystem_create), a controller
// on the PF/VF created suspended (nvme_controller_create), namespaces
// (nvme_namespace_create + nvme_controller_attach_ns), then
// nvme_controller_resume so the host's first look already finds the boot
// disk. The JSON keys are those NVIDIA's DPF client sends; the "suspended"
// field of nvme_controller_list is assumed (no SNAP transcript exists yet:
// confirm on hardware).

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// StorageOptions configure the SNAP storage driver.
type StorageOptions struct {
	Client   *spdk.Client
	NodeUUID string
	// PFs is how many NVMe-emulation PFs the card exposes (default 1), VFs
	// how many VFs each has (default 0: PF only).
	PFs, VFs int
	Logger   *zap.Logger
}

// Storage is the SNAP 4 drivers.StorageDriver.
type Storage struct {
	o   StorageOptions
	log *zap.Logger
}

// NewStorage returns the driver; it makes no SNAP call.
func NewStorage(o StorageOptions) (*Storage, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("%w: bluefield storage: no SNAP client", errdefs.ErrInvalidArgument)
	}
	if !nodestate.ValidUUID(o.NodeUUID) {
		return nil, fmt.Errorf("%w: bluefield storage: node uuid %q", errdefs.ErrInvalidArgument, o.NodeUUID)
	}
	if o.PFs <= 0 {
		o.PFs = 1
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Storage{o: o, log: o.Logger}, nil
}

// ValidateFunction implements drivers.StorageDriver.
func (s *Storage) ValidateFunction(f nodestate.Function) error {
	if err := nodestate.ValidateFunction(f); err != nil {
		return err
	}
	if f.SF != nil {
		return fmt.Errorf("%w: SNAP emulates NVMe on PFs and VFs, not SFs", errdefs.ErrNotSupported)
	}
	if f.PF >= s.o.PFs {
		return fmt.Errorf("%w: NVMe emulation PF %d out of range 0..%d", errdefs.ErrInvalidArgument, f.PF, s.o.PFs-1)
	}
	if f.VF != nil && *f.VF >= s.o.VFs {
		return fmt.Errorf("%w: NVMe emulation VF %d out of range (card has %d per PF)", errdefs.ErrInvalidArgument, *f.VF, s.o.VFs)
	}
	return nil
}

type snapSubsystem struct {
	NQN        string `json:"nqn"`
	Namespaces []struct {
		NSID int    `json:"nsid"`
		Bdev string `json:"bdev"`
		UUID string `json:"uuid"`
	} `json:"namespaces"`
}

type snapController struct {
	CtrlID     string `json:"ctrl_id"`
	NQN        string `json:"nqn"`
	Suspended  bool   `json:"suspended"`
	Namespaces []struct {
		NSID int    `json:"nsid"`
		Bdev string `json:"bdev"`
	} `json:"namespaces"`
}

// Controllers implements drivers.StorageDriver (nvme_subsystem_list and
// nvme_controller_list). A subsystem of ours without a controller (a create
// that failed half-way) is listed with an empty ID.
func (s *Storage) Controllers(ctx context.Context) ([]drivers.HostController, error) {
	var subs []snapSubsystem
	if err := s.o.Client.Call(ctx, "nvme_subsystem_list", nil, &subs); err != nil {
		return nil, err
	}
	var ctrls []snapController
	if err := s.o.Client.Call(ctx, "nvme_controller_list", nil, &ctrls); err != nil {
		return nil, err
	}
	var out []drivers.HostController
	for _, sub := range subs {
		f, ok := drivers.ParseHostSubsystemNQN(s.o.NodeUUID, sub.NQN)
		if !ok {
			continue
		}
		hc := drivers.HostController{Function: f}
		uuids := map[int]string{}
		for _, ns := range sub.Namespaces {
			uuids[ns.NSID] = ns.UUID
		}
		for _, c := range ctrls {
			if c.NQN != sub.NQN {
				continue
			}
			hc.ID, hc.Active = c.CtrlID, !c.Suspended
			for _, ns := range c.Namespaces {
				hc.Namespaces = append(hc.Namespaces, drivers.HostNamespace{NSID: ns.NSID, Bdev: ns.Bdev, UUID: uuids[ns.NSID]})
			}
		}
		out = append(out, hc)
	}
	return out, nil
}

// EnsureController implements drivers.StorageDriver.
func (s *Storage) EnsureController(ctx context.Context, f nodestate.Function, cur *drivers.HostController) (drivers.HostController, error) {
	if cur != nil && cur.ID != "" {
		return *cur, nil
	}
	nqn := drivers.HostSubsystemNQN(s.o.NodeUUID, f)
	if cur == nil {
		err := s.o.Client.Call(ctx, "nvme_subsystem_create", map[string]any{
			"nqn": nqn, "serial_number": drivers.HostSerial(s.o.NodeUUID, f), "model_number": "Ironic DPU NVMe",
		}, nil)
		if err != nil {
			return drivers.HostController{}, err
		}
	}
	p := map[string]any{"nqn": nqn, "pf_id": f.PF, "suspended": true}
	if f.VF != nil {
		p["vf_id"] = *f.VF
	}
	var res struct {
		CtrlID string `json:"ctrl_id"`
	}
	if err := s.o.Client.Call(ctx, "nvme_controller_create", p, &res); err != nil {
		return drivers.HostController{}, err
	}
	if res.CtrlID == "" {
		return drivers.HostController{}, fmt.Errorf("%w: nvme_controller_create returned no ctrl_id", errdefs.ErrStorage)
	}
	logctx.Logger(ctx, s.log).Info("created SNAP NVMe controller", zap.String("nqn", nqn), zap.String("ctrl_id", res.CtrlID))
	return drivers.HostController{Function: f, ID: res.CtrlID}, nil
}

// AddNamespace implements drivers.StorageDriver.
func (s *Storage) AddNamespace(ctx context.Context, c drivers.HostController, ns drivers.HostNamespace) error {
	nqn := drivers.HostSubsystemNQN(s.o.NodeUUID, c.Function)
	p := map[string]any{"nqn": nqn, "nsid": ns.NSID, "bdev_name": ns.Bdev, "bdev_type": "spdk"}
	if ns.UUID != "" {
		p["uuid"] = ns.UUID
	}
	err := s.o.Client.Call(ctx, "nvme_namespace_create", p, nil)
	if spdk.HasCode(err, spdk.CodeEEXIST) {
		// Left over from a half-done attempt and not attached (the
		// reconciler saw it detached): recreate it with this bdev.
		if err = s.o.Client.Call(ctx, "nvme_namespace_destroy", map[string]any{"nqn": nqn, "nsid": ns.NSID}, nil); err == nil {
			err = s.o.Client.Call(ctx, "nvme_namespace_create", p, nil)
		}
	}
	if err != nil {
		return err
	}
	return s.o.Client.Call(ctx, "nvme_controller_attach_ns", map[string]any{"ctrl_id": c.ID, "nsid": ns.NSID}, nil)
}

// RemoveNamespace implements drivers.StorageDriver: detach from the
// controller (host hot-unplug), then destroy; missing pieces are fine.
func (s *Storage) RemoveNamespace(ctx context.Context, c drivers.HostController, nsid int) error {
	nqn := drivers.HostSubsystemNQN(s.o.NodeUUID, c.Function)
	err := s.o.Client.Call(ctx, "nvme_controller_detach_ns", map[string]any{"ctrl_id": c.ID, "nsid": nsid}, nil)
	if err != nil && !spdk.HasCode(err, spdk.CodeENODEV) {
		return err
	}
	err = s.o.Client.Call(ctx, "nvme_namespace_destroy", map[string]any{"nqn": nqn, "nsid": nsid}, nil)
	if spdk.HasCode(err, spdk.CodeENODEV) {
		return nil
	}
	return err
}

// Activate implements drivers.StorageDriver: nvme_controller_resume.
func (s *Storage) Activate(ctx context.Context, c drivers.HostController) error {
	if c.Active {
		return nil
	}
	return s.o.Client.Call(ctx, "nvme_controller_resume", map[string]any{"ctrl_id": c.ID}, nil)
}

// RemoveController implements drivers.StorageDriver.
func (s *Storage) RemoveController(ctx context.Context, c drivers.HostController) error {
	nqn := drivers.HostSubsystemNQN(s.o.NodeUUID, c.Function)
	for _, ns := range c.Namespaces {
		if err := s.RemoveNamespace(ctx, c, ns.NSID); err != nil {
			return err
		}
	}
	if c.ID != "" {
		err := s.o.Client.Call(ctx, "nvme_controller_destroy", map[string]any{"ctrl_id": c.ID, "force": true}, nil)
		if err != nil && !spdk.HasCode(err, spdk.CodeENODEV) {
			return err
		}
	}
	err := s.o.Client.Call(ctx, "nvme_subsystem_destroy", map[string]any{"nqn": nqn}, nil)
	if err != nil && !spdk.HasCode(err, spdk.CodeENODEV) {
		return err
	}
	logctx.Logger(ctx, s.log).Info("removed SNAP NVMe controller", zap.String("nqn", nqn), zap.String("ctrl_id", c.ID))
	return nil
}
