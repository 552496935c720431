package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/cli"
)

// checkConf writes a config whose SPDK and OVSDB sockets do not exist
// (exit bits 4 and 8) plus extra lines, and runs check on it.
func checkConf(t *testing.T, transportURL, ovsdb, extra string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	if ovsdb == "" {
		ovsdb = "unix:" + dir + "/none.db.sock"
	}
	cfg := filepath.Join(dir, "a.conf")
	if err := os.WriteFile(cfg, []byte(`[DEFAULT]
node_uuid = 1be26c0b-03f2-4d2e-ae87-c02d7f33c123
state_dir = `+dir+`
transport_url = `+transportURL+`
[spdk]
rpc_socket = `+dir+`/none.sock
[ovs]
ovsdb_connection = `+ovsdb+`
`+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run("check", "--config-file", cfg, "--timeout", "2s")
	return code, out + errOut
}

// An unknown section or option is named and adds exit bit 32; the other
// checks still run.
func TestCheckFailsOnUnknownOptions(t *testing.T) {
	down := cli.CheckRabbitDown | cli.CheckSPDKDown | cli.CheckOVSDBDown
	code, out := checkConf(t, "rabbit://guest:guest@127.0.0.1:1/", "", "[oslo_messaging_rabbit]\nrabit_use_ssl = true\n[keystone_authtoken]\nauth_url = http://x\n")
	if code != down|cli.CheckConfigUnknown {
		t.Fatalf("exit %d, want %d\n%s", code, down|cli.CheckConfigUnknown, out)
	}
	for _, want := range []string{"unknown option [oslo_messaging_rabbit] rabit_use_ssl", "unknown section [keystone_authtoken]",
		"unknown config sections or options", "some components are unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A deprecated name is a warning only.
	code, out = checkConf(t, "rabbit://guest:guest@127.0.0.1:1/", "", "[oslo_messaging_rabbit]\nrabbit_use_ssl = false\n")
	if code != down || !strings.Contains(out, "[oslo_messaging_rabbit] rabbit_use_ssl is deprecated, use [oslo_messaging_rabbit] ssl") {
		t.Fatalf("deprecated name: exit %d, want %d\n%s", code, down, out)
	}
}

// Plaintext AMQP or OVSDB to another machine is a warning line naming the
// endpoint; loopback, TLS and unix: are not; the exit code is unchanged.
func TestCheckWarnsAboutPlaintextTransports(t *testing.T) {
	down := cli.CheckRabbitDown | cli.CheckSPDKDown | cli.CheckOVSDBDown
	// 192.0.2.0/24 is TEST-NET-1: never routed, the probes time out.
	cases := []struct {
		name, url, ovsdb, extra string
		warn                    []string
	}{
		{"remote amqp", "rabbit://u:p@127.0.0.1:1,u:p@192.0.2.1:5672/", "", "", []string{"WARNING: plaintext AMQP to 192.0.2.1:5672"}},
		{"remote amqp, tls in url", "rabbit://u:p@192.0.2.1:5671/?ssl=1", "", "", nil},
		{"remote amqp, tls", "rabbit://u:p@192.0.2.1:5671/", "", "[oslo_messaging_rabbit]\nssl = true\n", nil},
		{"remote amqp, deprecated tls", "rabbit://u:p@192.0.2.1:5671/", "", "[oslo_messaging_rabbit]\nrabbit_use_ssl = true\n", nil},
		{"loopback", "rabbit://u:p@localhost:1,u:p@[::1]:1/", "tcp:127.0.0.1:1", "", nil},
		{"remote ovsdb", "rabbit://u:p@127.0.0.1:1/", "tcp:192.0.2.1:6640", "", []string{"WARNING: plaintext OVSDB tcp:192.0.2.1:6640"}},
		{"remote ovsdb by name", "rabbit://u:p@127.0.0.1:1/", "tcp:ovsdb.example:6640", "", []string{"WARNING: plaintext OVSDB tcp:ovsdb.example:6640"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out := checkConf(t, tc.url, tc.ovsdb, tc.extra)
			if code != down {
				t.Fatalf("exit %d, want %d (a warning changes nothing)\n%s", code, down, out)
			}
			if got := strings.Count(out, "WARNING: plaintext"); got != len(tc.warn) {
				t.Fatalf("%d plaintext warnings, want %d:\n%s", got, len(tc.warn), out)
			}
			for _, w := range tc.warn {
				if !strings.Contains(out, w) {
					t.Fatalf("no %q in:\n%s", w, out)
				}
			}
			if strings.Contains(out, "u:p@") {
				t.Fatal("a password was printed")
			}
		})
	}
}
