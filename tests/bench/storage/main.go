// Command storage is the storage benchmark: attach and expose N volumes
// (default 64) through the storage reconciler against the in-process SPDK
// emulator, and compare with the floor — the same SPDK call sequence sent
// straight through the client, no reconciler. It prints figures, not
// pass/fail; the target is a bulk ratio <= 1.5.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/spdkgeneric"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/backend"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/nvmeof"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const (
	nodeUUID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	hostNQN  = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"
)

type bench struct {
	n, parallel int
	latency     time.Duration
	sock        string
	emu         *spdktest.Emulator
	cl          *spdk.Client
	ids         []string
	opts        storage.Settings
}

func main() {
	n := flag.Int("volumes", 64, "volumes to attach")
	par := flag.Int("parallel", 8, "reconciler attach parallelism")
	lat := flag.Duration("attach-latency", 2*time.Millisecond, "emulated completion time of a successful attach")
	runs := flag.Int("runs", 5, "bulk repetitions (the median is printed)")
	rounds := flag.Int("lifecycle-rounds", 20, "add-volume and extend operations on a running server")
	flag.Parse()
	if err := run(*n, *par, *runs, *lat); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if err := runLifecycle(*rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench lifecycle:", err)
		os.Exit(1)
	}
}

func run(n, par, runs int, lat time.Duration) error {
	dir, err := os.MkdirTemp("", "spdkbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{n: n, parallel: par, latency: lat, sock: filepath.Join(dir, "spdk.sock"),
		opts: configOpts()}
	var remotes []spdktest.RemoteSubsystem
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		b.ids = append(b.ids, id)
		remotes = append(remotes, spdktest.CinderVolume(id, hostNQN, "4420"))
	}
	b.emu = spdktest.New(spdktest.Options{Remotes: remotes, AttachLatency: lat})
	if err := b.emu.Start(b.sock); err != nil {
		return err
	}
	defer b.emu.Stop()
	b.cl = spdk.NewUnix(b.sock, nil)
	defer b.cl.Close()
	ctx := context.Background()

	fmt.Printf("storage bench: %d volumes, reconciler parallelism %d, emulated attach latency %v, bulk runs %d (median)\n", n, par, lat, runs)
	// Bulk: all volumes in one reconcile, against an empty SPDK each run;
	// the floor sends the same calls on an empty SPDK too.
	var bulks, floors []time.Duration
	var recCalls, floorCalls map[string]int
	var noop time.Duration
	var noopMut, noopCalls int
	for run := 0; run < runs; run++ {
		if err := b.restart(); err != nil {
			return err
		}
		r, err := b.reconciler()
		if err != nil {
			return err
		}
		b.emu.ResetCalls()
		t0 := time.Now()
		if err := r.Reconcile(ctx, b.desired(n)); err != nil {
			return err
		}
		bulks = append(bulks, time.Since(t0))
		recCalls = b.emu.CallCounts()
		b.emu.ResetCalls()
		t0 = time.Now()
		if err := r.Reconcile(ctx, b.desired(n)); err != nil {
			return err
		}
		noop, noopMut, noopCalls = time.Since(t0), b.emu.MutatingCalls(), b.emu.TotalCalls()

		if err := b.restart(); err != nil {
			return err
		}
		b.emu.ResetCalls()
		t0 = time.Now()
		if err := b.floor(ctx, 0, n, true); err != nil {
			return err
		}
		floors = append(floors, time.Since(t0))
		floorCalls = b.emu.CallCounts()
	}
	bulk, floorBulk := pct(bulks, 50), pct(floors, 50)

	// Incremental: one volume more per reconcile (hot-plug one at a time).
	if err := b.restart(); err != nil {
		return err
	}
	r, err := b.reconciler()
	if err != nil {
		return err
	}
	var recLat, floorLat []time.Duration
	for i := 1; i <= n; i++ {
		t0 := time.Now()
		if err := r.Reconcile(ctx, b.desired(i)); err != nil {
			return err
		}
		recLat = append(recLat, time.Since(t0))
	}
	if err := b.restart(); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := b.floor(ctx, i, i+1, i == 0); err != nil {
			return err
		}
		floorLat = append(floorLat, time.Since(t0))
	}

	total := 0
	for _, v := range recCalls {
		total += v
	}
	fmt.Printf("bulk attach+expose of %d: reconciler %v, floor %v, ratio %.2f (target <= 1.5)\n",
		n, bulk.Round(time.Microsecond), floorBulk.Round(time.Microsecond), float64(bulk)/float64(floorBulk))
	fmt.Printf("SPDK calls: reconciler %d (%.2f per volume), floor %d; same call mix: %v\n",
		total, float64(total)/float64(n), sum(floorCalls), sameCounts(recCalls, floorCalls))
	fmt.Printf("  reconciler calls by method: %s\n", fmtCounts(recCalls))
	fmt.Printf("unchanged reconcile of %d volumes: %v, %d calls, %d mutating\n", n, noop.Round(time.Microsecond), noopCalls, noopMut)
	rp50, rp99 := pct(recLat, 50), pct(recLat, 99)
	fp50, fp99 := pct(floorLat, 50), pct(floorLat, 99)
	fmt.Printf("per volume (hot-plug one at a time, 1..%d present): reconciler p50 %v p99 %v; floor p50 %v p99 %v; p50 ratio %.2f\n",
		n, rp50, rp99, fp50, fp99, float64(rp50)/float64(fp50))
	rss, hwm := memStatus()
	fmt.Printf("RSS %s, peak %s (agent side and emulator in one process)\n", rss, hwm)
	return nil
}

