package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/backend"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// lifecycle measures a running server's volume operations end to end on the
// DPU side: "server add volume" (attach_volume through the agent core:
// validate, persist, reconcile, until the namespace is on pf0) and "volume
// extend" (the Cinder target's lvol resize until get_state reports the new
// size_bytes), each against the floor: the same SPDK calls sent directly to
// a second DPU emulator (attach + add_ns + get_subsystems; resize +
// bdev_get_bdevs). Both DPUs reach one Cinder target emulator as peers.
type lifecycle struct {
	target          *spdktest.Emulator
	tc, agentCl, fc *spdk.Client
	ag              *agent.Agent
	stopAgent       func()
	pf0             string
}

func runLifecycle(rounds int) error {
	dir, err := os.MkdirTemp("", "spdkbench-life")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	l := &lifecycle{pf0: drivers.HostSubsystemNQN(nodeUUID, nodestate.Function{PF: 0})}
	l.target = spdktest.New(spdktest.Options{})
	if err := l.target.Start(filepath.Join(dir, "t.sock")); err != nil {
		return err
	}
	defer l.target.Stop()
	dpuA := spdktest.New(spdktest.Options{Peers: []*spdktest.Emulator{l.target}})
	dpuF := spdktest.New(spdktest.Options{Peers: []*spdktest.Emulator{l.target}})
	for i, e := range []*spdktest.Emulator{dpuA, dpuF} {
		if err := e.Start(filepath.Join(dir, fmt.Sprintf("d%d.sock", i))); err != nil {
			return err
		}
		defer e.Stop()
	}
	l.tc, l.agentCl, l.fc = spdk.NewUnix(filepath.Join(dir, "t.sock"), nil), spdk.NewUnix(filepath.Join(dir, "d0.sock"), nil), spdk.NewUnix(filepath.Join(dir, "d1.sock"), nil)
	defer l.tc.Close()
	defer l.agentCl.Close()
	defer l.fc.Close()
	if err := l.setupTarget(ctx, 2*rounds); err != nil {
		return err
	}
	if err := l.startAgent(filepath.Join(dir, "state")); err != nil {
		return err
	}
	defer l.stopAgent()
	if err := l.setupFloor(ctx); err != nil {
		return err
	}
	var addA, addF, extA, extF []time.Duration
	for i := 0; i < rounds; i++ {
		a, f := volID(2*i), volID(2*i+1)
		d, err := timed(func() error { return l.agentAdd(ctx, a) })
		if err != nil {
			return fmt.Errorf("agent add %s: %w", a, err)
		}
		addA = append(addA, d)
		if d, err = timed(func() error { return l.floorAdd(ctx, f, i+1) }); err != nil {
			return fmt.Errorf("floor add %s: %w", f, err)
		}
		addF = append(addF, d)
	}
	for i := 0; i < rounds; i++ {
		a, f := volID(2*i), volID(2*i+1)
		d, err := timed(func() error { return l.agentExtend(ctx, a) })
		if err != nil {
			return fmt.Errorf("agent extend %s: %w", a, err)
		}
		extA = append(extA, d)
		if d, err = timed(func() error { return l.floorExtend(ctx, f) }); err != nil {
			return fmt.Errorf("floor extend %s: %w", f, err)
		}
		extF = append(extF, d)
	}
	report := func(what string, a, f []time.Duration) {
		fmt.Printf("%s (%d rounds): agent p50 %v p99 %v; direct SPDK p50 %v p99 %v; p50 ratio %.2f\n",
			what, rounds, pct(a, 50), pct(a, 99), pct(f, 50), pct(f, 99), float64(pct(a, 50))/float64(pct(f, 50)))
	}
	report("add volume -> visible on the DPU", addA, addF)
	save, err := l.saveCost(filepath.Join(dir, "save"), rounds)
	if err != nil {
		return err
	}
	fmt.Printf("  of which the durable write of the desired state (atomic file + fsync), p50 %v\n", save)
	report("extend -> new size on the DPU", extA, extF)
	return nil
}

// saveCost is what persisting the agent's current desired state costs: the
// part of an attach that the direct SPDK calls do not pay.
func (l *lifecycle) saveCost(dir string, n int) (time.Duration, error) {
	st, err := state.NewStore(dir)
	if err != nil {
		return 0, err
	}
	d := l.ag.Desired()
	var ds []time.Duration
	for i := 0; i < n; i++ {
		t, err := timed(func() error { return st.Save(d, nil) })
		if err != nil {
			return 0, err
		}
		ds = append(ds, t)
	}
	return pct(ds, 50), nil
}

func volID(i int) string { return fmt.Sprintf("10000000-0000-4000-8000-%012d", i) }

func lvolName(id string) string { return "cinder-volumes/volume-" + id }

func timed(f func() error) (time.Duration, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0), err
}

