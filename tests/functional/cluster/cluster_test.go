//go:build functional

// Package cluster runs the agent against a 3-node RabbitMQ cluster started
// by the suite: connections spread over the nodes like oslo.messaging's, and
// an agent whose node stops reconnects to another node and keeps serving.
package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/rabbitmq"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

const (
	node  = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	topic = "ironic-dpu-agent"
)

var (
	cluster *rabbitmq.Cluster
	bin     string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, b, err := agentproc.BuildInTemp("cluster-functional-")
	if dir != "" {
		defer os.RemoveAll(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bin = b
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()
	cluster, err = rabbitmq.StartCluster(ctx, filepath.Join(dir, "rabbit"), 3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start a 3-node rabbitmq cluster:", err)
		return 1
	}
	defer cluster.Stop()
	fmt.Fprintf(os.Stderr, "3-node rabbitmq cluster up in %s: %s\n", time.Since(start).Round(time.Millisecond), rpcapi.RedactURL(cluster.URL()))
	return m.Run()
}

func fastRetry() rpcapi.RabbitOptions {
	o := rpcapi.DefaultRabbitOptions()
	o.RetryInterval, o.RetryBackoff, o.IntervalMax = 0.2, 0.2, 1
	o.HeartbeatTimeout = 10
	return o
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, d, 50*time.Millisecond, what, cond)
}

// The cluster's nodes are all joined: each lists three running nodes.
func TestClusterIsJoined(t *testing.T) {
	out, err := cluster.Nodes[2].Ctl(context.Background(), "eval", "length(rabbit_nodes:all_running()).")
	if err != nil || len(out) == 0 || out[0] != '3' {
		t.Fatalf("running nodes seen by node 3: %q %v", out, err)
	}
}

// Many servers sharing one transport_url (the nodes listed in the same
// order, as in a fleet's config) spread over the nodes instead of all
// starting on the first.
func TestServersSpreadOverTheNodes(t *testing.T) {
	const n = 24
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("echo", func(ctx context.Context, req *rpcapi.Request) (any, error) { return "ok", nil })
	ctx, cancel := context.WithCancel(context.Background())
	links := make([]*rpcapi.Link, n)
	done := make(chan error, n)
	for i := range n {
		links[i] = &rpcapi.Link{}
		s, err := rpcapi.NewServer(rpcapi.ServerConfig{URL: cluster.URL(), Rabbit: fastRetry(), Dispatcher: d, Link: links[i],
			Target: rpcapi.Target{Topic: topic, Server: fmt.Sprintf("spread-%d", i)}, Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
		if err != nil {
			t.Fatal(err)
		}
		go func() { done <- s.Run(ctx) }()
	}
	defer func() {
		cancel()
		for range n {
			if err := <-done; err != nil {
				t.Errorf("server: %v", err)
			}
		}
	}()
	waitFor(t, 30*time.Second, "every server connected", func() bool {
		for _, l := range links {
			if !l.Connected() {
				return false
			}
		}
		return true
	})
	per := map[string]int{}
	for _, l := range links {
		if cluster.ByAddr(l.Broker()) == nil {
			t.Fatalf("server on %q, not a node of the cluster", l.Broker())
		}
		per[l.Broker()]++
	}
	t.Logf("servers per node: %v", per)
	for _, b := range cluster.Nodes {
		// all 24 on one node or none on one: (2/3)^24 per node by chance
		if per[b.Addr()] == 0 {
			t.Errorf("no server on %s (listed %d of 3): %v", b.Addr(), slicesIndex(b)+1, per)
		}
	}
	// and RabbitMQ sees the same: each node's listener port has its share
	out, err := cluster.Nodes[0].Ctl(context.Background(), "list_connections", "--no-table-headers", "port", "client_properties")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, m := range regexp.MustCompile(`(?m)^(\d+)\s.*ironic-dpu-agent:spread-\d+`).FindAllStringSubmatch(out, -1) {
		seen["127.0.0.1:"+m[1]]++
	}
	for _, b := range cluster.Nodes {
		if seen[b.Addr()] != per[b.Addr()] {
			t.Errorf("RabbitMQ lists %v agent connections per listener, the servers say %v", seen, per)
			break
		}
	}
}

func slicesIndex(b *rabbitmq.Broker) int {
	for i, n := range cluster.Nodes {
		if n == b {
			return i
		}
	}
	return -1
}

var (
	brokerRe     = regexp.MustCompile(`(?m)^ironic_dpu_agent_rpc_broker_connected\{broker="([^"]+)"\} 1$`)
	reconnectsRe = regexp.MustCompile(`(?m)^ironic_dpu_agent_rpc_reconnects_total (\d+)$`)
)

// metrics returns the broker the agent consumes from ("" while it is not
// connected) and its reconnect count.
func metrics(t *testing.T, addr string) (string, int) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	broker := ""
	if m := brokerRe.FindSubmatch(body); m != nil {
		broker = string(m[1])
	}
	n := -1
	if m := reconnectsRe.FindSubmatch(body); m != nil {
		n, _ = strconv.Atoi(string(m[1]))
	}
	return broker, n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The real agent on the cluster: stopping the node it consumes from makes
// it reconnect to another node and keep serving RPC (Go client and oslo),
// and /metrics says where it is and that it reconnected. Last in the file:
// it leaves one node stopped.
func TestAgentMovesToAnotherNodeWhenItsNodeStops(t *testing.T) {
	dir := t.TempDir()
	health := freeAddr(t)
	p := agentproc.StartT(t, bin, map[string]map[string]string{
		"DEFAULT": {"transport_url": cluster.URL(), "node_uuid": node, "state_dir": filepath.Join(dir, "state"), "health_listen": health},
		"oslo_messaging_rabbit": {"rabbit_retry_interval": "0.2", "rabbit_retry_backoff": "0.2", "rabbit_interval_max": "1",
			"heartbeat_timeout_threshold": "10"},
		"dpu":     {"driver": "sim"},
		"spdk":    {"rpc_socket": filepath.Join(dir, "no-spdk.sock")},
		"ovs":     {"ovsdb_connection": "unix:" + filepath.Join(dir, "no-ovsdb.sock")},
		"storage": {"host_nqn": "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6", "config_drive_dir": filepath.Join(dir, "cd")},
	})
	var first string
	waitFor(t, 30*time.Second, "the agent connected (metrics)", func() bool {
		b, n := metrics(t, health)
		first = b
		return b != "" && n == 0
	})
	victim := cluster.ByAddr(first)
	if victim == nil {
		t.Fatalf("agent on %q, not a cluster node", first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rpcapi.NewClient(ctx, rpcapi.ClientConfig{URL: cluster.URL(), Rabbit: fastRetry(), Name: t.Name(), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tgt := rpcapi.Target{Topic: topic, Server: node}
	call := func() error {
		_, err := c.Call(context.Background(), tgt, "get_status", nil, rpcapi.CallOptions{Timeout: 3 * time.Second})
		return err
	}
	waitFor(t, 20*time.Second, "get_status before the stop", func() bool { return call() == nil })

	start := time.Now()
	victim.Stop()
	t.Logf("stopped %s (the agent's node) in %s", victim.Addr(), time.Since(start).Round(time.Millisecond))
	var now string
	var reconnects int
	waitFor(t, 30*time.Second, "the agent consuming from another node", func() bool {
		now, reconnects = metrics(t, health)
		return now != "" && now != first
	})
	if cluster.ByAddr(now) == nil || reconnects < 1 {
		t.Fatalf("after the stop: broker %q, reconnects %d", now, reconnects)
	}
	t.Logf("agent moved %s -> %s in %s (reconnects %d)", first, now, time.Since(start).Round(time.Millisecond), reconnects)
	var lastErr error
	waitFor(t, 20*time.Second, "get_status from the Go client after the move", func() bool { lastErr = call(); return lastErr == nil })

	oc, err := osloclient.Start(cluster.URL(), rpcapi.DefaultExchange, topic, node)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	var st map[string]any
	if err := oc.Call(osloclient.Req{Method: "get_status", Timeout: 10}, &st); err != nil || st["node_uuid"] != node {
		t.Fatalf("get_status from oslo.messaging after the move: %v %v", st, err)
	}
	// The log names both brokers, never a password.
	log := p.Log()
	for _, b := range []string{first, now} {
		if !regexp.MustCompile(`"msg":"rpc server consuming".*"broker":"` + regexp.QuoteMeta(b) + `"`).MatchString(log) {
			t.Errorf("agent log does not say it consumes from %s", b)
		}
	}
	if regexp.MustCompile(`guest:guest`).MatchString(log) {
		t.Error("agent log carries the broker password")
	}
}
