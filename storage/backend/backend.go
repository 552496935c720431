// Package backend attaches Cinder NVMe-oF volumes to SPDK as bdev_nvme
// controllers: one controller per volume, named from the volume id, one
// path per portal, always with this DPU's host NQN, the configured multipath
// mode and reconnect policy. It reads state before changing it, because SPDK
// answers many "exists" and "missing" cases with ambiguous codes.
package backend

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// Prefix marks every bdev_nvme controller (and AIO bdev) the agent creates,
// so that reconcile removes its own leftovers and nothing else.
const Prefix = "idpu-"

// ControllerName is the deterministic controller name of a volume:
// "idpu-<lower-case volume id>" (bdevs are "<name>n<nsid>").
func ControllerName(volumeID string) string { return Prefix + strings.ToLower(volumeID) }

var ctrlNameRe = regexp.MustCompile(`^idpu-([0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12})$`)

// VolumeIDOf returns the volume id of an agent controller name.
func VolumeIDOf(ctrl string) (string, bool) {
	m := ctrlNameRe.FindStringSubmatch(ctrl)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Options are the [storage] settings.
type Options struct {
	Client               *spdk.Client
	HostNQN              string
	Multipath            string // multipath or failover
	CtrlrLossTimeoutSec  int
	ReconnectDelaySec    int
	FastIOFailTimeoutSec int
	Logger               *zap.Logger
}

// Backend manages the bdev_nvme side.
type Backend struct {
	o   Options
	log *zap.Logger
}

// New checks the options; it makes no SPDK call.
func New(o Options) (*Backend, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("%w: backend: no SPDK client", errdefs.ErrInvalidArgument)
	}
	if o.Multipath == "" {
		o.Multipath = "multipath"
	}
	if o.Multipath != "multipath" && o.Multipath != "failover" {
		return nil, fmt.Errorf("%w: [storage] multipath %q must be multipath or failover", errdefs.ErrInvalidArgument, o.Multipath)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Backend{o: o, log: o.Logger}, nil
}

// CheckConfig reports what stops attaching volumes (a missing host NQN).
func (b *Backend) CheckConfig() error {
	if b.o.HostNQN == "" {
		return fmt.Errorf("%w: [storage] host_nqn is not set; the DPU cannot identify itself to the storage target", errdefs.ErrInvalidArgument)
	}
	if !nvmeof.ValidNQN(b.o.HostNQN) {
		return fmt.Errorf("%w: [storage] host_nqn %q is not a valid NQN", errdefs.ErrInvalidArgument, b.o.HostNQN)
	}
	// bdev_nvme's rule (it answers -22 otherwise, on every attach).
	loss, delay, fast := b.o.CtrlrLossTimeoutSec, b.o.ReconnectDelaySec, b.o.FastIOFailTimeoutSec
	ok := loss >= -1 && delay >= 0 && fast >= 0
	if delay == 0 {
		ok = ok && loss == 0 && fast == 0
	} else {
		ok = ok && (loss == -1 || loss >= delay) && (fast == 0 || (fast >= delay && (loss == -1 || fast < loss)))
	}
	if !ok {
		return fmt.Errorf("%w: [storage] ctrlr_loss_timeout_sec %d, reconnect_delay_sec %d, fast_io_fail_timeout_sec %d: "+
			"need reconnect_delay <= fast_io_fail < ctrlr_loss (or -1), and all 0 when reconnect_delay is 0",
			errdefs.ErrInvalidArgument, loss, delay, fast)
	}
	return nil
}

func trtype(p nvmeof.Portal) string { return strings.ToUpper(p.Transport) }

func adrfam(addr string) string {
	if strings.Contains(addr, ":") {
		return "IPv6"
	}
	return "IPv4"
}

// AttachParams is the request for one portal of t under name.
func (b *Backend) AttachParams(name string, t nvmeof.Target, p nvmeof.Portal) spdk.AttachControllerParams {
	loss, delay, fast := b.o.CtrlrLossTimeoutSec, b.o.ReconnectDelaySec, b.o.FastIOFailTimeoutSec
	return spdk.AttachControllerParams{
		Name: name, Trtype: trtype(p), Adrfam: adrfam(p.Address), Traddr: p.Address,
		Trsvcid: strconv.Itoa(p.Port), Subnqn: t.NQN, Hostnqn: b.o.HostNQN,
		// Explicit: SPDK's default changed from failover (v24.09) to
		// multipath (v25.01).
		Multipath:           b.o.Multipath,
		CtrlrLossTimeoutSec: &loss, ReconnectDelaySec: &delay, FastIOFailTimeoutSec: &fast,
	}
}

// Paths returns every transport id of a controller (multipath ctrlrs and
// failover alternates) with its state.
func Paths(c *spdk.NVMeController) []Path {
	var out []Path
	if c == nil {
		return nil
	}
	for _, cr := range c.Ctrlrs {
		out = append(out, Path{cr.Trid, cr.State, cr.Host.NQN})
		for _, a := range cr.AlternateTrids {
			out = append(out, Path{a, "alternate", cr.Host.NQN})
		}
	}
	return out
}

// Path is one transport id of a controller.
type Path struct {
	Trid    spdk.TransportID
	State   string
	HostNQN string
}

func samePortal(t spdk.TransportID, p nvmeof.Portal) bool {
	return strings.EqualFold(t.Trtype, trtype(p)) && t.Traddr == p.Address && t.Trsvcid == strconv.Itoa(p.Port)
}

// Result says what Ensure did.
type Result struct {
	// Bdevs are the names attach returned when the controller was created
	// (nil when it already existed).
	Bdevs []string
	// PathErrors are portals that could not be attached while another
	// path works (the volume is usable, degraded).
	PathErrors []error
	Changed    bool
}

// Stale reports whether controller cur reaches another subsystem or uses
// another host NQN than target t needs: it must be detached and re-attached.
func (b *Backend) Stale(cur *spdk.NVMeController, t nvmeof.Target) bool {
	for _, p := range Paths(cur) {
		if p.Trid.Subnqn != t.NQN || p.HostNQN != b.o.HostNQN {
			return true
		}
	}
	return false
}

// Ensure makes controller name reach target t on every portal. cur is the
// controller as last read (nil = absent). A controller pointing at another
// subsystem or host NQN is detached and re-attached.
func (b *Backend) Ensure(ctx context.Context, name string, t nvmeof.Target, cur *spdk.NVMeController) (Result, error) {
	var res Result
	if cur != nil {
		if b.Stale(cur, t) {
			logctx.Logger(ctx, b.log).Info("volume target changed; re-attaching", zap.String("controller", name))
			if err := b.Detach(ctx, name); err != nil {
				return res, err
			}
			cur, res.Changed = nil, true
		}
	}
	have := Paths(cur)
	var missing []nvmeof.Portal
	for _, p := range t.Portals {
		found := false
		for _, h := range have {
			found = found || samePortal(h.Trid, p)
		}
		if !found {
			missing = append(missing, p)
		}
	}
	// Paths no longer in the connection info.
	for _, h := range have {
		wanted := false
		for _, p := range t.Portals {
			wanted = wanted || samePortal(h.Trid, p)
		}
		if !wanted {
			if err := b.o.Client.DetachController(ctx, spdk.DetachControllerParams{
				Name: name, Trtype: h.Trid.Trtype, Traddr: h.Trid.Traddr, Trsvcid: h.Trid.Trsvcid,
			}); err != nil {
				return res, err
			}
			res.Changed = true
		}
	}
	exists := cur != nil
	var firstErr error
	for _, p := range missing {
		names, err := b.o.Client.AttachController(ctx, b.AttachParams(name, t, p))
		if spdk.HasCode(err, spdk.CodeEALREADY, spdk.CodeEEXIST) {
			// Someone attached it meanwhile: believe only a re-read.
			if ok, rerr := b.hasPath(ctx, name, p); rerr == nil && ok {
				err = nil
			}
		}
		if err != nil {
			err = fmt.Errorf("attach %s via %s:%d/%s: %w", name, p.Address, p.Port, p.Transport, err)
			logctx.Logger(ctx, b.log).Warn("attach path failed", zap.String("controller", name), zap.Error(err))
			if firstErr == nil {
				firstErr = err
			}
			res.PathErrors = append(res.PathErrors, err)
			continue
		}
		res.Changed = true
		if !exists {
			res.Bdevs, exists = names, true
		}
	}
	if !exists {
		return res, firstErr
	}
	return res, nil
}

func (b *Backend) hasPath(ctx context.Context, name string, p nvmeof.Portal) (bool, error) {
	cs, err := b.o.Client.GetControllers(ctx, name)
	if err != nil {
		return false, err
	}
	for i := range cs {
		for _, h := range Paths(&cs[i]) {
			if samePortal(h.Trid, p) {
				return true, nil
			}
		}
	}
	return false, nil
}

// Detach removes controller name with all its paths; a missing one is fine.
// Namespaces exporting its bdevs vanish with it, so callers unexpose first.
func (b *Backend) Detach(ctx context.Context, name string) error {
	if err := b.o.Client.DetachController(ctx, spdk.DetachControllerParams{Name: name}); err != nil {
		return err
	}
	logctx.Logger(ctx, b.log).Info("detached volume controller", zap.String("controller", name))
	return nil
}

// SelectBdev picks the volume's bdev among candidates (bdevs of controller
// name), in os-brick's order: vol_uuid, volume_nguid, ns_id, else the only one.
func SelectBdev(name string, t nvmeof.Target, candidates []spdk.Bdev) (spdk.Bdev, error) {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "-", "")) }
	if t.VolUUID != "" {
		for _, c := range candidates {
			if norm(c.UUID) == norm(t.VolUUID) {
				return c, nil
			}
		}
	}
	if t.VolumeNGUID != "" {
		for _, c := range candidates {
			if norm(c.UUID) == norm(t.VolumeNGUID) {
				return c, nil
			}
		}
	}
	if t.NSID != 0 {
		want := fmt.Sprintf("%sn%d", name, t.NSID)
		for _, c := range candidates {
			if c.Name == want {
				return c, nil
			}
		}
	}
	if len(candidates) == 1 && t.NSID == 0 {
		return candidates[0], nil
	}
	return spdk.Bdev{}, fmt.Errorf("%w: controller %s has no namespace matching the volume (vol_uuid %q, nguid %q, ns_id %d; %d namespaces)",
		errdefs.ErrStorage, name, t.VolUUID, t.VolumeNGUID, t.NSID, len(candidates))
}

// ConfigDriveBlockSize is the config drive's block size: an ISO 9660
// sector. Real SPDK refuses a file whose size is not a multiple (-22,
// c-configdrive.jsonl), so images are padded to it.
const ConfigDriveBlockSize = 2048

// EnsureAIO creates the read-only file-backed bdev name unless exists.
func (b *Backend) EnsureAIO(ctx context.Context, name, file string, exists bool) error {
	if exists {
		return nil
	}
	_, err := b.o.Client.AIOCreate(ctx, spdk.AIOCreateParams{Filename: file, Name: name, BlockSize: ConfigDriveBlockSize, Readonly: true})
	return err
}
