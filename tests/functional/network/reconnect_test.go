//go:build functional

package network_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// ovsdb-server is killed and restarted mid-way: the reconciler reports
// unavailable, reconnects by itself, asks for a reconcile, and the state
// converges.
func TestOVSDBRestartConverges(t *testing.T) {
	ctx := context.Background()
	h := newReconciler(t, env, uuidN('a'), nil)
	a := nodestate.VIF{PortID: uuidN('7'), MAC: macN(0x500), Function: sf(1, 700)}
	b := nodestate.VIF{PortID: uuidN('7'), MAC: macN(0x501), Function: sf(1, 701)}
	addLSP(t, env, "ls-reconnect", a.PortID, a.MAC, "10.5.0.1")
	addLSP(t, env, "ls-reconnect", b.PortID, b.MAC, "10.5.0.2")
	if err := h.reconcile(a); err != nil {
		t.Fatal(err)
	}
	triggers := h.triggers.Load()

	portUUID, err := env.Vsctl(ctx, "get", "Port", "pf1sf700", "_uuid")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.KillOVSDB(); err != nil {
		t.Fatal(err)
	}
	// While the server is down, a's rows vanish behind the client's back
	// (libovsdb would never get a DELETE for them).
	if _, err := env.TransactOffline(ctx, `["Open_vSwitch",
		{"op":"mutate","table":"Bridge","where":[["name","==","`+env.Bridge+`"]],"mutations":[["ports","delete",["uuid","`+strings.TrimSpace(portUUID)+`"]]]},
		{"op":"delete","table":"Port","where":[["name","==","pf1sf700"]]},
		{"op":"delete","table":"Interface","where":[["name","==","pf1sf700"]]}]`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "Health to report the outage", func() bool { return h.r.Health(ctx) != nil })
	if err := h.r.Health(ctx); !isKind(err, errdefs.ErrUnavailable) {
		t.Fatalf("Health during outage = %v, want ErrUnavailable", err)
	}
	// The desired state changes while OVSDB is down.
	if err := h.reconcile(b); !isKind(err, errdefs.ErrUnavailable) {
		t.Fatalf("Reconcile during outage = %v, want ErrUnavailable", err)
	}
	if st := h.observe()[b.PortID]; st.State != nodestate.StateError || st.LastError == "" {
		t.Errorf("status during outage = %+v", st)
	}

	if err := env.StartOVSDB(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "reconnect trigger", func() bool { return h.triggers.Load() > triggers })
	if err := h.r.Health(ctx); err != nil {
		t.Fatalf("Health after reconnect = %v", err)
	}
	// What the agent does on the trigger: reconcile the current desired
	// state, which now wants a back as well as b. a's rows were lost while
	// disconnected; a fresh snapshot sees that and re-plugs it.
	n := h.r.Transactions()
	if err := h.reconcile(a, b); err != nil {
		t.Fatal(err)
	}
	if got := h.r.Transactions() - n; got != 2 {
		t.Errorf("convergence sent %d transactions, want 2 (re-plug a, plug b)", got)
	}
	obs := h.observe()
	for _, v := range []nodestate.VIF{a, b} {
		if st := obs[v.PortID]; st.State != nodestate.StatePlugged || !st.Bound {
			t.Fatalf("%s after reconnect = %+v", st.Representor, st)
		}
	}
	out, err := env.Vsctl(ctx, "list-ports", env.Bridge)
	if err != nil || !strings.Contains(out, "pf1sf700") || !strings.Contains(out, "pf1sf701") {
		t.Fatalf("ports after convergence: %q %v", out, err)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
}
