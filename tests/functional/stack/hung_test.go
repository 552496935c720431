//go:build functional

package stack_test

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
)

// hungSPDK is a unix socket that accepts connections and reads requests but
// never answers: SPDK wedged (not dead), so every call waits its rpc_timeout.
func hungSPDK(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hung-spdk.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = c.Read(make([]byte, 1<<20)) }() // swallow, never reply
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return sock
}

// A hung SPDK stalls neither apply_state nor a NIC hot-plug: storage and
// network reconcile in their own loops, and plug_vif waits for the network
// one only. (Before, one lock and a synchronous full reconcile made both
// wait rpc_timeout for SPDK.)
func TestHungSPDKDelaysNeitherApplyStateNorPlugVIF(t *testing.T) {
	ctx := context.Background()
	startAgentWith(t, map[string]map[string]string{
		"spdk":    {"rpc_socket": hungSPDK(t), "rpc_timeout": "60s"},
		"DEFAULT": {"reconcile_interval": "60s"},
	})
	c := pyClient(t)
	for _, cmd := range [][]string{
		{"--may-exist", "ls-add", "net-hung"},
		{"--may-exist", "lsp-add", "net-hung", port1}, {"lsp-set-addresses", port1, "fa:16:3e:00:00:01 10.0.0.11"},
	} {
		if out, err := stack.Nbctl(ctx, cmd...); err != nil {
			t.Fatalf("ovn-nbctl %v: %v %s", cmd, err, out)
		}
	}
	t.Cleanup(func() { _, _ = stack.Nbctl(context.Background(), "--if-exists", "ls-del", "net-hung") })

	// A boot volume: the storage loop is now stuck in SPDK for a minute.
	zero := 0
	var applied struct {
		Generation int `json:"generation"`
		Observed   struct {
			Generation int `json:"generation"`
		} `json:"observed"`
	}
	start := time.Now()
	err := c.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": map[string]any{
		"generation": 3, "node_uuid": node, "volumes": []any{oldFormat(volA, &zero)}, "vifs": []any{}}}}, &applied)
	if err != nil || applied.Generation != 3 {
		t.Fatalf("apply_state: %+v %v", applied, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("apply_state took %v with SPDK hung", took)
	}
	time.Sleep(500 * time.Millisecond) // let the storage loop enter its hung call

	start = time.Now()
	var st vifStatus
	vif := map[string]any{"port_id": port1, "mac": "fa:16:3e:00:00:01", "function": map[string]any{"pf": 0, "vf": 4}}
	if err := c.Call(osloclient.Req{Method: "plug_vif", Args: map[string]any{"vif": vif}}, &st); err != nil {
		t.Fatalf("plug_vif with SPDK hung: %v", err)
	}
	took := time.Since(start)
	if st.State != "plugged" || !st.Bound || st.Representor != "pf0vf4" {
		t.Fatalf("plug_vif: %+v", st)
	}
	if took > 10*time.Second {
		t.Fatalf("plug_vif took %v with SPDK hung (the SPDK call waits 60s)", took)
	}
	t.Logf("apply_state and plug_vif answered while SPDK hangs; plug_vif took %v", took)

	// The storage loop has not completed: observed.generation stays behind.
	var view struct {
		Observed struct {
			Generation int `json:"generation"`
			Components map[string]struct {
				Generation int `json:"generation"`
			} `json:"components"`
		} `json:"observed"`
	}
	if err := c.Call(osloclient.Req{Method: "get_state"}, &view); err != nil {
		t.Fatal(err)
	}
	if view.Observed.Components["network"].Generation != 4 || view.Observed.Components["storage"].Generation != 0 || view.Observed.Generation != 0 {
		t.Fatalf("observed with SPDK hung: %+v", view.Observed)
	}
	if err := c.Call(osloclient.Req{Method: "unplug_vif", Args: map[string]any{"port_id": port1}}, nil); err != nil {
		t.Fatal(err)
	}
}
