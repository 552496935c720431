package network

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/bluefield"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor"
	"github.com/ironic-dpu/ironic-dpu-agent/network/representor/representortest"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf"
	"github.com/ironic-dpu/ironic-dpu-agent/network/sf/sftest"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

var _ agent.Reconciler = (*Reconciler)(nil)

const nodeUUID = "6a3c2b1e-0000-4000-8000-000000000001"

// With OVSDB down for good (no socket ever appears), New and the reconciler's
// calls answer at once with Unavailable instead of waiting for it; a wait
// would hang (BindTimeout is far past poll.HangAfter) and fail the watchdog.
func TestNewAndCallsDoNotWaitForADownOVSDB(t *testing.T) {
	ctx := context.Background()
	o := Options{
		OVSDBConnection: "unix:" + filepath.Join(t.TempDir(), "none.sock"), IntegrationBridge: "br-int", BindTimeout: time.Hour,
		NodeUUID: nodeUUID, Driver: sim.NewNetwork(0), Logger: zaptest.NewLogger(t),
	}
	var (
		r                        *Reconciler
		newErr, health, reconcil error
		obs                      nodestate.Observed
	)
	d := &nodestate.Desired{VIFs: []nodestate.VIF{{PortID: "11111111-2222-3333-4444-555555555555", MAC: "fa:16:3e:00:00:01",
		Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(1)}}}}
	poll.Returns(t, "New, Health, Reconcile and Observe with OVSDB down", func() {
		r, newErr = New(o)
		if newErr != nil {
			return
		}
		health = r.Health(ctx)
		reconcil = r.Reconcile(ctx, d)
		r.Observe(ctx, &obs)
	})
	if newErr != nil {
		t.Fatal(newErr)
	}
	if !errors.Is(health, errdefs.ErrUnavailable) {
		t.Errorf("Health = %v, want ErrUnavailable", health)
	}
	if !errors.Is(reconcil, errdefs.ErrUnavailable) {
		t.Errorf("Reconcile = %v, want ErrUnavailable", reconcil)
	}
	if len(obs.VIFs) != 1 || obs.VIFs[0].State != nodestate.StateError || obs.VIFs[0].LastError == "" {
		t.Errorf("Observe = %+v", obs.VIFs)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(runCtx); close(done) }()
	time.Sleep(100 * time.Millisecond) // let it fail to connect at least once
	stop()
	poll.Returns(t, "Run after its context ended", func() { <-done })
}

// New starts nothing: OVSDB sees no connection until the owner calls Run,
// and none after Run returned.
func TestNoOVSDBConnectionOutsideRun(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ovsdb.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() { // ends when ln is closed
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	r, err := New(Options{
		OVSDBConnection: "unix:" + sock, IntegrationBridge: "br-int", BindTimeout: time.Second,
		NodeUUID: nodeUUID, Driver: sim.NewNetwork(0), Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("the reconciler connected to OVSDB before Run")
	case <-time.After(300 * time.Millisecond):
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	var c net.Conn
	poll.Returns(t, "Run connecting to OVSDB", func() { c = <-accepted })
	defer c.Close()
	stop()
	poll.Returns(t, "Run after its context ended", func() { <-done })
	select {
	case c := <-accepted:
		c.Close()
		t.Fatal("a connection after Run returned")
	case <-time.After(300 * time.Millisecond):
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	good := Options{OVSDBConnection: "unix:/x", IntegrationBridge: "br-int", NodeUUID: nodeUUID, Driver: sim.NewNetwork(0)}
	for name, mut := range map[string]func(*Options){
		"no driver": func(o *Options) { o.Driver = nil },
		"bad node":  func(o *Options) { o.NodeUUID = "node-1" },
		"no bridge": func(o *Options) { o.IntegrationBridge = "" },
	} {
		o := good
		mut(&o)
		if _, err := New(o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateUsesDriver(t *testing.T) {
	r := &Reconciler{drv: sim.NewNetwork(2)}
	vif := func(f nodestate.Function) *nodestate.Desired {
		return &nodestate.Desired{VIFs: []nodestate.VIF{{PortID: "11111111-2222-3333-4444-555555555555", MAC: "fa:16:3e:00:00:01", Function: &f}}}
	}
	if err := r.Validate(context.Background(), vif(nodestate.Function{PF: 1, VF: nodestate.IntPtr(3)})); err != nil {
		t.Errorf("pf1vf3: %v", err)
	}
	if err := r.Validate(context.Background(), vif(nodestate.Function{PF: 2, VF: nodestate.IntPtr(3)})); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown pf: %v", err)
	}
	// A VIF without a function is fine to validate (the agent assigns an SF)
	// but Reconcile refuses it.
	d := &nodestate.Desired{VIFs: []nodestate.VIF{{PortID: "11111111-2222-3333-4444-555555555555", MAC: "fa:16:3e:00:00:01"}}}
	if err := r.Validate(context.Background(), d); err != nil {
		t.Errorf("nil function: %v", err)
	}
	if err := r.Reconcile(context.Background(), d); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Reconcile nil function: %v", err)
	}
}

// Admission with the BlueField driver over a fake default BlueField
// (representortest): sf 0 is a valid host function (the host's c1pf0sf0,
// not the DPU's own pf0sf0), a PF the card lacks and a reserved SF are
// refused before anything is touched, and Reconcile with OVSDB down resolves
// no representor and makes no SF.
func TestValidateBlueFieldCard(t *testing.T) {
	card, err := representortest.New(t.TempDir(), representortest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fake := sftest.NewNetlink(card)
	f := representor.Finder{Root: card.Root, Controller: bluefield.HostController}
	drv := bluefield.NewNetworkWith(f, &sf.Manager{NL: fake, Finder: f, Log: zaptest.NewLogger(t)}, drivers.DefaultCard)
	vif := func(fn nodestate.Function) *nodestate.Desired {
		return &nodestate.Desired{VIFs: []nodestate.VIF{{PortID: "11111111-2222-3333-4444-555555555555", MAC: "fa:16:3e:00:00:01", Function: &fn}}}
	}
	r := &Reconciler{drv: drv}
	if err := r.Validate(context.Background(), vif(nodestate.Function{PF: 0, SF: nodestate.IntPtr(0)})); err != nil {
		t.Errorf("pf0sf0: %v", err)
	}
	for _, fn := range []nodestate.Function{{PF: 2, SF: nodestate.IntPtr(0)}, {PF: 0, SF: nodestate.IntPtr(1000)}} {
		err := r.Validate(context.Background(), vif(fn))
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", fn, err)
		}
	}
	r, err = New(Options{
		OVSDBConnection: "unix:" + filepath.Join(t.TempDir(), "none.sock"), IntegrationBridge: "br-int", BindTimeout: time.Second,
		NodeUUID: nodeUUID, Driver: drv, Logger: zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reconcile(context.Background(), vif(nodestate.Function{PF: 0, SF: nodestate.IntPtr(0)})); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("Reconcile with OVSDB down: %v", err)
	}
	if c := fake.Calls(); len(c) != 0 {
		t.Errorf("devlink calls: %v", c)
	}
}
