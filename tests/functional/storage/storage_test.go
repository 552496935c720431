//go:build functional

// Functional tests of the storage reconciler against the SPDK emulator run
// as its own process (cmd/spdk-emulator), which the tests kill -9 and
// restart like a crashed SPDK. Needs the go toolchain to build the emulator.
package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const (
	nodeUUID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	hostNQN  = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"
	bootID   = "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11"
	data1ID  = "a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f"
	data2ID  = "c0ffee00-1111-4222-8333-444455556666"
)

var emulatorBin, agentBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "spdkemu-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if emulatorBin, err = agentproc.Build(dir, "spdk-emulator"); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: cannot build the SPDK emulator:", err)
		return 1
	}
	if agentBin, err = agentproc.Build(dir, "ironic-dpu-agent"); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: cannot build the agent:", err)
		return 1
	}
	return m.Run()
}

// emuProc is one spdk-emulator process.
type emuProc struct {
	t       *testing.T
	sock    string
	remotes string
	cmd     *exec.Cmd
}

func startEmu(t *testing.T) *emuProc {
	t.Helper()
	dir, err := os.MkdirTemp("", "spdkemu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	rs := []spdktest.RemoteSubsystem{
		spdktest.CinderVolume(bootID, hostNQN, "4420", "4421"),
		spdktest.CinderVolume(data1ID, hostNQN, "4420"),
		spdktest.CinderVolume(data2ID, hostNQN, "4420", "4421"),
	}
	b, _ := json.Marshal(rs)
	p := &emuProc{t: t, sock: filepath.Join(dir, "spdk.sock"), remotes: filepath.Join(dir, "remotes.json")}
	if err := os.WriteFile(p.remotes, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(p.kill)
	return p
}

func (p *emuProc) start() {
	p.t.Helper()
	p.cmd = exec.Command(emulatorBin, "--socket", p.sock, "--remotes", p.remotes, "--debug-methods")
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", p.sock); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatal("spdk-emulator did not open its socket")
}

// kill stops the process by its PID with SIGKILL (a crash).
func (p *emuProc) kill() { p.stop(syscall.SIGKILL) }

// stop signals the process by its PID and waits for it.
func (p *emuProc) stop(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(p.cmd.Process.Pid, sig)
	_ = p.cmd.Wait()
	p.cmd = nil
}

func (p *emuProc) mutating(c *spdk.Client) int {
	p.t.Helper()
	var counts map[string]int
	if err := c.Call(context.Background(), "spdktest_get_call_counts", nil, &counts); err != nil {
		p.t.Fatal(err)
	}
	n := 0
	for m, v := range counts {
		if !spdktest.IsReadOnly(m) {
			n += v
		}
	}
	return n
}

func (p *emuProc) reset(c *spdk.Client) {
	p.t.Helper()
	if err := c.Call(context.Background(), "spdktest_reset_call_counts", nil, nil); err != nil {
		p.t.Fatal(err)
	}
}

func newReconciler(t *testing.T, sock string) (*storage.Reconciler, *spdk.Client) {
	t.Helper()
	cl := spdk.NewUnix(sock, nil)
	cl.SetCallTimeout(5 * time.Second)
	t.Cleanup(func() { _ = cl.Close() })
	d, err := sim.NewStorage(cl, nodeUUID, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := storage.New(storage.Options{Client: cl, NodeUUID: nodeUUID, Driver: d, Storage: storage.Settings{
		HostNQN: hostNQN, Multipath: "multipath", CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5}})
	if err != nil {
		t.Fatal(err)
	}
	return r, cl
}

func volumes() *nodestate.Desired {
	portals := func(id string, ports ...float64) map[string]any {
		var ps []any
		for _, p := range ports {
			ps = append(ps, []any{"127.0.0.1", p, "tcp"})
		}
		return map[string]any{"target_nqn": "nqn.2010-10.org.openstack:volume-" + id, "vol_uuid": id, "portals": ps}
	}
	return &nodestate.Desired{Generation: 1, NodeUUID: nodeUUID, VIFs: []nodestate.VIF{}, Volumes: []nodestate.Volume{
		{VolumeID: bootID, BootIndex: nodestate.IntPtr(0), ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: portals(bootID, 4420, 4421)}},
		{VolumeID: data1ID, ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
			"nqn": "nqn.2010-10.org.openstack:volume-" + data1ID, "target_portal": "127.0.0.1", "target_port": float64(4420), "transport_type": "tcp", "ns_id": float64(1)}}},
		{VolumeID: data2ID, ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: portals(data2ID, 4420, 4421)}},
	}}
}