func configOpts() storage.Settings {
	return storage.Settings{HostNQN: hostNQN, Multipath: "multipath", CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5}
}

func (b *bench) reconciler() (*storage.Reconciler, error) {
	d, err := sim.NewStorage(b.cl, nodeUUID, "", nil)
	if err != nil {
		return nil, err
	}
	return storage.New(storage.Options{Client: b.cl, Storage: b.opts, NodeUUID: nodeUUID, Driver: d, Parallel: b.parallel})
}

func (b *bench) restart() error {
	if err := b.emu.Stop(); err != nil {
		return err
	}
	return b.emu.Start(b.sock)
}

func (b *bench) desired(k int) *nodestate.Desired {
	d := &nodestate.Desired{Generation: 1, NodeUUID: nodeUUID, VIFs: []nodestate.VIF{}}
	for i, id := range b.ids[:k] {
		v := nodestate.Volume{VolumeID: id, ConnectionInfo: nodestate.ConnectionInfo{DriverVolumeType: "nvmeof", Data: map[string]any{
			"target_nqn": "nqn.2010-10.org.openstack:volume-" + id, "vol_uuid": id,
			"portals": []any{[]any{"127.0.0.1", float64(4420), "tcp"}}}}}
		if i == 0 {
			v.BootIndex = nodestate.IntPtr(0)
		}
		d.Volumes = append(d.Volumes, v)
	}
	return d
}

// floor sends what the reconciler sends for volumes [from, to) — the same
// reads, creates and attaches with the same parameters and parallelism —
// straight through the client.
func (b *bench) floor(ctx context.Context, from, to int, first bool) error {
	be, err := backend.New(backend.Options{Client: b.cl, HostNQN: hostNQN, Multipath: "multipath", CtrlrLossTimeoutSec: -1, ReconnectDelaySec: 5})
	if err != nil {
		return err
	}
	nqn := drivers.HostSubsystemNQN(nodeUUID, nodestate.Function{PF: 0})
	if _, err := b.cl.GetControllers(ctx, ""); err != nil {
		return err
	}
	if _, err := b.cl.GetBdevs(ctx, ""); err != nil {
		return err
	}
	if _, err := b.cl.GetSubsystems(ctx, ""); err != nil {
		return err
	}
	if first {
		if _, err := b.cl.GetTransports(ctx); err != nil {
			return err
		}
		if err := b.cl.CreateTransport(ctx, "TCP"); err != nil {
			return err
		}
		if err := b.cl.CreateSubsystem(ctx, spdk.CreateSubsystemParams{NQN: nqn, AllowAnyHost: true,
			SerialNumber: "1BE26C0B03F24D2EAPF0", ModelNumber: "Ironic DPU NVMe", MaxNamespaces: spdkgeneric.MaxNamespaces}); err != nil {
			return err
		}
	}
	sem := make(chan struct{}, b.parallel)
	var wg sync.WaitGroup
	errs := make(chan error, to-from)
	for i := from; i < to; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			id := b.ids[i]
			name := backend.ControllerName(id)
			t := nvmeof.Target{NQN: "nqn.2010-10.org.openstack:volume-" + id, VolUUID: id}
			names, err := b.cl.AttachController(ctx, be.AttachParams(name, t, nvmeof.Portal{Address: "127.0.0.1", Port: 4420, Transport: "tcp"}))
			if err == nil {
				_, err = b.cl.AddNamespace(ctx, nqn, spdk.Namespace{NSID: i + 1, BdevName: names[0]})
			}
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if first {
		if err := b.cl.AddListener(ctx, nqn, spdk.ListenAddress{Trtype: "TCP", Adrfam: "IPv4", Traddr: "127.0.0.1", Trsvcid: sim.DefaultStoragePort}); err != nil {
			return err
		}
	}
	_, err = b.cl.GetControllers(ctx, "")
	return err
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i].Round(time.Microsecond)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sameCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func fmtCounts(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func memStatus() (rss, hwm string) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?", "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
	}
	return rss, hwm
}
