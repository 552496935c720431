// Command network benchmarks VIF plugging on a private OVS + OVN stack
// (dummy datapath, no root needed): the agent's reconciler plugs N VIFs until
// every one is ovn-installed, against a baseline of what os-vif does, one
// `ovs-vsctl --may-exist add-port br-int X -- set Interface X external_ids:...`
// per VIF, on the same stack in the same run. It prints both times, the
// ratio, the agent's p99 plug->installed latency and the process RSS.
// Figures, not assertions.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/ovn"
	"github.com/ironic-dpu/ironic-dpu-agent/network"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

func main() {
	n := flag.Int("n", 256, "VIFs to plug")
	baseline := flag.Bool("baseline", true, "also run the ovs-vsctl baseline")
	flag.Parse()
	if err := run(*n, *baseline); err != nil {
		fmt.Fprintln(os.Stderr, "bench/network:", err)
		os.Exit(1)
	}
}

const node = "0b0e0000-0000-4000-8000-0000000000b0"

func portID(set, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", set, i) }
func mac(set, i int) string    { return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", set, (i>>8)&0xff, i&0xff) }

func run(n int, withBaseline bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ovn-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env, err := ovn.Start(ctx, ovn.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer env.Stop()

	// Logical ports for both runs, created up front in one ovn-nbctl call.
	args := []string{"--wait=sb", "ls-add", "ls-bench"}
	for set := 1; set <= 3; set++ {
		for i := 0; i < n; i++ {
			p := portID(set, i)
			args = append(args, "--", "lsp-add", "ls-bench", p, "--", "lsp-set-addresses", p, mac(set, i))
		}
	}
	if _, err := env.Nbctl(ctx, args...); err != nil {
		return err
	}

	// 0. Reference floor: all VIFs in ONE ovs-vsctl transaction, i.e. what
	// vswitchd + ovn-controller need on this machine however the rows arrive.
	va := []string{"--no-wait"}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("bulk%d", i)
		va = append(va, "--", "add-port", env.Bridge, name, "--", "set", "Interface", name, "external_ids:iface-id="+portID(3, i))
	}
	start := time.Now()
	if _, err := env.Vsctl(ctx, va...); err != nil {
		return err
	}
	if err := waitInstalled(ctx, env, "bulk", n, start); err != nil {
		return err
	}
	floorTime := time.Since(start)
	del := []string{}
	for i := 0; i < n; i++ {
		del = append(del, "--", "del-port", fmt.Sprintf("bulk%d", i))
	}
	if _, err := env.Vsctl(ctx, del[1:]...); err != nil {
		return err
	}
	if err := settle(ctx, env); err != nil {
		return err
	}

	// 1. The agent.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := network.New(network.Options{
		OVSDBConnection: env.OVSDB, IntegrationBridge: env.Bridge, BindTimeout: 5 * time.Minute,
		NodeUUID: node, Driver: sim.NewNetwork(0), Logger: benchLogger(),
	})
	if err != nil {
		return err
	}
	ran := make(chan struct{})
	go func() { r.Run(rctx); close(ran) }()
	defer func() { cancel(); <-ran }()
	for deadline := time.Now().Add(10 * time.Second); r.Health(ctx) != nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("reconciler never connected: %w", r.Health(ctx))
		}
	}
	d := &nodestate.Desired{Generation: 1, NodeUUID: node}
	for i := 0; i < n; i++ {
		d.VIFs = append(d.VIFs, nodestate.VIF{PortID: portID(1, i), MAC: mac(1, i), Function: &nodestate.Function{PF: 0, SF: nodestate.IntPtr(i + 1)}})
	}
	cpu0 := cpuTime()
	start = time.Now()
	if err := r.Reconcile(ctx, d); err != nil {
		return err
	}
	agentTime := time.Since(start)
	agentCPU := cpuTime() - cpu0
	var obs nodestate.Observed
	r.Observe(ctx, &obs)
	bound := 0
	for _, v := range obs.VIFs {
		if v.Bound {
			bound++
		}
	}
	if bound != n {
		return fmt.Errorf("agent: only %d of %d VIFs ovn-installed", bound, n)
	}
	rss := vmRSS()
	lat := r.PlugLatencies()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
	txns := r.Transactions()
	// Unplug again so the baseline starts from the same empty bridge.
	if err := r.Reconcile(ctx, &nodestate.Desired{Generation: 2, NodeUUID: node}); err != nil {
		return err
	}
	if err := settle(ctx, env); err != nil {
		return err
	}

	if !withBaseline {
		fmt.Printf("agent: %d VIFs installed in %.3fs (%d transactions, own CPU %.3fs), plug->installed p50 %v p99 %v, RSS %.1f MB\n",
			n, agentTime.Seconds(), txns, agentCPU.Seconds(), p50.Round(time.Microsecond), p99.Round(time.Microsecond), rss)
		return nil
	}

	// 2. Baseline: one ovs-vsctl per VIF, as os-vif does (it waits for
	// vswitchd to apply each change).
	start = time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("vsctl%d", i)
		if _, err := env.Vsctl(ctx, "--may-exist", "add-port", env.Bridge, name, "--", "set", "Interface", name,
			"external_ids:iface-id="+portID(2, i), "external_ids:iface-status=active",
			"external_ids:attached-mac="+mac(2, i), "external_ids:vm-uuid="+node); err != nil {
			return err
		}
	}
	if err := waitInstalled(ctx, env, "vsctl", n, start); err != nil {
		return err
	}
	baseTime := time.Since(start)

	ratio := float64(baseTime) / float64(agentTime)
	fmt.Printf("network plug benchmark: %d VIFs until ovn-installed (OVS %s, dummy datapath)\n", n, ovsVersion())
	fmt.Printf("  agent reconciler:      %8.3fs  (%d transactions, %.2f ms/VIF, agent's own CPU %.3fs)\n",
		agentTime.Seconds(), txns, agentTime.Seconds()*1000/float64(n), agentCPU.Seconds())
	fmt.Printf("  ovs-vsctl loop (os-vif): %6.3fs  (%.2f ms/VIF)\n", baseTime.Seconds(), baseTime.Seconds()*1000/float64(n))
	fmt.Printf("  floor, 1 txn for all:  %8.3fs  (vswitchd + ovn-controller alone; not a per-VIF plug)\n", floorTime.Seconds())
	fmt.Printf("  speed-up:              %8.1fx  (target >= 10x: %s)\n", ratio, verdict(ratio >= 10))
	fmt.Printf("  agent plug->installed: p50 %v  p99 %v\n", p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	fmt.Printf("  RSS with %d VIFs:      %8.1f MB  (target <= 40 MB: %s)\n", n, rss, verdict(rss <= 40))
	return nil
}

