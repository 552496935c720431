package config_test

import (
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
)

// oslo.messaging 14's deprecated names of the options the agent has
// (impl_rabbit.rabbit_opts, amqp.amqp_opts) are read, each with a notice.
func TestDeprecatedNamesHonoured(t *testing.T) {
	p := write(t, t.TempDir(), "old.conf", `[DEFAULT]
rabbit_ha_queues = true
amqp_auto_delete = yes
rabbit_retry_backoff = 7
[oslo_messaging_rabbit]
rabbit_use_ssl = true
kombu_ssl_version = TLSv1_2
kombu_ssl_ca_certs = /etc/ca.pem
kombu_ssl_certfile = /etc/c.pem
kombu_ssl_keyfile = /etc/k.pem
`)
	c, notices, err := config.LoadWithNotices([]string{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Rabbit
	if !r.SSL || r.SSLVersion != "TLSv1_2" || r.SSLCAFile != "/etc/ca.pem" || r.SSLCertFile != "/etc/c.pem" || r.SSLKeyFile != "/etc/k.pem" ||
		!r.RabbitHAQueues || !r.AMQPAutoDelete || r.RetryBackoff != 7 {
		t.Fatalf("deprecated names not honoured: %+v", r)
	}
	want := map[string]bool{
		"[DEFAULT] rabbit_ha_queues": true, "[DEFAULT] amqp_auto_delete": true, "[DEFAULT] rabbit_retry_backoff": true,
		"[oslo_messaging_rabbit] rabbit_use_ssl": true, "[oslo_messaging_rabbit] kombu_ssl_version": true,
		"[oslo_messaging_rabbit] kombu_ssl_ca_certs": true, "[oslo_messaging_rabbit] kombu_ssl_certfile": true,
		"[oslo_messaging_rabbit] kombu_ssl_keyfile": true,
	}
	for _, n := range notices {
		k := "[" + n.Section + "] " + n.Key
		if n.Kind != config.NoticeDeprecated || !want[k] || !strings.Contains(n.Msg, "deprecated, use") || n.File != p {
			t.Errorf("unexpected notice %+v", n)
		}
		delete(want, k)
	}
	if len(want) > 0 {
		t.Fatalf("no deprecation notice for %v", want)
	}
}

// oslo.config's precedence: the last file that sets an option under any name
// wins; within one file the current name wins over the deprecated one.
func TestDeprecatedNamePrecedenceIsOslos(t *testing.T) {
	dir := t.TempDir()
	both := write(t, dir, "both.conf", "[oslo_messaging_rabbit]\nssl = false\nrabbit_use_ssl = true\nkombu_ssl_ca_certs = /old.pem\nssl_ca_file = /new.pem\n")
	c, notices, err := config.LoadWithNotices([]string{both}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rabbit.SSL || c.Rabbit.SSLCAFile != "/new.pem" {
		t.Fatalf("same file: the current name must win: %+v", c.Rabbit)
	}
	ignored := 0
	for _, n := range notices {
		if n.Kind == config.NoticeDeprecated && strings.Contains(n.Msg, "ignored") {
			ignored++
		}
	}
	if ignored != 2 {
		t.Fatalf("want 2 'ignored' notices (rabbit_use_ssl, kombu_ssl_ca_certs), got %v", notices)
	}

	newer := write(t, dir, "a.conf", "[oslo_messaging_rabbit]\nssl = false\nssl_ca_file = /new.pem\n")
	older := write(t, dir, "b.conf", "[oslo_messaging_rabbit]\nrabbit_use_ssl = true\nkombu_ssl_ca_certs = /old.pem\n")
	c, _, err = config.LoadWithNotices([]string{newer, older}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Rabbit.SSL || c.Rabbit.SSLCAFile != "/old.pem" {
		t.Fatalf("a later file's deprecated name must win over an earlier file's current name: %+v", c.Rabbit)
	}
	c, _, err = config.LoadWithNotices([]string{older, newer}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Rabbit.SSL || c.Rabbit.SSLCAFile != "/new.pem" {
		t.Fatalf("the later file's current name must win: %+v", c.Rabbit)
	}
	bad := write(t, dir, "bad.conf", "[oslo_messaging_rabbit]\nrabbit_use_ssl = maybe\n")
	if _, _, err := config.LoadWithNotices([]string{bad}, nil); err == nil || !strings.Contains(err.Error(), "[oslo_messaging_rabbit] rabbit_use_ssl") {
		t.Fatalf("a bad value under the old name must name it: %v", err)
	}
}

// Every section and key the agent does not read is reported by name, once;
// group names are case-insensitive as in oslo.config (except DEFAULT).
func TestUnknownSectionsAndKeys(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.conf", `[DEFAULT]
node_uuid = 1be26c0b-03f2-4d2e-ae87-c02d7f33c123
log_dir = /var/log
[OSLO_MESSAGING_RABBIT]
rabit_use_ssl = true
ssl = true
[keystone_authtoken]
password = secret
[ovs]
bind_timeout = 3
`)
	c, notices, err := config.LoadWithNotices([]string{a}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Rabbit.SSL || c.OVS.BindTimeout.Seconds() != 3 {
		t.Fatalf("known options not read: %+v %+v", c.Rabbit, c.OVS)
	}
	got := map[string]string{}
	for _, n := range notices {
		if n.Kind != config.NoticeUnknown {
			t.Errorf("unexpected notice %+v", n)
			continue
		}
		got["["+n.Section+"] "+n.Key] = n.String()
	}
	want := []string{"[DEFAULT] log_dir", "[oslo_messaging_rabbit] rabit_use_ssl", "[keystone_authtoken] "}
	if len(got) != len(want) {
		t.Fatalf("notices %v, want %v", got, want)
	}
	for _, w := range want {
		s, ok := got[w]
		if !ok || !strings.Contains(s, a) || !strings.Contains(s, strings.TrimSpace(w)) {
			t.Errorf("no notice naming %q in %v", w, got)
		}
	}
	if strings.Contains(got["[keystone_authtoken] "], "secret") {
		t.Error("a notice shows a value")
	}
	// a clean file has no notices
	clean := write(t, dir, "clean.conf", "[DEFAULT]\nnode_uuid = x\n[oslo_messaging_rabbit]\nssl = false\n")
	if _, notices, err := config.LoadWithNotices([]string{clean}, nil); err != nil || len(notices) != 0 {
		t.Fatalf("clean file: %v %v", notices, err)
	}
}

func TestTLSOptionsValidated(t *testing.T) {
	base := func() *config.Config {
		c := config.Defaults()
		c.Default.NodeUUID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
		return c
	}
	for v, ok := range map[string]bool{"": true, "SSLv23": true, "tlsv1_2": true, "TLSv1": false, "TLSv1_1": false, "SSLv3": false, "TLSv1_3": false, "bogus": false} {
		c := base()
		c.Rabbit.SSLVersion = v
		if err := c.Validate(); (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "ssl_version")) {
			t.Errorf("ssl_version %q: %v, want ok=%v", v, err, ok)
		}
	}
	c := base()
	c.OVS.OVSDBConnection = "ssl:192.0.2.1:6640"
	c.OVS.SSLCertFile = "/c.pem"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "ssl_ca_cert_file, ssl_key_file") {
		t.Fatalf("ssl: without key and CA: %v", err)
	}
	c.OVS.SSLKeyFile, c.OVS.SSLCACertFile = "/k.pem", "/ca.pem"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSampleNamesDeprecatedNames(t *testing.T) {
	s := config.Sample()
	for _, d := range []string{"rabbit_use_ssl", "kombu_ssl_ca_certs", "kombu_ssl_certfile", "kombu_ssl_keyfile", "kombu_ssl_version", "[DEFAULT] rabbit_ha_queues"} {
		if !strings.Contains(s, "Deprecated name (still read, with a warning): ") || !strings.Contains(s, d) {
			t.Errorf("sample does not name %s", d)
		}
	}
}
