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
		"attach_volume": rpcPut(a, volumes()),
		"detach_volume": rpcDrop(a, volumes()),
		"plug_vif":      rpcPut(a, vifs()),
		"unplug_vif":    rpcDrop(a, vifs()),
		"quiesce":       a.rpcQuiesce,
		"unquiesce":     a.rpcUnquiesce,
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
	// Quiesce is whether the host's controllers are paused and until when
	// (RPC API 1.3; absent without quiesce support).
	Quiesce *nodestate.QuiesceStatus `json:"quiesce,omitempty"`
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
		Quiesce:       a.quiesceStatus(),
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

// single describes one list of the desired state that the single-item
// calls edit: attach/detach_volume the volumes, plug/unplug_vif the VIFs.
type single[T, S any] struct {
	component string
	put, drop string // the RPC methods
	item, id  string // their arguments: the item, the id of one to remove
	list      func(*nodestate.Desired) *[]T
	key       func(T) string
	validate  func(T) error
	keep      func(old T, v *T) // nil: a put replaces an item as it comes
	observed  func(nodestate.Observed) []S
	statusKey func(S) string
	blank     func(id string) S       // the status of an item not observed
	absent    func(id string, st S) S // the status of an item dropped
}

func volumes() single[nodestate.Volume, nodestate.VolumeStatus] {
	return single[nodestate.Volume, nodestate.VolumeStatus]{
		component: ComponentStorage, put: "attach_volume", drop: "detach_volume", item: "volume", id: "volume_id",
		list:      func(d *nodestate.Desired) *[]nodestate.Volume { return &d.Volumes },
		key:       func(v nodestate.Volume) string { return v.VolumeID },
		validate:  nodestate.ValidateVolume, // connection info: the storage reconciler, at admission
		observed:  func(o nodestate.Observed) []nodestate.VolumeStatus { return o.Volumes },
		statusKey: func(s nodestate.VolumeStatus) string { return s.VolumeID },
		blank:     func(id string) nodestate.VolumeStatus { return nodestate.VolumeStatus{VolumeID: id} },
		absent: func(id string, st nodestate.VolumeStatus) nodestate.VolumeStatus {
			if st.State == "" {
				st.State = "detached"
			}
			return st
		},
	}
}

func vifs() single[nodestate.VIF, nodestate.VIFStatus] {
	return single[nodestate.VIF, nodestate.VIFStatus]{
		component: ComponentNetwork, put: "plug_vif", drop: "unplug_vif", item: "vif", id: "port_id",
		list:     func(d *nodestate.Desired) *[]nodestate.VIF { return &d.VIFs },
		key:      func(v nodestate.VIF) string { return v.PortID },
		validate: nodestate.ValidateVIF,
		keep: func(old nodestate.VIF, v *nodestate.VIF) {
			if v.Function == nil {
				v.Function = old.Function // keep the NIC it has
			}
		},
		observed:  func(o nodestate.Observed) []nodestate.VIFStatus { return o.VIFs },
		statusKey: func(s nodestate.VIFStatus) string { return s.PortID },
		blank:     func(id string) nodestate.VIFStatus { return nodestate.VIFStatus{PortID: id} },
		absent: func(id string, st nodestate.VIFStatus) nodestate.VIFStatus {
			if st.State == "" {
				st = nodestate.VIFStatus{PortID: id, State: "unplugged"}
			}
			return st
		},
	}
}

// rpcPut is the endpoint of k.put: (item, expected_generation=None).
func rpcPut[T, S any](a *Agent, k single[T, S]) Method {
	return func(ctx context.Context, args map[string]json.RawMessage) (any, error) {
		var v T
		var expected *int64
		if err := a.kwargsOpt(ctx, k.put, args, map[string]any{k.item: &v}, map[string]any{"expected_generation": &expected}); err != nil {
			return nil, err
		}
		return put(ctx, a, k, v, expected)
	}
}

// rpcDrop is the endpoint of k.drop: (id, expected_generation=None).
func rpcDrop[T, S any](a *Agent, k single[T, S]) Method {
	return func(ctx context.Context, args map[string]json.RawMessage) (any, error) {
		var id string
		var expected *int64
		if err := a.kwargsOpt(ctx, k.drop, args, map[string]any{k.id: &id}, map[string]any{"expected_generation": &expected}); err != nil {
			return nil, err
		}
		return drop(ctx, a, k, id, expected)
	}
}

// put adds v to k's list, or replaces the item with its id, and returns
// its observed status.
func put[T, S any](ctx context.Context, a *Agent, k single[T, S], v T, expected *int64) (S, error) {
	if err := k.validate(v); err != nil {
		var zero S
		return zero, err
	}
	id := k.key(v)
	err := a.edit(ctx, k.component, expected, func(d *nodestate.Desired) error {
		l := k.list(d)
		for i := range *l {
			if strings.EqualFold(k.key((*l)[i]), id) {
				if k.keep != nil {
					k.keep((*l)[i], &v)
				}
				(*l)[i] = v
				return nil
			}
		}
		*l = append(*l, v)
		return nil
	})
	return status(ctx, a, k, id), err
}

// drop removes the item with id from k's list; one that is not there is
// success.
func drop[T, S any](ctx context.Context, a *Agent, k single[T, S], id string, expected *int64) (S, error) {
	if !nodestate.ValidUUID(id) {
		var zero S
		return zero, fmt.Errorf("%w: %s %q is not a UUID", errdefs.ErrInvalidArgument, k.id, id)
	}
	err := a.edit(ctx, k.component, expected, func(d *nodestate.Desired) error {
		l := k.list(d)
		*l = slices.DeleteFunc(*l, func(x T) bool { return strings.EqualFold(k.key(x), id) })
		return nil
	})
	return k.absent(id, status(ctx, a, k, id)), err
}

// status is the observed status of k's item id; one with only its id set
// when k's component does not report it.
func status[T, S any](ctx context.Context, a *Agent, k single[T, S], id string) S {
	for _, s := range k.observed(a.observe(ctx, k.component)) {
		if strings.EqualFold(k.statusKey(s), id) {
			return s
		}
	}
	return k.blank(id)
}

// AttachVolume adds (or replaces) one volume in the desired state and returns
// its observed status.
func (a *Agent) AttachVolume(ctx context.Context, v nodestate.Volume, expected *int64) (nodestate.VolumeStatus, error) {
	return put(ctx, a, volumes(), v, expected)
}

// DetachVolume removes one volume; a volume that is not there is success.
func (a *Agent) DetachVolume(ctx context.Context, id string, expected *int64) (nodestate.VolumeStatus, error) {
	return drop(ctx, a, volumes(), id, expected)
}

// PlugVIF adds (or replaces) one VIF and returns its observed status.
func (a *Agent) PlugVIF(ctx context.Context, v nodestate.VIF, expected *int64) (nodestate.VIFStatus, error) {
	return put(ctx, a, vifs(), v, expected)
}

// UnplugVIF removes one VIF; a VIF that is not there is success.
func (a *Agent) UnplugVIF(ctx context.Context, id string, expected *int64) (nodestate.VIFStatus, error) {
	return drop(ctx, a, vifs(), id, expected)
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
