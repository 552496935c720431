//go:build functional

package network_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/drivers/sim"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/network"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// sslOpts are the [ovs] options of an ssl: ovsdb_connection to the shared
// stack, trusting ca.
func sslOpts(ca string) config.OVSOpts {
	return config.OVSOpts{OVSDBConnection: env.OVSDBSSL, IntegrationBridge: env.Bridge, BindTimeout: 10 * time.Second,
		SSLKeyFile: pki.ClientKey, SSLCertFile: pki.ClientCert, SSLCACertFile: ca}
}

// ovsdb-server with --private-key/--certificate/--ca-cert and a pssl:
// remote, as an operator secures OVSDB: the agent plugs a VIF over ssl:
// and ovn-controller binds it.
func TestPlugOverSSL(t *testing.T) {
	drv := sim.NewNetwork(0)
	h := newReconcilerWith(t, env, uuidN('a'), drv, 10*time.Second, func(o *network.Options) { o.Config = sslOpts(pki.CA) })
	port, mac := uuidN('b'), macN(0x551)
	addLSP(t, env, "ls-ssl", port, mac, "10.0.5.11")
	if err := h.reconcile(nodestate.VIF{PortID: port, MAC: mac, Function: sf(0, 55)}); err != nil {
		t.Fatal(err)
	}
	if st := h.observe()[port]; st.State != nodestate.StatePlugged || !st.Bound || st.Representor != "pf0sf55" {
		t.Fatalf("status after plug over ssl: = %+v", st)
	}
	if got := ifaceExtID(t, env, "pf0sf55", "iface-id"); got != port {
		t.Fatalf("iface-id = %q, want %q", got, port)
	}
	if err := h.reconcile(); err != nil {
		t.Fatal(err)
	}
}

// A server certificate from a CA other than ssl_ca_cert_file is refused:
// the reconciler never connects and says why.
func TestSSLRefusesWrongCA(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := network.New(network.Options{Config: sslOpts(pki.OtherCA), NodeUUID: uuidN('a'), Driver: sim.NewNetwork(0),
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(3 * time.Second)
	err = r.Health(ctx)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("health with an untrusted server certificate: %v", err)
	}
	// missing files are refused at once, before any connection
	o := sslOpts(pki.CA)
	o.SSLKeyFile = filepath.Join(t.TempDir(), "none.key")
	if _, err := network.New(network.Options{Config: o, NodeUUID: uuidN('a'), Driver: sim.NewNetwork(0)}); err == nil {
		t.Fatal("a missing ssl_key_file was accepted")
	}
}

// `check` probes an ssl: OVSDB with the [ovs] ssl_* files (and reads it for
// --hardware); with the wrong CA it reports OVSDB unreachable (bit 8).
func TestCheckOverSSL(t *testing.T) {
	dir := t.TempDir()
	bin, err := agentproc.Build(dir, "ironic-dpu-agent")
	if err != nil {
		t.Fatal(err)
	}
	run := func(ca string, args ...string) (int, string) {
		cfg := filepath.Join(t.TempDir(), "agent.conf")
		if err := agentproc.WriteConfig(cfg, map[string]map[string]string{
			"DEFAULT": {"node_uuid": uuidN('c'), "transport_url": "rabbit://u:p@127.0.0.1:1/", "state_dir": dir},
			"dpu":     {"driver": "spdk-generic"},
			"spdk":    {"rpc_socket": filepath.Join(dir, "none.sock")},
			"ovs": {"ovsdb_connection": env.OVSDBSSL, "integration_bridge": env.Bridge, "sysfs_root": dir,
				"ssl_key_file": pki.ClientKey, "ssl_cert_file": pki.ClientCert, "ssl_ca_cert_file": ca},
		}); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, append([]string{"check", "--config-file", cfg, "--timeout", "5s"}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("check: %v\n%s", err, out)
		}
		return ee.ExitCode(), string(out)
	}
	code, out := run(pki.CA)
	if code != 2+4 || !strings.Contains(out, "ovsdb "+env.OVSDBSSL+": ok") || strings.Contains(out, "WARNING: plaintext OVSDB") {
		t.Fatalf("check over ssl: exit %d, want 6 (no broker, no SPDK)\n%s", code, out)
	}
	code, out = run(pki.CA, "--hardware")
	if code&8 != 0 || !strings.Contains(out, "bridge "+env.Bridge+" (integration bridge)") {
		t.Fatalf("check --hardware over ssl: exit %d\n%s", code, out)
	}
	code, out = run(pki.OtherCA)
	if code != 2+4+8 || !strings.Contains(out, "ovsdb "+env.OVSDBSSL+": UNREACHABLE") || !strings.Contains(out, "certificate") {
		t.Fatalf("check with the wrong CA: exit %d, want 14\n%s", code, out)
	}
}
