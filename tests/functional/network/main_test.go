//go:build functional

// Functional tests of network/ against real OVS 3.1 + OVN 23.03 daemons
// (Debian: openvswitch-switch ovn-central ovn-host; the traffic test also
// needs iproute2 and iputils-ping, and root). No OVSDB mocks: one private
// stack on the dummy datapath is shared by the package (TestMain); the
// traffic test starts its own on the userspace netdev datapath.
package network_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/ovn"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/testpki"
	"github.com/ironic-dpu/ironic-dpu-agent/network"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

var (
	env *ovn.Env
	// pki signed the shared stack's ssl: OVSDB remote (env.OVSDBSSL).
	pki testpki.Files
)

var _ agent.Reconciler = (*network.Reconciler)(nil)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ovn-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pki, err = testpki.Write(filepath.Join(dir, "pki"))
	if err == nil {
		env, err = ovn.Start(context.Background(), ovn.Options{Dir: dir,
			SSL: &ovn.SSLFiles{PrivateKey: pki.ServerKey, Certificate: pki.ServerCert, CACert: pki.CA}})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start OVS/OVN stack:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	env.Stop()
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "OVS/OVN logs kept in", dir)
	}
	os.Exit(code)
}

type harness struct {
	t        *testing.T
	env      *ovn.Env
	r        *network.Reconciler
	drv      drivers.NetworkDriver
	node     string
	triggers atomic.Int64
	stop     func() // ends the reconciler's Run and waits for it (idempotent)
}

// newReconciler starts a Reconciler against e and waits until it is connected.
func newReconciler(t *testing.T, e *ovn.Env, node string, drv drivers.NetworkDriver) *harness {
	t.Helper()
	return newReconcilerTimeout(t, e, node, drv, 10*time.Second)
}

func newReconcilerTimeout(t *testing.T, e *ovn.Env, node string, drv drivers.NetworkDriver, bind time.Duration) *harness {
	t.Helper()
	return newReconcilerWith(t, e, node, drv, bind, func(*network.Options) {})
}

// newReconcilerWith is newReconcilerTimeout with mod applied to the options.
func newReconcilerWith(t *testing.T, e *ovn.Env, node string, drv drivers.NetworkDriver, bind time.Duration, mod func(*network.Options)) *harness {
	t.Helper()
	h := &harness{t: t, env: e, drv: drv, node: node}
	if h.drv == nil {
		h.drv = sim.NewNetwork(0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := network.Options{
		OVSDBConnection: e.OVSDB, IntegrationBridge: e.Bridge, BindTimeout: bind,
		NodeUUID: node, Driver: h.drv, Trigger: func() { h.triggers.Add(1) },
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	}
	mod(&o)
	r, err := network.New(o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	h.r = r
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	h.stop = func() { cancel(); <-done }
	t.Cleanup(h.stop)
	waitFor(t, 10*time.Second, "reconciler connected", func() bool { return r.Health(ctx) == nil })
	return h
}

func (h *harness) reconcile(vifs ...nodestate.VIF) error {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return h.r.Reconcile(ctx, &nodestate.Desired{Generation: 1, NodeUUID: h.node, VIFs: vifs})
}

func (h *harness) observe() map[string]nodestate.VIFStatus {
	var obs nodestate.Observed
	h.r.Observe(context.Background(), &obs)
	out := map[string]nodestate.VIFStatus{}
	for _, v := range obs.VIFs {
		out[v.PortID] = v
	}
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	poll.Until(t, d, 20*time.Millisecond, what, ok)
}

var seq atomic.Int64

// uuidN makes a distinct Neutron-style UUID per call.
func uuidN(prefix byte) string {
	n := seq.Add(1)
	return fmt.Sprintf("%c%07x-0000-4000-8000-%012x", prefix, n, n)
}

func macN(n int) string {
	return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", (n>>16)&0xff, (n>>8)&0xff, n&0xff)
}

// addLSP creates a logical switch port named port on switch ls (created on
// first use), as Neutron's OVN driver would.
func addLSP(t *testing.T, e *ovn.Env, ls, port, mac, ip string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.Nbctl(ctx, "--may-exist", "ls-add", ls, "--", "lsp-add", ls, port, "--", "lsp-set-addresses", port, mac+" "+ip); err != nil {
		t.Fatal(err)
	}
	// The stack outlives the test (TestMain); -count=N must not find old ports.
	t.Cleanup(func() { _, _ = e.Nbctl(context.Background(), "--if-exists", "ls-del", ls) })
}

func sf(pf, n int) *nodestate.Function { return &nodestate.Function{PF: pf, SF: nodestate.IntPtr(n)} }
func vf(pf, n int) *nodestate.Function { return &nodestate.Function{PF: pf, VF: nodestate.IntPtr(n)} }

// rows lists name=_uuid of every row of an OVS table, sorted.
func rows(t *testing.T, e *ovn.Env, table string) []string {
	t.Helper()
	out, err := e.Vsctl(context.Background(), "--bare", "--columns=name,_uuid", "--format=csv", "--no-headings", "list", table)
	if err != nil {
		t.Fatal(err)
	}
	var res []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			res = append(res, l)
		}
	}
	sort.Strings(res)
	return res
}

func ifaceExtID(t *testing.T, e *ovn.Env, name, key string) string {
	t.Helper()
	out, err := e.Vsctl(context.Background(), "--if-exists", "get", "Interface", name, "external_ids:"+key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(strings.TrimSpace(out), `"`)
}

func isKind(err, kind error) bool { return err != nil && errors.Is(err, kind) }