// setupTarget creates n 4 MiB lvols, each exported over TCP as Cinder's SPDK
// driver does.
func (l *lifecycle) setupTarget(ctx context.Context, n int) error {
	calls := spdktest.LvstoreSetup(n*8 + 64)
	for i := 0; i < n; i++ {
		calls = append(calls, spdktest.LvolExport(volID(i), 4, "4430")...)
	}
	return spdktest.Run(ctx, l.tc, calls)
}

func (l *lifecycle) startAgent(stateDir string) error {
	drv, err := sim.NewStorage(l.agentCl, nodeUUID, "", nil)
	if err != nil {
		return err
	}
	st, err := storage.New(storage.Options{Client: l.agentCl, NodeUUID: nodeUUID, Driver: drv, NSIDFile: filepath.Join(stateDir, "nsids.json"),
		Storage: configOpts()})
	if err != nil {
		return err
	}
	store, err := state.NewStore(stateDir)
	if err != nil {
		return err
	}
	l.ag, err = agent.New(agent.Options{NodeUUID: nodeUUID, Store: store, Reconcilers: []agent.Reconciler{st}})
	if err != nil {
		return err
	}
	// The agent reconciles in its own loops: run them like the daemon does.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.ag.Run(ctx) }()
	l.stopAgent = func() { cancel(); <-done }
	return nil
}

// setupFloor gives the floor DPU what the agent's first attach creates.
func (l *lifecycle) setupFloor(ctx context.Context) error {
	if err := l.fc.CreateTransport(ctx, "TCP"); err != nil {
		return err
	}
	return l.fc.CreateSubsystem(ctx, spdk.CreateSubsystemParams{NQN: l.pf0, AllowAnyHost: true, SerialNumber: "1BE26C0B03F24D2EAPF0", ModelNumber: "Ironic DPU NVMe"})
}

func volume(id string) nodestate.Volume {
	return nodestate.Volume{VolumeID: id, BootIndex: nodestate.IntPtr(-1), ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
		"target_nqn": "nqn.2010-10.org.openstack:volume-" + id, "vol_uuid": id, "portals": []any{[]any{"127.0.0.1", float64(4430), "tcp"}}}}}
}

// agentAdd is "server add volume" on the DPU: attach_volume (which waits for
// the storage loop's reconcile), then until the namespace shows on pf0.
func (l *lifecycle) agentAdd(ctx context.Context, id string) error {
	if _, err := l.ag.AttachVolume(ctx, volume(id), nil); err != nil {
		return err
	}
	return poll(func() (bool, error) { return l.exposed(ctx, l.agentCl, backend.ControllerName(id)+"n1") })
}

func (l *lifecycle) floorAdd(ctx context.Context, id string, nsid int) error {
	be, err := backend.New(backend.Options{Client: l.fc, HostNQN: hostNQN, Multipath: "multipath", CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5})
	if err != nil {
		return err
	}
	t := nvmeof.Target{NQN: "nqn.2010-10.org.openstack:volume-" + id, VolUUID: id}
	names, err := l.fc.AttachController(ctx, be.AttachParams(backend.ControllerName(id), t, nvmeof.Portal{Address: "127.0.0.1", Port: 4430, Transport: "tcp"}))
	if err != nil {
		return err
	}
	if _, err := l.fc.AddNamespace(ctx, l.pf0, spdk.Namespace{NSID: nsid, BdevName: names[0]}); err != nil {
		return err
	}
	return poll(func() (bool, error) { return l.exposed(ctx, l.fc, names[0]) })
}

func (l *lifecycle) exposed(ctx context.Context, c *spdk.Client, bdev string) (bool, error) {
	subs, err := c.GetSubsystems(ctx, l.pf0)
	if err != nil {
		return false, err
	}
	for _, ns := range subs[0].Namespaces {
		if ns.BdevName == bdev {
			return true, nil
		}
	}
	return false, nil
}

// agentExtend is an in-use "volume extend": the target's lvol grows 4 MiB,
// then get_state until the volume's size_bytes shows it.
func (l *lifecycle) agentExtend(ctx context.Context, id string) error {
	if err := l.tc.Call(ctx, "bdev_lvol_resize", map[string]any{"name": lvolName(id), "size_in_mib": 8}, nil); err != nil {
		return err
	}
	return poll(func() (bool, error) {
		for _, v := range l.ag.State(ctx).Observed.Volumes {
			if strings.EqualFold(v.VolumeID, id) {
				return v.SizeBytes == 8<<20, nil
			}
		}
		return false, nil
	})
}

func (l *lifecycle) floorExtend(ctx context.Context, id string) error {
	if err := l.tc.Call(ctx, "bdev_lvol_resize", map[string]any{"name": lvolName(id), "size_in_mib": 8}, nil); err != nil {
		return err
	}
	return poll(func() (bool, error) {
		bs, err := l.fc.GetBdevs(ctx, backend.ControllerName(id)+"n1")
		return err == nil && bs[0].NumBlocks*int64(bs[0].BlockSize) == 8<<20, err
	})
}

// poll retries f for up to 5 s.
func poll(f func() (bool, error)) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := f()
		if ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not visible after 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