// waitInstalled polls until n Interfaces whose name starts with prefix carry
// ovn-installed=true.
func waitInstalled(ctx context.Context, env *ovn.Env, prefix string, n int, start time.Time) error {
	for {
		out, err := env.Vsctl(ctx, "--bare", "--columns=name", "find", "Interface", `external_ids:ovn-installed="true"`)
		if err != nil {
			return err
		}
		if strings.Count(out, prefix) >= n {
			return nil
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("%s ports never all installed", prefix)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settle waits until ovn-controller has released every port (no
// Port_Binding is up), so each phase starts from the same quiet state.
func settle(ctx context.Context, env *ovn.Env) error {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		out, err := env.Sbctl(ctx, "--bare", "--columns=logical_port", "find", "Port_Binding", "up=true")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ports still up a minute after unplug")
		}
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// vmRSS is this process's resident set in MB, from /proc/self/status.
func vmRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			var kb float64
			fmt.Sscan(f[1], &kb)
			return kb / 1024
		}
	}
	return -1
}

func ovsVersion() string {
	out, err := exec.Command("ovs-vswitchd", "--version").Output()
	if err != nil {
		return "?"
	}
	l, _, _ := strings.Cut(string(out), "\n")
	f := strings.Fields(l)
	return f[len(f)-1]
}

func benchLogger() *zap.Logger {
	if os.Getenv("BENCH_LOG") == "" {
		return zap.NewNop()
	}
	l, _ := zap.NewDevelopment()
	return l
}
