package rpcapi

import (
	"errors"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

func TestParseTransportURL(t *testing.T) {
	u, err := ParseTransportURL("rabbit://alice:s%40cr%3At@h1:5671,bob:pw2@h2/ironic%2Fdpu?amqp_durable_queues=true&ssl=1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{{"alice", "s@cr:t", "h1", 5671}, {"bob", "pw2", "h2", 5672}}
	if len(u.Hosts) != 2 || u.Hosts[0] != want[0] || u.Hosts[1] != want[1] {
		t.Errorf("hosts: %+v", u.Hosts)
	}
	if u.VHost != "ironic/dpu" {
		t.Errorf("vhost %q", u.VHost)
	}
	o, unknown, err := u.ApplyQuery(DefaultRabbitOptions())
	if err != nil || !o.AMQPDurableQueues || !o.SSL || len(unknown) != 0 {
		t.Errorf("query overrides: %+v %v %v", o, unknown, err)
	}

	def, err := ParseTransportURL("rabbit://")
	if err != nil || len(def.Hosts) != 1 || def.Hosts[0] != (Host{"guest", "guest", "localhost", 5672}) || def.VHost != "" {
		t.Errorf("default: %+v %v", def, err)
	}
	v6, err := ParseTransportURL("amqp://u:p@[::1]:5673/")
	if err != nil || v6.Hosts[0].Host != "::1" || v6.Hosts[0].Port != 5673 || v6.Scheme != "amqp" {
		t.Errorf("ipv6: %+v %v", v6, err)
	}
	// a password containing '@' (unencoded) splits at the last '@'
	at, err := ParseTransportURL("rabbit://u:p@ss@h:1/")
	if err != nil || at.Hosts[0].Password != "p@ss" || at.Hosts[0].Host != "h" {
		t.Errorf("at: %+v %v", at, err)
	}
	for _, bad := range []string{"", "http://h/", "rabbit://u:p@h:notaport/", "rabbit://u:p@h:70000/", "rabbit://h1,,h2/", "rabbit://[::1/", "rabbit://u:p@/"} {
		if _, err := ParseTransportURL(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: err=%v", bad, err)
		}
	}
}

func TestQueryOverrides(t *testing.T) {
	u, _ := ParseTransportURL("rabbit://h/?rabbit_quorum_queue=yes&rabbit_transient_queues_ttl=60&rabbit_retry_backoff=0.5&ssl_ca_file=/ca.pem&heartbeat_timeout_threshold=0&frobnicate=1")
	base := DefaultRabbitOptions()
	o, unknown, err := u.ApplyQuery(base)
	if err != nil {
		t.Fatal(err)
	}
	if !o.RabbitQuorumQueue || o.RabbitTransientQueuesTTL != 60 || o.RetryBackoff != 0.5 || o.SSLCAFile != "/ca.pem" || o.HeartbeatTimeout != 0 {
		t.Errorf("overrides: %+v", o)
	}
	if len(unknown) != 1 || unknown[0] != "frobnicate" {
		t.Errorf("unknown: %v", unknown)
	}
	if base.RabbitQuorumQueue {
		t.Error("base mutated")
	}
	bad, _ := ParseTransportURL("rabbit://h/?amqp_durable_queues=maybe")
	if _, _, err := bad.ApplyQuery(base); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad bool: %v", err)
	}
}

func TestRedaction(t *testing.T) {
	raw := "rabbit://alice:TopSecret1@h1:5671,bob:TopSecret2@h2:5672/vh?ssl=1"
	u, err := ParseTransportURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{u.Redacted(), u.String(), RedactURL(raw)} {
		if strings.Contains(s, "TopSecret") {
			t.Errorf("password leaked: %s", s)
		}
		if !strings.Contains(s, "alice:***@h1:5671") || !strings.Contains(s, "bob:***@h2:5672") || !strings.Contains(s, "/vh?ssl=1") {
			t.Errorf("redacted form lost information: %s", s)
		}
	}
	if s := RedactURL("rabbit://u:TopSecret@h:bad/"); strings.Contains(s, "TopSecret") {
		t.Errorf("invalid URL leaked: %s", s)
	}
	if _, err := ParseTransportURL("rabbit://u:Top%zzSecret@h/"); err == nil || strings.Contains(err.Error(), "Secret") {
		t.Errorf("bad escape error leaks or passes: %v", err)
	}
	// Unencoded '/' or '?' in a password (base64 passwords have '/') ends
	// the host part early; the password must not reach the error, the
	// redacted form or the unknown-option names.
	for _, raw := range []string{
		"rabbit://u:Top/Secret@h:5672/",
		"rabbit://u:Top?Secret@h:5672/",
		"rabbit://u:1234/Secret@h:5672/",
		"rabbit://u:1234?Secret@h:5672/",
		"rabbit://u:[Top/Secret@h:5672/",
		"rabbit://u:Top]x/Secret@h:5672/",
	} {
		u, err := ParseTransportURL(raw)
		if err == nil {
			_, unknown, _ := u.ApplyQuery(DefaultRabbitOptions())
			t.Errorf("%s: accepted as %s (unknown options %v)", RedactURL(raw), u.Redacted(), unknown)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) || strings.Contains(err.Error(), "Top") || strings.Contains(err.Error(), "Secret") || strings.Contains(err.Error(), "1234") {
			t.Errorf("password leaked or wrong kind: %v", err)
		}
		if s := RedactURL(raw); strings.Contains(s, "Secret") || strings.Contains(s, "Top") {
			t.Errorf("password leaked: %s", s)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	o := DefaultRabbitOptions() // 1 s + n*2 s, max 30 s
	for attempt, base := range map[int]float64{0: 1, 1: 3, 5: 11, 100: 30} {
		for range 20 {
			d := retryDelay(o, attempt).Seconds()
			if d < base*0.8-1e-9 || d > base*1.2+1e-9 {
				t.Errorf("attempt %d: %.2fs outside %.1fs +-20%%", attempt, d, base)
			}
		}
	}
}
