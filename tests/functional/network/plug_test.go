//go:build functional

package network_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// A Neutron-style logical port is bound to the DPU chassis by the reconciler
// and released again on unplug.
func TestPlugBindsToChassisAndUnplugReleases(t *testing.T) {
	ctx := context.Background()
	drv := sim.NewNetwork(0)
	h := newReconciler(t, env, uuidN('a'), drv)
	port, mac := uuidN('b'), macN(1)
	addLSP(t, env, "ls-bind", port, mac, "10.0.0.11")

	v := nodestate.VIF{PortID: port, MAC: mac, Function: sf(0, 88), MTU: 1450}
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	st := h.observe()[port]
	if st.State != nodestate.StatePlugged || !st.Bound || st.Representor != "pf0sf88" || st.OFPort <= 0 || st.LastError != "" {
		t.Fatalf("status after plug = %+v", st)
	}
	if got := drv.SFs()["pf0sf88"]; got != mac {
		t.Errorf("sim SF MAC = %q, want %q", got, mac)
	}
	chassis, err := env.ChassisUUID(ctx)
	if err != nil || chassis == "" {
		t.Fatalf("chassis: %q %v", chassis, err)
	}
	if got, err := env.PortBindingChassis(ctx, port); err != nil || got != chassis {
		t.Fatalf("Port_Binding.chassis = %q (%v), want DPU chassis %s", got, err, chassis)
	}
	for k, want := range map[string]string{"iface-id": port, "attached-mac": mac, "iface-status": "active",
		"ironic-node-uuid": h.node, "ovn-installed": "true"} {
		if got := ifaceExtID(t, env, "pf0sf88", k); got != want {
			t.Errorf("external_ids:%s = %q, want %q", k, got, want)
		}
	}
	if out, _ := env.Vsctl(ctx, "get", "Interface", "pf0sf88", "mtu_request"); strings.TrimSpace(out) != "1450" {
		t.Errorf("mtu_request = %q, want 1450", out)
	}

	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, env, "Port"); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "pf0sf88,") }) {
		t.Fatalf("port left after unplug: %v", got)
	}
	if len(drv.SFs()) != 0 {
		t.Errorf("SF not released: %v", drv.SFs())
	}
	waitFor(t, 5*time.Second, "Port_Binding released", func() bool {
		got, err := env.PortBindingChassis(ctx, port)
		return err == nil && got == ""
	})
	if len(h.observe()) != 0 {
		t.Errorf("observe after unplug: %v", h.observe())
	}
}

