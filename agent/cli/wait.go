package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// waitFlags are the convergence flags of the edit commands: apply_state
// returns as soon as the state is admitted, so the CLI polls get_state.
type waitFlags struct {
	wait    bool
	timeout time.Duration
	poll    time.Duration
}

func (f *waitFlags) add(fs interface {
	BoolVar(*bool, string, bool, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	fs.BoolVar(&f.wait, "wait", true, "wait until the agent converged on the new generation (polls get_state); --wait=false returns once the change is admitted")
	fs.DurationVar(&f.timeout, "wait-timeout", 2*time.Minute, "how long --wait waits before failing")
	fs.DurationVar(&f.poll, "poll-interval", 500*time.Millisecond, "get_state poll interval while waiting")
}

// stateView is the part of get_state that convergence is judged on.
type stateView struct {
	Desired struct {
		Generation int64 `json:"generation"`
	} `json:"desired"`
	Observed observedView `json:"observed"`
}

type observedView struct {
	Generation  int64      `json:"generation"`
	Volumes     []itemView `json:"volumes"`
	VIFs        []itemView `json:"vifs"`
	ConfigDrive *itemView  `json:"config_drive"`
	Components  map[string]struct {
		Generation int64  `json:"generation"`
		LastError  string `json:"last_error"`
	} `json:"components"`
}

type itemView struct {
	VolumeID  string `json:"volume_id"`
	PortID    string `json:"port_id"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
}

// converged judges v against generation gen: done, or the pending items,
// or an error naming what failed. With a component ("storage", "network")
// only that component's generation, error and items count: a NIC plug is
// done when the network converged, whatever SPDK does.
func converged(v *stateView, gen int64, component string) (bool, []string, error) {
	o := &v.Observed
	have := o.Generation
	if component != "" {
		have = o.Components[component].Generation
	}
	if have < gen {
		return false, []string{fmt.Sprintf("observed generation %d < %d", have, gen)}, nil
	}
	var errs, pending []string
	for name, c := range o.Components {
		if c.LastError != "" && (component == "" || component == name) {
			errs = append(errs, name+": "+c.LastError)
		}
	}
	for _, it := range observedItems(o, component) {
		switch it.State {
		case "error":
			errs = append(errs, it.id()+": "+it.LastError)
		case "attached", "plugged":
		default:
			pending = append(pending, it.id()+" "+it.State)
		}
	}
	if len(errs) > 0 {
		return false, nil, fmt.Errorf("the agent reports errors: %s", strings.Join(errs, "; "))
	}
	return len(pending) == 0, pending, nil
}

// observedItems are the items component owns ("" = all).
func observedItems(o *observedView, component string) []itemView {
	var items []itemView
	if component != "network" {
		items = append(items, o.Volumes...)
		if o.ConfigDrive != nil {
			items = append(items, *o.ConfigDrive)
		}
	}
	if component != "storage" {
		items = append(items, o.VIFs...)
	}
	return items
}

func (it itemView) id() string {
	switch {
	case it.PortID != "":
		return "vif " + it.PortID
	case it.VolumeID != "":
		return "volume " + it.VolumeID
	}
	return "config drive"
}

// waitConverged polls get_state until the agent (or only its component,
// when set) converged on gen (0: the desired generation of the first
// answer) and returns the last answer.
func (g *globals) waitConverged(ctx context.Context, f *rpcFlags, w *waitFlags, gen int64, component string) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	for {
		raw, err := g.rpc(ctx, f, "get_state", map[string]any{})
		if err != nil {
			return nil, err
		}
		var v stateView
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("get_state: %w", err)
		}
		if gen == 0 {
			gen = v.Desired.Generation
		}
		done, pending, err := converged(&v, gen, component)
		if err != nil || done {
			return raw, err
		}
		select {
		case <-ctx.Done():
			return raw, fmt.Errorf("not converged on generation %d after %v: %s", gen, w.timeout, strings.Join(pending, ", "))
		case <-time.After(w.poll):
		}
	}
}
