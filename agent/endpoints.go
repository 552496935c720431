package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/jsonx"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/version"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// Method is one RPC endpoint method: oslo keyword arguments in, JSON-able out.
type Method func(ctx context.Context, args map[string]json.RawMessage) (any, error)

// Methods returns the endpoint methods of RPC API version.RPCAPIVersion by
// name (README "RPC API" has each method's history).
func (a *Agent) Methods() map[string]Method {
	return map[string]Method{
		"get_status":    a.rpcGetStatus,
		"get_state":     a.rpcGetState,
		"apply_state":   a.rpcApplyState,
		"attach_volume": a.rpcAttachVolume,
		"detach_volume": a.rpcDetachVolume,
		"plug_vif":      a.rpcPlugVIF,
		"unplug_vif":    a.rpcUnplugVIF,
	}
}

// kwargs checks that args has the named keyword arguments, like a Python
// signature would, and decodes each into its target.
func (a *Agent) kwargs(ctx context.Context, method string, args map[string]json.RawMessage, names map[string]any) error {
	return a.kwargsOpt(ctx, method, args, names, nil)
}

// kwargsOpt is kwargs with optional keyword arguments too: an optional one
// that is absent leaves its target alone. Arguments and fields this agent
// does not know are ignored and logged, not refused: the dispatcher has
// already refused a call of a newer API version than the agent serves, so
// they come from a newer peer of a compatible version and are additive by
// the API's policy (README "RPC API"). Known fields stay strictly typed.
func (a *Agent) kwargsOpt(ctx context.Context, method string, args map[string]json.RawMessage, names, optional map[string]any) error {
	all := maps.Clone(names)
	if all == nil {
		all = map[string]any{}
	}
	maps.Copy(all, optional)
	var unknown []string
	for k := range args {
		if _, ok := all[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	keys := slices.Sorted(maps.Keys(all))
	for _, k := range keys {
		raw, ok := args[k]
		_, opt := optional[k]
		if !ok && opt {
			continue
		}
		if !ok {
			return fmt.Errorf("%w: %s() missing required argument '%s'", errdefs.ErrInvalidArgument, method, k)
		}
		unk, err := jsonx.Decode(raw, all[k])
		if err != nil {
			return fmt.Errorf("%w: %s(): argument '%s': %s", errdefs.ErrInvalidArgument, method, k, decodeMsg(err))
		}
		for _, u := range unk {
			unknown = append(unknown, k+"."+u)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		logctx.Logger(ctx, a.log).Warn("ignoring arguments this agent does not know (from a newer peer)",
			zap.String("method", method), zap.String("version", callerOf(ctx).Version),
			zap.String("agent_version", version.RPCAPIVersion), zap.Strings("fields", unknown))
	}
	return nil
}

func decodeMsg(err error) string {
	var te *json.UnmarshalTypeError
	if ok := asType(err, &te); ok {
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, te.Type, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// maxWaitSeconds bounds apply_state's wait argument; the agent waits at
// most its item_wait anyway.
const maxWaitSeconds = 3600

// Status is get_status's result.
type Status struct {
	NodeUUID      string               `json:"node_uuid"`
	AgentVersion  string               `json:"agent_version"`
	RPCAPIVersion string               `json:"rpc_api_version"`
	Driver        string               `json:"driver"`
	Generation    int64                `json:"generation"`
	LastReconcile string               `json:"last_reconcile,omitempty"`
	LastError     string               `json:"last_reconcile_error,omitempty"`
	Reconciles    uint64               `json:"reconciles"`
	Failures      uint64               `json:"reconcile_failures"`
	LastDuration  float64              `json:"last_reconcile_seconds"`
	Components    map[string]Component `json:"components"`
	Healthy       bool                 `json:"healthy"`
}

// addLoopStats sums the component loops' reconcile records into st.
func (a *Agent) addLoopStats(st *Status) {
	var last time.Time
	var errs []error
	for _, l := range a.loops {
		ls := l.status()
		st.Reconciles += ls.runs
		st.Failures += ls.failed
		if ls.lastEnd.After(last) {
			last, st.LastDuration = ls.lastEnd, ls.lastTook.Seconds()
		}
		if ls.err != nil {
			errs = append(errs, &componentError{name: l.r.Name(), err: ls.err})
		}
	}
	if !last.IsZero() {
		st.LastReconcile = last.UTC().Format(time.RFC3339Nano)
	}
	if err := errors.Join(errs...); err != nil {
		st.LastError = err.Error()
	}
}

// Component is one dependency's health.
type Component struct {
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
}

// Status reports the agent's identity and each component's health.
func (a *Agent) Status(ctx context.Context) Status {
	a.mu.RLock()
	st := Status{
		NodeUUID:      a.opts.NodeUUID,
		AgentVersion:  version.String(),
		RPCAPIVersion: version.RPCAPIVersion,
		Driver:        a.opts.DriverName,
		Generation:    a.desired.Generation,
		Components:    map[string]Component{},
		Healthy:       true,
	}
	a.mu.RUnlock()
	a.addLoopStats(&st)
	a.mu.RLock()
	probed := maps.Clone(a.health)
	a.mu.RUnlock()
	check := func(name string, err error) {
		c := Component{Healthy: err == nil}
		if err != nil {
			c.Detail = err.Error()
			st.Healthy = false
		}
		st.Components[name] = c
	}
	if a.opts.RPCHealth != nil {
		check("rpc", a.opts.RPCHealth())
	}
	// Component health comes from the background probe (every
	// HealthInterval), so a busy caller never hammers SPDK or OVSDB; before
	// the first probe it is measured here.
	if probed == nil {
		probed = a.probe(ctx)
	}
	for _, r := range a.opts.Reconcilers {
		check(r.Name(), probed[r.Name()])
	}
	return st
}

func (a *Agent) rpcGetStatus(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	if err := a.kwargs(ctx, "get_status", args, nil); err != nil {
		return nil, err
	}
	return a.Status(ctx), nil
}

func (a *Agent) rpcGetState(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	if err := a.kwargs(ctx, "get_state", args, nil); err != nil {
		return nil, err
	}
	return a.State(ctx), nil
}

func (a *Agent) rpcApplyState(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	var d nodestate.Desired
	var wait *float64 // seconds (API 1.1)
	if err := a.kwargsOpt(ctx, "apply_state", args, map[string]any{"state": &d}, map[string]any{"wait": &wait}); err != nil {
		return nil, err
	}
	var w time.Duration
	if wait != nil {
		if *wait < 0 || *wait > maxWaitSeconds {
			return nil, fmt.Errorf("%w: apply_state(): wait must be 0 to %d seconds, not %v", errdefs.ErrInvalidArgument, maxWaitSeconds, *wait)
		}
		w = time.Duration(*wait * float64(time.Second))
	}
	v, err := a.ApplyState(ctx, &d, w)
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (a *Agent) rpcAttachVolume(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	var v nodestate.Volume
	var expected *int64
	if err := a.kwargsOpt(ctx, "attach_volume", args, map[string]any{"volume": &v}, map[string]any{"expected_generation": &expected}); err != nil {
		return nil, err
	}
	return a.AttachVolume(ctx, v, expected)
}

func (a *Agent) rpcDetachVolume(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	var id string
	var expected *int64
	if err := a.kwargsOpt(ctx, "detach_volume", args, map[string]any{"volume_id": &id}, map[string]any{"expected_generation": &expected}); err != nil {
		return nil, err
	}
	return a.DetachVolume(ctx, id, expected)
}

func (a *Agent) rpcPlugVIF(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	var v nodestate.VIF
	var expected *int64
	if err := a.kwargsOpt(ctx, "plug_vif", args, map[string]any{"vif": &v}, map[string]any{"expected_generation": &expected}); err != nil {
		return nil, err
	}
	return a.PlugVIF(ctx, v, expected)
}

func (a *Agent) rpcUnplugVIF(ctx context.Context, args map[string]json.RawMessage) (any, error) {
	var id string
	var expected *int64
	if err := a.kwargsOpt(ctx, "unplug_vif", args, map[string]any{"port_id": &id}, map[string]any{"expected_generation": &expected}); err != nil {
		return nil, err
	}
	return a.UnplugVIF(ctx, id, expected)
}

// AttachVolume adds (or replaces) one volume in the desired state and returns
// its observed status.
func (a *Agent) AttachVolume(ctx context.Context, v nodestate.Volume, expected *int64) (nodestate.VolumeStatus, error) {
	if err := nodestate.ValidateVolumeWith(v, checkConnection); err != nil {
		return nodestate.VolumeStatus{}, err
	}
	err := a.edit(ctx, ComponentStorage, expected, func(d *nodestate.Desired) error {
		for i := range d.Volumes {
			if strings.EqualFold(d.Volumes[i].VolumeID, v.VolumeID) {
				d.Volumes[i] = v
				return nil
			}
		}
		d.Volumes = append(d.Volumes, v)
		return nil
	})
	return a.volumeStatus(ctx, v.VolumeID), err
}

// DetachVolume removes one volume; a volume that is not there is success.
func (a *Agent) DetachVolume(ctx context.Context, id string, expected *int64) (nodestate.VolumeStatus, error) {
	if !nodestate.ValidUUID(id) {
		return nodestate.VolumeStatus{}, fmt.Errorf("%w: volume_id %q is not a UUID", errdefs.ErrInvalidArgument, id)
	}
	err := a.edit(ctx, ComponentStorage, expected, func(d *nodestate.Desired) error {
		out := d.Volumes[:0]
		for _, v := range d.Volumes {
			if !strings.EqualFold(v.VolumeID, id) {
				out = append(out, v)
			}
		}
		d.Volumes = out
		return nil
	})
	st := a.volumeStatus(ctx, id)
	if st.State == "" {
		st.State = "detached"
	}
	return st, err
}

// PlugVIF adds (or replaces) one VIF and returns its observed status.
func (a *Agent) PlugVIF(ctx context.Context, v nodestate.VIF, expected *int64) (nodestate.VIFStatus, error) {
	if err := nodestate.ValidateVIF(v); err != nil {
		return nodestate.VIFStatus{}, err
	}
	err := a.edit(ctx, ComponentNetwork, expected, func(d *nodestate.Desired) error {
		for i := range d.VIFs {
			if strings.EqualFold(d.VIFs[i].PortID, v.PortID) {
				if v.Function == nil {
					v.Function = d.VIFs[i].Function // keep the NIC it has
				}
				d.VIFs[i] = v
				return nil
			}
		}
		d.VIFs = append(d.VIFs, v)
		return nil
	})
	return a.vifStatus(ctx, v.PortID), err
}

// UnplugVIF removes one VIF; a VIF that is not there is success.
func (a *Agent) UnplugVIF(ctx context.Context, id string, expected *int64) (nodestate.VIFStatus, error) {
	if !nodestate.ValidUUID(id) {
		return nodestate.VIFStatus{}, fmt.Errorf("%w: port_id %q is not a UUID", errdefs.ErrInvalidArgument, id)
	}
	err := a.edit(ctx, ComponentNetwork, expected, func(d *nodestate.Desired) error {
		out := d.VIFs[:0]
		for _, v := range d.VIFs {
			if !strings.EqualFold(v.PortID, id) {
				out = append(out, v)
			}
		}
		d.VIFs = out
		return nil
	})
	st := a.vifStatus(ctx, id)
	if st.State == "" {
		st = nodestate.VIFStatus{PortID: id, State: "unplugged"}
	}
	return st, err
}

// observe is what component alone reports: a single-item reply never waits
// on the other component's backend.
func (a *Agent) observe(ctx context.Context, component string) nodestate.Observed {
	var obs nodestate.Observed
	for _, l := range a.loopsOf(component) {
		l.r.Observe(ctx, &obs)
	}
	return obs
}

func (a *Agent) volumeStatus(ctx context.Context, id string) nodestate.VolumeStatus {
	for _, s := range a.observe(ctx, ComponentStorage).Volumes {
		if strings.EqualFold(s.VolumeID, id) {
			return s
		}
	}
	return nodestate.VolumeStatus{VolumeID: id}
}

func (a *Agent) vifStatus(ctx context.Context, id string) nodestate.VIFStatus {
	for _, s := range a.observe(ctx, ComponentNetwork).VIFs {
		if strings.EqualFold(s.PortID, id) {
			return s
		}
	}
	return nodestate.VIFStatus{PortID: id}
}
