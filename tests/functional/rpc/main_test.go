//go:build functional

// Package rpc proves rpcapi against a private RabbitMQ and real Python
// oslo.messaging 14 (Debian's, via /usr/bin/python3).
package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/rabbitmq"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

const (
	python = "/usr/bin/python3"
	topic  = "ironic-dpu-agent"
)

var broker *rabbitmq.Broker

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := os.Stat(python); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: /usr/bin/python3 missing (apt-get install python3-oslo.messaging):", err)
		return 1
	}
	if err := exec.Command(python, "-c", "import oslo_messaging, ironic.common.exception").Run(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: python3-oslo.messaging / python3-ironic not importable:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "rpc-functional-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	broker, tlsFiles, err = rabbitmq.StartTLS(ctx, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start rabbitmq:", err)
		return 1
	}
	defer broker.Stop()
	fmt.Fprintf(os.Stderr, "rabbitmq up on %s in %s\n", broker.Addr(), time.Since(start).Round(time.Millisecond))
	return m.Run()
}

// fastRetry reconnects quickly so restart tests stay short.
func fastRetry() rpcapi.RabbitOptions {
	o := rpcapi.DefaultRabbitOptions()
	o.RetryInterval, o.RetryBackoff, o.IntervalMax = 0.2, 0.2, 1
	o.HeartbeatTimeout = 10
	return o
}

// startServer runs a Go RPC server until the test ends.
func startServer(t *testing.T, cfg rpcapi.ServerConfig) *rpcapi.Server {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = broker.URL()
	}
	if cfg.Target.Topic == "" {
		cfg.Target.Topic = topic
	}
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	}
	if cfg.Rabbit == (rpcapi.RabbitOptions{}) {
		cfg.Rabbit = fastRetry()
	}
	s, err := rpcapi.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1) // show where it hangs
			t.Errorf("server did not stop")
		}
	})
	waitFor(t, 20*time.Second, "server connected", s.Connected)
	return s
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, d, 20*time.Millisecond, what, cond)
}

// pyResult is one line printed by oslo_client.py.
type pyResult struct {
	OK        bool            `json:"ok"`
	Result    json.RawMessage `json:"result"`
	ExcClass  string          `json:"exc_class"`
	ExcModule string          `json:"exc_module"`
	MRO       []string        `json:"mro"`
	ExcType   string          `json:"exc_type"`
	Message   string          `json:"message"`
	Elapsed   float64         `json:"elapsed"`
	Bench     json.RawMessage `json:"bench"`
}

func pythonDir(t testing.TB) string {
	d, err := filepath.Abs("../../python")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runPyClient runs oslo_client.py with script and returns one result per line.
func runPyClient(t *testing.T, script map[string]any) []pyResult {
	t.Helper()
	in, err := json.Marshal(script)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, filepath.Join(pythonDir(t), "oslo_client.py"))
	cmd.Env = append(os.Environ(), "TRANSPORT_URL="+broker.URL())
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("oslo_client.py: %v\nstderr:\n%s", err, stderr.String())
	}
	var res []pyResult
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var r pyResult
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("bad output line %q: %v", line, err)
		}
		res = append(res, r)
	}
	return res
}

// pyServer is a running tests/python/oslo_server.py.
type pyServer struct {
	got chan string // remember() casts, as JSON
}

func startPyServer(t *testing.T, name string) *pyServer {
	t.Helper()
	cmd := exec.Command(python, filepath.Join(pythonDir(t), "oslo_server.py"), name, topic, rpcapi.DefaultExchange)
	cmd.Env = append(os.Environ(), "TRANSPORT_URL="+broker.URL())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ps := &pyServer{got: make(chan string, 100)}
	ready := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // ends when the process closes stdout
		defer close(readerDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "READY":
				close(ready)
			case strings.HasPrefix(line, "CAST "):
				ps.got <- strings.TrimPrefix(line, "CAST ")
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		waited := make(chan error, 1)
		go func() { <-readerDone; waited <- cmd.Wait() }()
		select {
		case <-waited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
	})
	select {
	case <-ready:
	case <-readerDone:
		t.Fatalf("oslo_server.py exited early: %s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("oslo_server.py not ready: %s", stderr.String())
	}
	return ps
}
