package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
)

// backends are listeners standing in for SPDK, OVSDB and the broker: each
// counts the connections made to it, and accepts nothing else.
type backends struct {
	spdk, ovsdb, broker atomic.Int64
}

func listen(t *testing.T, network, addr string, n *atomic.Int64) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return l
}

func testConfig(t *testing.T, b *backends) *config.Config {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.Default.NodeUUID = "3f9b6c1e-2a4d-4e8f-9b7a-1c2d3e4f5a6b"
	cfg.Default.StateDir = filepath.Join(dir, "state")
	cfg.SPDK.RPCSocket = filepath.Join(dir, "spdk.sock")
	cfg.SPDK.RPCTimeout = 200 * time.Millisecond
	listen(t, "unix", cfg.SPDK.RPCSocket, &b.spdk)
	ovsdb := filepath.Join(dir, "db.sock")
	listen(t, "unix", ovsdb, &b.ovsdb)
	cfg.OVS.OVSDBConnection = "unix:" + ovsdb
	broker := listen(t, "tcp", "127.0.0.1:0", &b.broker)
	cfg.Default.TransportURL = "rabbit://guest:guest@" + broker.Addr().String() + "/"
	if err := os.MkdirAll(cfg.Default.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A state file of a newer schema major stops the daemon before it reaches
// SPDK, OVSDB or the broker: nothing on the DPU is touched, and the error
// says why. The same holds for a newer nsids file and quiesce record.
func TestNewerStateFileTouchesNothing(t *testing.T) {
	for name, file := range map[string]string{
		state.FileName:          `{"schema_version":"3.0","desired":{"generation":7,"volumes":[],"vifs":[]}}`,
		"nsids.json":            `{"schema_version":"3.0","nsids":{}}`,
		storage.QuiesceFileName: `{"schema_version":"3.0","hold":null}`,
	} {
		ours := map[string]string{state.FileName: state.SchemaVersion, "nsids.json": storage.NSIDSchemaVersion,
			storage.QuiesceFileName: storage.QuiesceSchemaVersion}[name]
		t.Run(name, func(t *testing.T) {
			var b backends
			cfg := testConfig(t, &b)
			if err := os.WriteFile(filepath.Join(cfg.Default.StateDir, name), []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := Run(ctx, cfg, zap.NewNop())
			if err == nil || !strings.Contains(err.Error(), "schema version 3.0 is newer than this agent's "+ours) {
				t.Fatalf("Run = %v", err)
			}
			if ctx.Err() != nil {
				t.Fatal("Run did not return by itself")
			}
			time.Sleep(100 * time.Millisecond) // a connection in flight would be counted by now
			if n := b.spdk.Load() + b.ovsdb.Load() + b.broker.Load(); n != 0 {
				t.Fatalf("connections made: spdk %d, ovsdb %d, broker %d", b.spdk.Load(), b.ovsdb.Load(), b.broker.Load())
			}
			if got, _ := os.ReadFile(filepath.Join(cfg.Default.StateDir, name)); string(got) != file {
				t.Fatalf("file changed: %s", got)
			}
		})
	}
}

// Control: with d75592a's files (older schema) the same daemon starts and
// reaches SPDK and OVSDB, so the test above can fail.
func TestOlderStateFilesStartTheDaemon(t *testing.T) {
	var b backends
	cfg := testConfig(t, &b)
	cfg.Default.TransportURL = "rabbit://guest:guest@127.0.0.1:1/" // refused at once: a silent broker slows the stop
	copyFile(t, "../state/testdata/d75592a/desired.json", filepath.Join(cfg.Default.StateDir, state.FileName))
	copyFile(t, "../../storage/testdata/d75592a/nsids.json", filepath.Join(cfg.Default.StateDir, "nsids.json"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zap.NewNop()) }()
	deadline := time.Now().Add(10 * time.Second)
	for b.spdk.Load() == 0 || b.ovsdb.Load() == 0 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the daemon did not reach its backends: spdk %d, ovsdb %d", b.spdk.Load(), b.ovsdb.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
}
