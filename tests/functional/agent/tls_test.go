//go:build functional

package agent_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
)

// firstBytesProxy forwards every connection to target and records the
// first bytes each client sent: 0x16 starts a TLS handshake, "AMQP" a
// plaintext AMQP connection.
type firstBytesProxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	first  [][]byte
}

func startProxy(t *testing.T, target string) *firstBytesProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &firstBytesProxy{l: l, target: target}
	var conns sync.Map
	p.wg.Add(1)
	go func() { // owned by the test: ends when the listener closes
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.serve(c, &conns)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
		p.wg.Wait()
	})
	return p
}

func (p *firstBytesProxy) serve(c net.Conn, conns *sync.Map) {
	defer c.Close()
	buf := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.ReadFull(c, buf)
	_ = c.SetReadDeadline(time.Time{})
	p.mu.Lock()
	p.first = append(p.first, buf[:n])
	p.mu.Unlock()
	if err != nil {
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	conns.Store(up, true)
	defer up.Close()
	if _, err := up.Write(buf); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	// either side closing ends both copies; wait for the second too
	_ = c.Close()
	_ = up.Close()
	<-done
}

func (p *firstBytesProxy) seen() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.first...)
}

// Issue 15: a config written for oslo's deprecated names (rabbit_use_ssl,
// kombu_ssl_ca_certs) must make the agent talk TLS, and never try
// plaintext first. The agent reaches the broker's AMQPS port only through a
// proxy that records what each connection starts with.
func TestOsloDeprecatedTLSNamesConnectOverTLS(t *testing.T) {
	proxy := startProxy(t, fmt.Sprintf("127.0.0.1:%d", broker.TLSPort()))
	dir := t.TempDir()
	p := agentproc.StartT(t, bin, map[string]map[string]string{
		"DEFAULT": {"transport_url": "rabbit://guest:guest@" + proxy.l.Addr().String() + "/", "node_uuid": node,
			"state_dir": filepath.Join(dir, "state")},
		"oslo_messaging_rabbit": {"rabbit_use_ssl": "true", "kombu_ssl_ca_certs": pki.CA},
		"dpu":                   {"driver": "sim"},
		"spdk":                  {"rpc_socket": filepath.Join(dir, "no-spdk.sock")},
		"ovs":                   {"ovsdb_connection": "unix:" + filepath.Join(dir, "no-ovsdb.sock")},
		"storage":               {"host_nqn": "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"},
	})
	deadline := time.Now().Add(30 * time.Second)
	for len(proxy.seen()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent never connected through the proxy")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, b := range proxy.seen() {
		if len(b) == 0 || b[0] != 0x16 {
			t.Fatalf("connection %d began with %q, not a TLS handshake (0x16): plaintext AMQP was attempted", i, b)
		}
	}
	// the conductor side (Python oslo.messaging) uses the plain listener
	st := waitServing(t, client(t))
	if st["node_uuid"] != node {
		t.Fatalf("get_status: %v", st)
	}
	log := p.Log()
	for _, old := range []string{"rabbit_use_ssl", "kombu_ssl_ca_certs"} {
		if !strings.Contains(log, "[oslo_messaging_rabbit] "+old+" is deprecated") {
			t.Errorf("no deprecation warning for %s in the log", old)
		}
	}
	// `check` reaches the broker the same way, over TLS, and is content.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "check", "--config-file", p.ConfigFile, "--timeout", "5s").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 12 || !strings.Contains(string(out), "rabbitmq rabbit://guest:***@"+proxy.l.Addr().String()+"/: ok") {
		t.Fatalf("check (want exit 12: SPDK and OVSDB absent, broker ok): %v\n%s", err, out)
	}
	for i, b := range proxy.seen() {
		if len(b) == 0 || b[0] != 0x16 {
			t.Fatalf("connection %d began with %q, not a TLS handshake", i, b)
		}
	}
}

// Any key or section the agent does not read is a warning at start naming
// it, and `check` adds exit bit 32.
func TestUnknownOptionsWarnedAtStartAndFailCheck(t *testing.T) {
	dir := t.TempDir()
	p := agentproc.StartT(t, bin, map[string]map[string]string{
		"DEFAULT":               {"transport_url": broker.URL(), "node_uuid": node, "state_dir": filepath.Join(dir, "state")},
		"oslo_messaging_rabbit": {"rabit_use_ssl": "true"},
		"keystone_authtoken":    {"auth_url": "http://keystone.example/"},
		"dpu":                   {"driver": "sim"},
		"spdk":                  {"rpc_socket": filepath.Join(dir, "no-spdk.sock")},
		"ovs":                   {"ovsdb_connection": "unix:" + filepath.Join(dir, "no-ovsdb.sock")},
		"storage":               {"host_nqn": "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"},
	})
	waitServing(t, client(t))
	log := p.Log()
	for _, want := range []string{"unknown option [oslo_messaging_rabbit] rabit_use_ssl", "unknown section [keystone_authtoken]"} {
		if !strings.Contains(log, want) {
			t.Errorf("start-up log does not warn %q:\n%s", want, log)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "check", "--config-file", p.ConfigFile, "--timeout", "5s").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 12+32 || !strings.Contains(string(out), "rabit_use_ssl") {
		t.Fatalf("check: want exit 44 (SPDK, OVSDB absent, unknown options): %v\n%s", err, out)
	}
}
