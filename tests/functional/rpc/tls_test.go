//go:build functional

package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/testpki"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// tlsFiles are the broker's certificate and key, the CA that signed it, and
// a second CA that did not.
var tlsFiles testpki.Files

func tlsURL() string { return fmt.Sprintf("rabbit://guest:guest@127.0.0.1:%d/", broker.TLSPort()) }

// The Go server talks to the broker over TLS, verifying it against
// ssl_ca_file, and Python oslo.messaging calls it over TLS too.
func TestTLSWithRealBrokerAndOslo(t *testing.T) {
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("echo", func(_ context.Context, req *rpcapi.Request) (any, error) { return req.Args, nil })
	opts := fastRetry()
	opts.SSL = true
	opts.SSLCAFile = tlsFiles.CA
	startServer(t, rpcapi.ServerConfig{URL: tlsURL(), Rabbit: opts, Dispatcher: d,
		Target: rpcapi.Target{Exchange: "ironic_dpu", Topic: topic, Server: "node-tls"}})

	py, err := osloclient.Start(tlsURL()+"?ssl=1&ssl_ca_file="+tlsFiles.CA, "ironic_dpu", topic, "node-tls")
	if err != nil {
		t.Fatal(err)
	}
	defer py.Close()
	var got map[string]any
	if err := py.Call(osloclient.Req{Method: "echo", Args: map[string]any{"over": "tls"}}, &got); err != nil {
		t.Fatal(err)
	}
	if got["over"] != "tls" {
		t.Fatalf("echo over TLS: %v", got)
	}

	// And the Go client over TLS.
	cl, err := rpcapi.NewClient(context.Background(), rpcapi.ClientConfig{URL: tlsURL(), Rabbit: opts, Exchange: "ironic_dpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := cl.Call(context.Background(), rpcapi.Target{Exchange: "ironic_dpu", Topic: topic, Server: "node-tls"}, "echo",
		map[string]any{"n": 1}, rpcapi.CallOptions{Timeout: 10 * time.Second})
	var m map[string]any
	if err != nil || json.Unmarshal(res, &m) != nil || m["n"] != float64(1) {
		t.Fatalf("go client over TLS: %s %v", res, err)
	}
}

// A broker certificate from an unknown CA is refused: the server never
// connects, keeps retrying, and says why.
func TestTLSRefusesUnknownCA(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	opts := fastRetry()
	opts.SSL = true
	opts.SSLCAFile = tlsFiles.OtherCA
	s, err := rpcapi.NewServer(rpcapi.ServerConfig{URL: tlsURL(), Rabbit: opts, Dispatcher: rpcapi.NewDispatcher("1.0", ""),
		Target: rpcapi.Target{Topic: topic, Server: "node-badca"}, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-ctx.Done()
	<-done
	if s.Connected() {
		t.Fatal("connected to a broker whose certificate no trusted CA signed")
	}
	found := false
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if strings.Contains(fmt.Sprint(f.Interface, f.String), "certificate") {
				found = true
			}
		}
		if strings.Contains(e.Message, "certificate") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no certificate error logged; logs: %v", logs.All())
	}
}