func namespaces(t *testing.T, c *spdk.Client) map[int]string {
	t.Helper()
	subs, err := c.GetSubsystems(context.Background(), drivers.HostSubsystemNQN(nodeUUID, nodestate.Function{PF: 0}))
	if errors.Is(err, errdefs.ErrNotFound) {
		return map[int]string{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, ns := range subs[0].Namespaces {
		out[ns.NSID] = ns.BdevName
	}
	return out
}

func TestEmulatorProcessKillRestartConverges(t *testing.T) {
	ctx := context.Background()
	emu := startEmu(t)
	r, cl := newReconciler(t, emu.sock)
	d := volumes()
	if err := r.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	want := map[int]string{1: "idpu-" + bootID + "n1", 2: "idpu-" + data1ID + "n1", 3: "idpu-" + data2ID + "n1"}
	if got := namespaces(t, cl); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("namespaces = %v, want %v", got, want)
	}

	// A second agent process (new client, new reconciler): nothing to do.
	r2, cl2 := newReconciler(t, emu.sock)
	emu.reset(cl2)
	if err := r2.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	if n := emu.mutating(cl2); n != 0 {
		t.Fatalf("agent restart made %d mutating calls", n)
	}

	// SPDK crashes.
	emu.kill()
	if err := r.Health(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("health after kill = %v", err)
	}
	if err := r.Reconcile(ctx, d); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("reconcile after kill = %v", err)
	}
	// ...and comes back empty: the same client re-dials, reconcile rebuilds.
	emu.start()
	if got := namespaces(t, cl); len(got) != 0 {
		t.Fatalf("restarted emulator not empty: %v", got)
	}
	if err := r.Reconcile(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := namespaces(t, cl); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after restart = %v, want %v", got, want)
	}
	var obs nodestate.Observed
	r.Observe(ctx, &obs)
	for _, v := range obs.Volumes {
		if v.State != nodestate.StateAttached || v.LastError != "" {
			t.Fatalf("observe after restart: %+v", v)
		}
	}
	emu.reset(cl)
	if err := r.Reconcile(ctx, d); err != nil || emu.mutating(cl) != 0 {
		t.Fatalf("converged reconcile: %v, %d mutating", err, emu.mutating(cl))
	}

	// Hot-unplug one data disk, then detach everything (each twice).
	less := volumes()
	less.Volumes = less.Volumes[:2]
	for i := 0; i < 2; i++ {
		if err := r.Reconcile(ctx, less); err != nil {
			t.Fatal(err)
		}
	}
	if got := namespaces(t, cl); len(got) != 2 || got[3] != "" {
		t.Fatalf("after unplug = %v", got)
	}
	empty := &nodestate.Desired{Generation: 2, NodeUUID: nodeUUID, Volumes: []nodestate.Volume{}, VIFs: []nodestate.VIF{}}
	for i := 0; i < 2; i++ {
		if err := r.Reconcile(ctx, empty); err != nil {
			t.Fatal(err)
		}
	}
	if cs, err := cl.GetControllers(ctx, ""); err != nil || len(cs) != 0 || len(namespaces(t, cl)) != 0 {
		t.Fatalf("detach all left %v %v", cs, err)
	}
}
