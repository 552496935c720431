package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c := config.Defaults()
	if c.Agent.Exchange != "ironic_dpu" || c.Agent.Topic != "ironic-dpu-agent" || c.DPU.Driver != "sim" ||
		c.OVS.IntegrationBridge != "br-int" || c.SPDK.RPCSocket != "/var/tmp/spdk.sock" || c.Default.ReconcileInterval != time.Minute {
		t.Fatalf("defaults %+v", c)
	}
}

func TestLaterFilesWinAndDirIsRead(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.conf", "[DEFAULT]\nnode_uuid = 1be26c0b-03f2-4d2e-ae87-c02d7f33c123\ntransport_url = rabbit://u:p@h:5672/\n[agent]\ntopic = first\n[oslo_messaging_rabbit]\namqp_durable_queues = true\n")
	b := write(t, dir, "b.conf", "[agent]\ntopic = second\n[ovs]\nbind_timeout = 3\n")
	cd := filepath.Join(dir, "conf.d")
	_ = os.Mkdir(cd, 0o700)
	write(t, cd, "10-x.conf", "[dpu]\ndriver = bluefield\n")
	write(t, cd, "ignored.txt", "[dpu]\ndriver = nope\n")
	c, err := config.Load([]string{a, b}, []string{cd})
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Topic != "second" || !c.Rabbit.AMQPDurableQueues || c.DPU.Driver != "bluefield" || c.OVS.BindTimeout != 3*time.Second {
		t.Fatalf("loaded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBadValuesAndMissingFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := config.Load([]string{filepath.Join(dir, "missing.conf")}, nil); err == nil {
		t.Fatal("missing file accepted")
	}
	bad := write(t, dir, "bad.conf", "[oslo_messaging_rabbit]\nssl = maybe\n")
	if _, err := config.Load([]string{bad}, nil); err == nil || !strings.Contains(err.Error(), "[oslo_messaging_rabbit] ssl") {
		t.Fatalf("bad bool: %v", err)
	}
	if err := config.Defaults().Validate(); err == nil || !strings.Contains(err.Error(), "node_uuid") {
		t.Fatalf("missing node_uuid not reported: %v", err)
	}
	for name, edit := range map[string]func(c *config.Config){
		"max_vifs":                  func(c *config.Config) { c.Agent.MaxVIFs = 0 },
		"max_volumes":               func(c *config.Config) { c.Agent.MaxVolumes = -1 },
		"max_message_bytes":         func(c *config.Config) { c.Agent.MaxMessageBytes = 100 },
		"pfs":                       func(c *config.Config) { c.DPU.PFs = 0 },
		"max_vfs_per_pf":            func(c *config.Config) { c.DPU.MaxVFsPerPF = -1 },
		"rabbit_qos_prefetch_count": func(c *config.Config) { c.Rabbit.QosPrefetchCount = -1 },
		"kombu_failover_strategy":   func(c *config.Config) { c.Rabbit.KombuFailoverStrategy = "random" },
		"liveness_timeout":          func(c *config.Config) { c.Default.LivenessTimeout = time.Millisecond },
	} {
		c := config.Defaults()
		c.Default.NodeUUID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
		if err := c.Validate(); err != nil {
			t.Fatalf("defaults: %v", err)
		}
		edit(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s not reported: %v", name, err)
		}
	}
}

func TestSampleListsEveryGroupAndParsesBack(t *testing.T) {
	s := config.Sample()
	for _, g := range []string{"[DEFAULT]", "[oslo_messaging_rabbit]", "[agent]", "[dpu]", "[ovs]", "[spdk]", "[storage]", "[spdk_nvmf]", "[ironic]", "#transport_url = rabbit://", "#exchange = ironic_dpu"} {
		if !strings.Contains(s, g) {
			t.Fatalf("sample lacks %s", g)
		}
	}
	// Uncommenting every option gives back the defaults.
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") && strings.Contains(line, " = ") && !strings.HasPrefix(line, "# ") {
			line = strings.TrimPrefix(line, "#")
		}
		b.WriteString(line + "\n")
	}
	p := write(t, t.TempDir(), "s.conf", b.String())
	c, err := config.Load([]string{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, config.Defaults()) {
		t.Fatalf("sample defaults differ from code defaults")
	}
}

func TestSampleIsCommitted(t *testing.T) {
	got, err := os.ReadFile("../etc/ironic-dpu-agent/ironic-dpu-agent.conf.sample")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != config.Sample() {
		t.Fatal("etc/ironic-dpu-agent/ironic-dpu-agent.conf.sample is stale: run make genconfig")
	}
}

