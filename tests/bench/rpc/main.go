// Command rpc benchmarks the Go RPC server against a trivial Python
// oslo.messaging server, both called by the same Python oslo.messaging client
// on the same private broker in one run. It prints calls/s, p50 and p99 for
// sequential and 16 concurrent callers, the Go/Python ratios, and the idle
// RSS of both servers. Figures, not assertions.
//
// Usage (from the repository root): go run ./tests/bench/rpc
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/rabbitmq"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

const python = "/usr/bin/python3"

func main() {
	seqN := flag.Int("n", 500, "sequential calls per server")
	concN := flag.Int("concurrent-n", 2000, "calls per server with -c callers")
	conc := flag.Int("c", 16, "concurrent callers (threads)")
	procs := flag.Int("procs", 4, "client processes the concurrent callers are spread over (the Python client is GIL-bound)")
	flag.Parse()
	if err := run(*seqN, *concN, *conc, *procs); err != nil {
		fmt.Fprintln(os.Stderr, "bench rpc:", err)
		os.Exit(1)
	}
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startProc runs a server process and waits for its READY line.
func startProc(env []string, name string, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() { // ends when the process closes stdout
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s exited before READY", name)
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s not ready in 30 s", name)
	}
}

// goNode is the agent's node UUID (its RPC server name).
const goNode = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"

// startAgent runs `agent serve` and waits until it answers get_status.
func startAgent(ctx context.Context, url, bin, conf string) (*proc, error) {
	cmd := exec.Command(bin, "serve", "--config-file", conf)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	cl, err := rpcapi.NewClient(ctx, rpcapi.ClientConfig{URL: url, Rabbit: rpcapi.DefaultRabbitOptions(), Name: "bench-wait"})
	if err != nil {
		p.stop()
		return nil, err
	}
	defer cl.Close()
	for {
		_, err := cl.Call(ctx, rpcapi.Target{Topic: "ironic-dpu-agent", Server: goNode}, "get_status", nil,
			rpcapi.CallOptions{Timeout: 2 * time.Second, AtLeastOnce: true})
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("agent exited before answering: %v", err)
		case <-ctx.Done():
			p.stop()
			return nil, fmt.Errorf("agent not answering: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.cmd.Wait()
}

func (p *proc) rssMiB() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

type result struct {
	calls, errors int
	seconds       float64
	lat           []float64
}

// cpuSeconds is the process's user+system CPU time so far.
func (p *proc) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from 3 (state) on
	ut, _ := strconv.ParseFloat(f[11], 64)                   // field 14
	st, _ := strconv.ParseFloat(f[12], 64)                   // field 15
	return (ut + st) / 100                                   // USER_HZ is 100 on Linux
}

func (r result) rate() float64 { return float64(r.calls) / r.seconds }
func (r result) pct(p float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

// bench runs procs client processes with c/procs threads each, n calls in total.
func bench(url, client, server string, n, c, procs int) (result, error) {
	procs = max(1, min(procs, c))
	type out struct {
		r   result
		err error
	}
	outs := make(chan out, procs)
	for i := range procs {
		pn := n/procs + btoi(i < n%procs)
		pc := c/procs + btoi(i < c%procs)
		go func() { r, err := benchOne(url, client, server, pn, pc); outs <- out{r, err} }()
	}
	var total result
	for range procs {
		o := <-outs
		if o.err != nil {
			return result{}, o.err
		}
		total.calls += o.r.calls
		total.errors += o.r.errors
		total.seconds = max(total.seconds, o.r.seconds)
		total.lat = append(total.lat, o.r.lat...)
	}
	slices.Sort(total.lat)
	return total, nil
}

// goBench makes n calls from c goroutines with the rpcapi client.
func goBench(cl *rpcapi.Client, server string, n, c int) result {
	tgt := rpcapi.Target{Topic: "ironic-dpu-agent", Server: server}
	opts := rpcapi.CallOptions{Timeout: 30 * time.Second, Context: map[string]any{"request_id": "req-bench"}}
	_, _ = cl.Call(context.Background(), tgt, "get_status", nil, opts) // warm-up
	lats := make([][]float64, c)
	errs := make([]int, c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for i := w; i < n; i += c {
				t := time.Now()
				if _, err := cl.Call(context.Background(), tgt, "get_status", nil, opts); err != nil {
					errs[w]++
					continue
				}
				lats[w] = append(lats[w], float64(time.Since(t).Microseconds())/1000)
			}
		})
	}
	wg.Wait()
	r := result{seconds: time.Since(start).Seconds()}
	for w := range c {
		r.lat = append(r.lat, lats[w]...)
		r.errors += errs[w]
	}
	r.calls = len(r.lat)
	slices.Sort(r.lat)
	return r
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func benchOne(url, client, server string, n, c int) (result, error) {
	script, _ := json.Marshal(map[string]any{"bench": map[string]any{"server": server, "method": "get_status", "n": n, "concurrency": c}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, client)
	cmd.Env = append(os.Environ(), "TRANSPORT_URL="+url)
	cmd.Stdin = bytes.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("oslo_client.py: %w: %s", err, stderr.String())
	}
	var line struct {
		Bench struct {
			Calls   int       `json:"calls"`
			NErrors int       `json:"n_errors"`
			Errors  []string  `json:"errors"`
			Seconds float64   `json:"seconds"`
			Lat     []float64 `json:"latencies_ms"`
		} `json:"bench"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(outb), &line); err != nil {
		return result{}, fmt.Errorf("client output: %w", err)
	}
	if line.Bench.NErrors > 0 {
		fmt.Fprintf(os.Stderr, "  %d errors, e.g. %v\n", line.Bench.NErrors, line.Bench.Errors)
	}
	return result{calls: line.Bench.Calls, errors: line.Bench.NErrors, seconds: line.Bench.Seconds, lat: line.Bench.Lat}, nil
}

func run(seqN, concN, conc, procs int) error {
	if _, err := os.Stat(python); err != nil {
		return fmt.Errorf("%s: %w (apt-get install python3-oslo.messaging)", python, err)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	client := filepath.Join(root, "tests/python/oslo_client.py")
	pyServer := filepath.Join(root, "tests/python/oslo_server.py")
	if _, err := os.Stat(client); err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	dir, err := os.MkdirTemp("", "bench-rpc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The Go side is the real agent binary answering its real get_status
	// (which probes SPDK and OVSDB health on every call; both are absent here).
	goBin := filepath.Join(dir, "ironic-dpu-agent")
	build := exec.Command("go", "build", "-o", goBin, "./cmd/ironic-dpu-agent")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build agent: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b, err := rabbitmq.Start(ctx, filepath.Join(dir, "rabbit"))
	if err != nil {
		return err
	}
	defer b.Stop()
	env := []string{"TRANSPORT_URL=" + b.URL()}
	py, err := startProc(env, python, pyServer, "bench-py", "ironic-dpu-agent", "ironic_dpu")
	if err != nil {
		return err
	}
	defer py.stop()
	agentConf := filepath.Join(dir, "agent.conf")
	if err := os.WriteFile(agentConf, []byte(fmt.Sprintf(`[DEFAULT]
transport_url = %s
node_uuid = %s
state_dir = %s
[spdk]
rpc_socket = %s
[ovs]
ovsdb_connection = unix:%s
`, b.URL(), goNode, filepath.Join(dir, "state"), filepath.Join(dir, "no-spdk.sock"), filepath.Join(dir, "no-ovsdb.sock"))), 0o600); err != nil {
		return err
	}
	gs, err := startAgent(ctx, b.URL(), goBin, agentConf)
	if err != nil {
		return err
	}
	defer gs.stop()
	time.Sleep(time.Second) // let both settle before reading idle RSS
	goIdle, pyIdle := gs.rssMiB(), py.rssMiB()

	fmt.Printf("RPC benchmark: Python oslo.messaging 14 client -> server answering get_status (broker %s)\n", b.Addr())
	fmt.Printf("%-24s %9s %8s %8s %13s %6s\n", "case", "calls/s", "p50 ms", "p99 ms", "server CPU/call", "errors")
	for _, c := range []struct {
		name     string
		n, c, pr int
	}{{"sequential", seqN, 1, 1}, {fmt.Sprintf("%d concurrent/%d procs", conc, procs), concN, conc, procs}} {
		var pyR, goR result
		var pyCPU, goCPU float64
		for _, s := range []struct {
			label, server string
			p             *proc
			dst           *result
			cpu           *float64
		}{{"python", "bench-py", py, &pyR, &pyCPU}, {"go", goNode, gs, &goR, &goCPU}} {
			cpu0 := s.p.cpuSeconds()
			r, err := bench(b.URL(), client, s.server, c.n, c.c, c.pr)
			if err != nil {
				return err
			}
			*s.dst = r
			*s.cpu = (s.p.cpuSeconds() - cpu0) / float64(max(1, r.calls)) * 1e6
			fmt.Printf("%-24s %9.0f %8.2f %8.2f %10.0f us %6d\n", c.name+" "+s.label, r.rate(), r.pct(0.50), r.pct(0.99), *s.cpu, r.errors)
		}
		fmt.Printf("%-24s throughput x%.2f (target >= 3), p99 x%.2f of Python's (target <= 0.5), server CPU per call x%.2f\n",
			"  go/python", goR.rate()/pyR.rate(), goR.pct(0.99)/pyR.pct(0.99), goCPU/pyCPU)
	}
	// The Python client is GIL-bound and shares the 2 cores with both servers,
	// so also drive both servers with the cheaper Go client.
	gc, err := rpcapi.NewClient(ctx, rpcapi.ClientConfig{URL: b.URL(), Rabbit: rpcapi.DefaultRabbitOptions(), Name: "bench"})
	if err != nil {
		return err
	}
	defer gc.Close()
	var goPy, goGo result
	var goPyCPU, goGoCPU float64
	for _, s := range []struct {
		label, server string
		p             *proc
		dst           *result
		cpu           *float64
	}{{"python", "bench-py", py, &goPy, &goPyCPU}, {"go", goNode, gs, &goGo, &goGoCPU}} {
		cpu0 := s.p.cpuSeconds()
		r := goBench(gc, s.server, concN, conc)
		*s.dst = r
		*s.cpu = (s.p.cpuSeconds() - cpu0) / float64(max(1, r.calls)) * 1e6
		fmt.Printf("%-24s %9.0f %8.2f %8.2f %10.0f us %6d\n", fmt.Sprintf("go client %d conc %s", conc, s.label), r.rate(), r.pct(0.50), r.pct(0.99), *s.cpu, r.errors)
	}
	fmt.Printf("%-24s throughput x%.2f, p99 x%.2f of Python's, server CPU per call x%.2f\n",
		"  go/python", goGo.rate()/goPy.rate(), goGo.pct(0.99)/goPy.pct(0.99), goGoCPU/goPyCPU)
	fmt.Printf("idle RSS: go agent %.1f MiB (target <= 20), python server %.1f MiB (x%.2f); after load: go %.1f MiB\n",
		goIdle, pyIdle, goIdle/pyIdle, gs.rssMiB())
	return nil
}
