//go:build functional

package network_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// flakyLookup is the sim card whose representor lookup can fail with
// something other than ErrNotFound (sysfs unreadable during a driver reload).
type flakyLookup struct {
	*sim.Network
	fail atomic.Bool
}

func (f *flakyLookup) Representor(ctx context.Context, fn nodestate.Function) (string, error) {
	if f.fail.Load() {
		return "", fmt.Errorf("%w: read /sys/class/net: %w", errdefs.ErrNetwork, errors.New("transient"))
	}
	return f.Network.Representor(ctx, fn)
}

// A desired VIF whose representor cannot be looked up for a moment must keep
// its port: unplugging it would drop the running host's NIC.
func TestLookupErrorKeepsDesiredPort(t *testing.T) {
	drv := &flakyLookup{Network: sim.NewNetwork(0)}
	h := newReconciler(t, env, uuidN('a'), drv)
	port, mac := uuidN('b'), macN(0x500)
	addLSP(t, env, "ls-flaky", port, mac, "10.5.0.11")
	v := nodestate.VIF{PortID: port, MAC: mac, Function: vf(0, 5)}
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	has := func() bool {
		return slices.ContainsFunc(rows(t, env, "Interface"), func(s string) bool { return strings.HasPrefix(s, "pf0vf5,") })
	}
	before := rows(t, env, "Interface")
	if !has() {
		t.Fatalf("setup: pf0vf5 not plugged: %v", before)
	}
	drv.fail.Store(true)
	if err := h.reconcile(v); !errors.Is(err, errdefs.ErrNetwork) {
		t.Fatalf("reconcile with failing lookup = %v, want ErrNetwork", err)
	}
	if st := h.observe()[port]; st.State != nodestate.StateError || st.LastError == "" {
		t.Errorf("status with failing lookup = %+v", st)
	}
	if got := rows(t, env, "Interface"); !slices.Equal(got, before) {
		t.Fatalf("a lookup error changed the desired VIF's rows: %v, was %v", got, before)
	}
	drv.fail.Store(false)
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, env, "Interface"); !slices.Equal(got, before) {
		t.Fatalf("recovery replaced the port: %v, was %v", got, before)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if has() {
		t.Fatal("pf0vf5 left after unplug")
	}
}