func TestSecretsRedacted(t *testing.T) {
	c := config.Defaults()
	c.Default.TransportURL = "rabbit://ironic:s3cr3t@h1:5672/"
	c.Ironic.Password = "hunter2"
	redacted := 0
	fields := c.LogFields(func(string) string { redacted++; return "<redacted url>" })
	if redacted != 1 || fields["DEFAULT.transport_url"] != "<redacted url>" || fields["ironic.password"] != "***" {
		t.Fatalf("redaction: %d calls, %v", redacted, fields)
	}
	for k, v := range fields {
		if strings.Contains(v, "s3cr3t") || strings.Contains(v, "hunter2") {
			t.Fatalf("%s leaks a secret: %s", k, v)
		}
	}
}

// oslo.config BoolOpt spellings: a config copied from a Python service
// (ssl = yes, amqp_durable_queues = on, debug = True) must load.
func TestOsloBooleans(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "a.conf", "[DEFAULT]\ndebug = True\n[oslo_messaging_rabbit]\nssl = yes\namqp_durable_queues = on\nrabbit_ha_queues = Y\nrabbit_quorum_queue = no\namqp_auto_delete = off\n")
	c, err := config.Load([]string{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Default.Debug || !c.Rabbit.SSL || !c.Rabbit.AMQPDurableQueues || !c.Rabbit.RabbitHAQueues || c.Rabbit.RabbitQuorumQueue || c.Rabbit.AMQPAutoDelete {
		t.Fatalf("booleans %+v %+v", c.Default, c.Rabbit)
	}
	bad := write(t, dir, "b.conf", "[oslo_messaging_rabbit]\nssl = maybe\n")
	if _, err := config.Load([]string{bad}, nil); err == nil {
		t.Fatal("ssl = maybe accepted")
	}
}

// A host-facing TCP listener off loopback needs a host ACL: `check` exits 1.
func TestHostFacingTCPNeedsAllowedHosts(t *testing.T) {
	base := "[DEFAULT]\nnode_uuid = 1be26c0b-03f2-4d2e-ae87-c02d7f33c123\n[dpu]\ndriver = spdk-generic\n[spdk_nvmf]\ntransport = TCP\nlisten_port = 4420\n"
	host := "nqn.2014-08.org.nvmexpress:uuid:1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	cases := map[string]struct {
		extra string
		ok    bool
	}{
		"loopback":            {"listen_address = 127.0.0.1\n", true},
		"ipv6 loopback":       {"listen_address = ::1\n", true},
		"network, no acl":     {"listen_address = 192.0.2.10\n", false},
		"any address, no acl": {"listen_address = 0.0.0.0\n", false},
		"network with acl":    {"listen_address = 192.0.2.10\nallowed_host_nqns = " + host + ", nqn.2014-08.org.example:host2\n", true},
		"bad nqn":             {"listen_address = 127.0.0.1\nallowed_host_nqns = not-an-nqn\n", false},
		"dhchap with acl":     {"listen_address = 192.0.2.10\nallowed_host_nqns = " + host + "\ndhchap_key_file = /etc/k\n", true},
		"dhchap, no acl":      {"listen_address = 127.0.0.1\ndhchap_key_file = /etc/k\n", false},
		"dhchap relative":     {"listen_address = 127.0.0.1\nallowed_host_nqns = " + host + "\ndhchap_key_file = k\n", false},
	}
	for name, tc := range cases {
		p := write(t, t.TempDir(), "a.conf", base+tc.extra)
		c, err := config.Load([]string{p}, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", name, err, tc.ok)
		}
	}
	p := write(t, t.TempDir(), "a.conf", base+"allowed_host_nqns = "+host+","+host+"\n")
	if _, err := config.Load([]string{p}, nil); err == nil {
		t.Error("a host listed twice was accepted")
	}
	p = write(t, t.TempDir(), "a.conf", base+"listen_address = 192.0.2.10\nallowed_host_nqns = "+host+" , nqn.2014-08.org.example:host2\n")
	c, err := config.Load([]string{p}, nil)
	if err != nil || !reflect.DeepEqual(c.NVMf.AllowedHostNQNs, []string{host, "nqn.2014-08.org.example:host2"}) {
		t.Fatalf("list = %q, %v", c.NVMf.AllowedHostNQNs, err)
	}
}