// Hot-plug: SFs plugged and unplugged on a running node, repeatedly; no rows
// are left behind.
func TestHotplugCyclesLeaveNoRows(t *testing.T) {
	h := newReconciler(t, env, uuidN('a'), nil)
	base := rows(t, env, "Interface")
	basePorts := rows(t, env, "Port")
	ports := []string{uuidN('c'), uuidN('c')}
	for i, p := range ports {
		addLSP(t, env, "ls-hot", p, macN(0x100+i), "10.1.0.1"+string(rune('0'+i)))
	}
	always := nodestate.VIF{PortID: ports[0], MAC: macN(0x100), Function: sf(0, 200)}
	for cycle := 0; cycle < 20; cycle++ {
		hot := nodestate.VIF{PortID: ports[1], MAC: macN(0x101), Function: sf(1, 300+cycle%3)}
		if err := h.reconcile(always, hot); err != nil {
			t.Fatalf("cycle %d plug: %v", cycle, err)
		}
		obs := h.observe()
		if !obs[hot.PortID].Bound || !obs[always.PortID].Bound {
			t.Fatalf("cycle %d: not bound: %+v", cycle, obs)
		}
		if err := h.reconcile(always); err != nil {
			t.Fatalf("cycle %d unplug: %v", cycle, err)
		}
		if got := len(rows(t, env, "Interface")); got != len(base)+1 {
			t.Fatalf("cycle %d: %d Interface rows, want %d", cycle, got, len(base)+1)
		}
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := rows(t, env, "Interface"); !slices.Equal(got, base) {
		t.Fatalf("Interface rows after 20 cycles:\n%v\nwant\n%v", got, base)
	}
	if got := rows(t, env, "Port"); !slices.Equal(got, basePorts) {
		t.Fatalf("Port rows after 20 cycles:\n%v\nwant\n%v", got, basePorts)
	}
}

// The same plug twice is one row and the second costs no transaction; a
// stale port claiming the same iface-id is replaced; a representor already on
// another bridge is refused.
func TestIdempotencyStaleAndConflict(t *testing.T) {
	ctx := context.Background()
	h := newReconciler(t, env, uuidN('a'), nil)
	port, mac := uuidN('d'), macN(0x200)
	addLSP(t, env, "ls-idem", port, mac, "10.2.0.1")
	v := nodestate.VIF{PortID: port, MAC: mac, Function: vf(0, 40)}
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	before := rows(t, env, "Interface")
	n := h.r.Transactions()
	if err := h.reconcile(v); err != nil {
		t.Fatal(err)
	}
	if got := h.r.Transactions(); got != n {
		t.Errorf("second identical plug sent %d transactions", got-n)
	}
	if got := rows(t, env, "Interface"); !slices.Equal(got, before) {
		t.Errorf("rows changed by identical plug:\n%v\n%v", before, got)
	}

	// A stale port (e.g. left by an old representor name) with the same iface-id.
	port2, mac2 := uuidN('d'), macN(0x201)
	addLSP(t, env, "ls-idem", port2, mac2, "10.2.0.2")
	if _, err := env.Vsctl(ctx, "add-port", env.Bridge, "stale0", "--", "set", "Interface", "stale0", "external_ids:iface-id="+port2); err != nil {
		t.Fatal(err)
	}
	v2 := nodestate.VIF{PortID: port2, MAC: mac2, Function: vf(0, 41)}
	if err := h.reconcile(v, v2); err != nil {
		t.Fatal(err)
	}
	if out, _ := env.Vsctl(ctx, "list-ports", env.Bridge); strings.Contains(out, "stale0") || !strings.Contains(out, "pf0vf41") {
		t.Fatalf("ports after stale replacement: %q", out)
	}
	if st := h.observe()[port2]; !st.Bound {
		t.Fatalf("replacement not bound: %+v", st)
	}

	// pf1vf7 already sits on another bridge: refuse, do not move it.
	if _, err := env.Vsctl(ctx, "add-br", "br-other", "--", "set", "Bridge", "br-other", "datapath_type=dummy", "--", "add-port", "br-other", "pf1vf7"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = env.Vsctl(context.Background(), "--if-exists", "del-br", "br-other") })
	port3, mac3 := uuidN('d'), macN(0x202)
	v3 := nodestate.VIF{PortID: port3, MAC: mac3, Function: vf(1, 7)}
	err := h.reconcile(v, v2, v3)
	if !isKind(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "br-other") {
		t.Fatalf("err = %v, want ErrConflict naming br-other", err)
	}
	if st := h.observe()[port3]; st.State != nodestate.StateError || st.LastError == "" {
		t.Errorf("conflicting VIF status = %+v", st)
	}
	if st := h.observe()[port]; st.State != nodestate.StatePlugged {
		t.Errorf("unrelated VIF hurt by the conflict: %+v", st)
	}
	if out, _ := env.Vsctl(ctx, "port-to-br", "pf1vf7"); strings.TrimSpace(out) != "br-other" {
		t.Errorf("pf1vf7 moved to %q", out)
	}
	// The same conflict for an SF the plug had to create: refused, and the
	// new SF is released again rather than left behind on the card.
	if _, err := env.Vsctl(ctx, "add-port", "br-other", "pf1sf9"); err != nil {
		t.Fatal(err)
	}
	port4, mac4 := uuidN('d'), macN(0x203)
	err = h.reconcile(v, v2, nodestate.VIF{PortID: port4, MAC: mac4, Function: sf(1, 9)})
	if !isKind(err, errdefs.ErrConflict) {
		t.Fatalf("SF on another bridge: err = %v, want ErrConflict", err)
	}
	if sfs := h.drv.(*sim.Network).SFs(); sfs["pf1sf9"] != "" {
		t.Errorf("SF created for a refused plug was left behind: %v", sfs)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
}

// A restarted reconciler with nothing changed touches no row.
func TestRestartWithNothingChangedTouchesNothing(t *testing.T) {
	node := uuidN('a')
	var vifs []nodestate.VIF
	for i := 0; i < 3; i++ {
		p, m := uuidN('e'), macN(0x300+i)
		addLSP(t, env, "ls-restart", p, m, "10.3.0.1"+string(rune('0'+i)))
		vifs = append(vifs, nodestate.VIF{PortID: p, MAC: m, Function: sf(0, 500+i), MTU: 1500})
	}
	vifs = append(vifs, nodestate.VIF{PortID: uuidN('e'), MAC: macN(0x310), Function: vf(1, 5)}) // no LSP: stays pending
	h1 := newReconcilerTimeout(t, env, node, nil, time.Second)
	// The VIF without a logical port is never bound: with no deadline on
	// the call, only bind_timeout can end the wait.
	var err error
	start := time.Now()
	poll.Returns(t, "plug with an unbindable VIF", func() {
		err = h1.r.Reconcile(context.Background(), &nodestate.Desired{Generation: 1, NodeUUID: node, VIFs: vifs})
	})
	if err != nil {
		t.Fatal(err)
	}
	// A lower bound: load can lengthen the wait, never shorten it.
	if d := time.Since(start); d < time.Second {
		t.Errorf("plug with an unbindable VIF took %v, less than bind_timeout (1s)", d)
	}
	if st := h1.observe()[vifs[3].PortID]; st.State != nodestate.StatePending || st.Bound || st.OFPort <= 0 {
		t.Errorf("unbindable VIF status = %+v, want pending with an ofport", st)
	}
	ifs, pts := rows(t, env, "Interface"), rows(t, env, "Port")
	h1.stop()

	h2 := newReconciler(t, env, node, sim.NewNetwork(0)) // fresh driver: sim SFs re-made in memory only
	if err := h2.reconcile(vifs...); err != nil {
		t.Fatal(err)
	}
	if n := h2.r.Transactions(); n != 0 {
		t.Errorf("restart with nothing changed sent %d transactions", n)
	}
	if got := rows(t, env, "Interface"); !slices.Equal(got, ifs) {
		t.Errorf("Interface _uuids changed:\n%v\n%v", ifs, got)
	}
	if got := rows(t, env, "Port"); !slices.Equal(got, pts) {
		t.Errorf("Port _uuids changed:\n%v\n%v", pts, got)
	}
	obs := h2.observe()
	for i, v := range vifs {
		want := nodestate.StatePlugged
		if i == 3 {
			want = nodestate.StatePending
		}
		if obs[v.PortID].State != want {
			t.Errorf("vif %d state %q, want %q (%+v)", i, obs[v.PortID].State, want, obs[v.PortID])
		}
	}
	if err := h2.reconcile(); err != nil {
		t.Fatal(err)
	}
}

// Bad input is a typed error and writes nothing.
func TestBadInputWritesNothing(t *testing.T) {
	h := newReconciler(t, env, uuidN('a'), nil)
	ok := nodestate.VIF{PortID: uuidN('f'), MAC: macN(0x400), Function: sf(0, 600)}
	ifs := rows(t, env, "Interface")
	for name, bad := range map[string]nodestate.VIF{
		"malformed mac":  {PortID: uuidN('f'), MAC: "fa:16:3e:00:00", Function: sf(0, 1)},
		"multicast mac":  {PortID: uuidN('f'), MAC: "01:16:3e:00:00:01", Function: sf(0, 1)},
		"non-uuid port":  {PortID: "port-1; rm -rf /", MAC: macN(0x401), Function: sf(0, 1)},
		"negative vf":    {PortID: uuidN('f'), MAC: macN(0x402), Function: vf(0, -1)},
		"huge vf":        {PortID: uuidN('f'), MAC: macN(0x403), Function: vf(0, 1<<20)},
		"negative sf":    {PortID: uuidN('f'), MAC: macN(0x404), Function: sf(0, -3)},
		"huge sf":        {PortID: uuidN('f'), MAC: macN(0x405), Function: sf(0, 1<<30)},
		"unknown pf":     {PortID: uuidN('f'), MAC: macN(0x406), Function: sf(2, 1)},
		"vf and sf both": {PortID: uuidN('f'), MAC: macN(0x407), Function: &nodestate.Function{PF: 0, VF: nodestate.IntPtr(1), SF: nodestate.IntPtr(1)}},
		"mtu too big":    {PortID: uuidN('f'), MAC: macN(0x408), Function: sf(0, 2), MTU: 65000},
	} {
		err := h.reconcile(ok, bad)
		if !isKind(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
		if err := h.r.Validate(context.Background(), &nodestate.Desired{VIFs: []nodestate.VIF{bad}}); !isKind(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Validate = %v, want ErrInvalidArgument", name, err)
		}
	}
	if n := h.r.Transactions(); n != 0 {
		t.Errorf("bad input sent %d transactions", n)
	}
	if got := rows(t, env, "Interface"); !slices.Equal(got, ifs) {
		t.Errorf("bad input changed rows:\n%v\n%v", ifs, got)
	}
}
