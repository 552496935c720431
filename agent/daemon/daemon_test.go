package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/daemon"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/httpapi"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/sdnotify/sdnotifytest"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const node = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

// The agent under systemd: READY=1 once it serves, WATCHDOG=1 every
// WATCHDOG_USEC/2 while its loops are alive (the broker being down is no
// reason to stop), none once a loop is stuck (a storage reconcile blocked
// on a wedged SPDK past liveness_timeout: /livez names it), STOPPING=1 on
// shutdown.
func TestDaemonNotifiesSystemdAndFeedsTheWatchdogOnlyWhileAlive(t *testing.T) {
	dir := t.TempDir()
	spdkSock := spdktest.HungT(t)
	notifyName, got := sdnotifytest.ListenT(t, "")
	t.Setenv("NOTIFY_SOCKET", notifyName)
	t.Setenv("WATCHDOG_USEC", "300000")
	t.Setenv("WATCHDOG_PID", "")

	// Ironic has no state for the node until serve is set: then generation 1,
	// which the agent pulls on its next period and reconciles (into SPDK).
	var serve atomic.Bool
	ironic := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !serve.Load() {
			http.Error(w, "{}", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"uuid":"`+node+`","driver":"dpu","driver_internal_info":{"dpu_desired_state":{"generation":1,"node_uuid":"`+node+`","volumes":[],"vifs":[]}}}`)
	}))
	defer ironic.Close()

	cfg := config.Defaults()
	cfg.Default.NodeUUID = node
	cfg.Default.StateDir = filepath.Join(dir, "state")
	cfg.Default.TransportURL = "rabbit://guest:guest@" + freeAddr(t) + "/" // no broker there
	cfg.Default.ReconcileInterval = 300 * time.Millisecond
	cfg.Default.HealthInterval = 200 * time.Millisecond
	cfg.Default.LivenessTimeout = time.Second
	cfg.Default.HealthListen = freeAddr(t)
	cfg.Rabbit.RetryInterval, cfg.Rabbit.RetryBackoff, cfg.Rabbit.IntervalMax = 0.2, 0.2, 0.5
	cfg.SPDK.RPCSocket = spdkSock
	cfg.SPDK.RPCTimeout = time.Hour // wedged for good
	cfg.OVS.OVSDBConnection = "unix:" + filepath.Join(dir, "no-ovsdb.sock")
	cfg.Storage.ConfigDriveDir = filepath.Join(dir, "config-drive")
	cfg.Ironic.APIURL = ironic.URL

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, cfg, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))) }()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-done
		}
	}()
	base := "http://" + cfg.Default.HealthListen

	count := func(d time.Duration) (int, []string) { return sdnotifytest.Collect(got, d) }
	select {
	case m := <-got:
		if !strings.HasPrefix(m, "READY=1") {
			t.Fatalf("first notification %q, want READY=1", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no READY=1")
	}
	// Ready means serving: the probe endpoint answers at once.
	var live httpapi.Liveness
	if code := getJSON(t, base+"/livez", &live); code != 200 || !live.Alive {
		t.Fatalf("livez right after READY=1: %d %+v", code, live)
	}
	// Broker down for longer than liveness_timeout: alive, pinging, not ready.
	if p, _ := count(2500 * time.Millisecond); p < 8 {
		t.Fatalf("%d watchdog pings in 2.5 s at a 150 ms period", p)
	}
	if code := getJSON(t, base+"/livez", &live); code != 200 || len(live.Loops) != 3 {
		t.Fatalf("livez with the broker down: %d %+v", code, live)
	}
	var st map[string]any
	if code := getJSON(t, base+"/readyz", &st); code != 503 {
		t.Fatalf("readyz with the broker down: %d %v", code, st)
	}
	if code := getJSON(t, base+"/healthz", &st); code != 503 {
		t.Fatalf("healthz (the old name of readyz) with the broker down: %d %v", code, st)
	}

	serve.Store(true) // the storage loop now reconciles into the wedged SPDK
	deadline := time.Now().Add(15 * time.Second)
	for {
		live = httpapi.Liveness{}
		if code := getJSON(t, base+"/livez", &live); code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("livez never reported the stuck storage loop: %+v", live)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := live.Stuck["reconcile/storage"]; !ok || live.Alive {
		t.Fatalf("livez %+v, want reconcile/storage stuck", live)
	}
	if _, ok := live.Stuck["rpc/server"]; ok {
		t.Fatalf("the RPC loop waiting for a broker is not stuck: %+v", live)
	}
	_, other := count(400 * time.Millisecond) // a ping decided just before may still arrive
	p, more := count(1500 * time.Millisecond)
	if p != 0 {
		t.Fatalf("%d watchdog pings while the storage loop is stuck", p)
	}
	other = append(other, more...)
	if !strings.Contains(strings.Join(other, "\n"), "reconcile/storage") {
		t.Fatalf("no STATUS naming the stuck loop: %q", other)
	}

	cancel()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not stop")
	}
	_, other = count(100 * time.Millisecond)
	if !strings.Contains(strings.Join(other, "\n"), "STOPPING=1") {
		t.Fatalf("no STOPPING=1 on shutdown: %q", other)
	}
}
