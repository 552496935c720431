package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/cli"
	"github.com/ironic-dpu/ironic-dpu-agent/config"
)

func run(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndGenconfig(t *testing.T) {
	code, out, _ := run("version")
	if code != 0 || !strings.Contains(out, "rpc api 1.3") {
		t.Fatalf("version: %d %q", code, out)
	}
	code, out, _ = run("genconfig")
	if code != 0 || out != config.Sample() {
		t.Fatalf("genconfig to stdout differs from the sample (code %d)", code)
	}
	p := filepath.Join(t.TempDir(), "s.conf")
	if code, _, _ = run("genconfig", "-o", p); code != 0 {
		t.Fatal("genconfig -o failed")
	}
	if b, _ := os.ReadFile(p); string(b) != config.Sample() {
		t.Fatal("genconfig -o wrote something else")
	}
}

func TestBadConfigIsAClearError(t *testing.T) {
	code, _, errOut := run("serve", "--config-file", "/nonexistent/agent.conf")
	if code != 1 || !strings.Contains(errOut, "/nonexistent/agent.conf") {
		t.Fatalf("missing file: %d %q", code, errOut)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	_ = os.WriteFile(bad, []byte("[DEFAULT]\nreconcile_interval = soon\n"), 0o600)
	code, _, errOut = run("serve", "--config-file", bad)
	if code != 1 || !strings.Contains(errOut, "reconcile_interval") {
		t.Fatalf("bad value: %d %q", code, errOut)
	}
	noNode := filepath.Join(dir, "nonode.conf")
	_ = os.WriteFile(noNode, []byte("[DEFAULT]\nstate_dir = "+dir+"\n"), 0o600)
	code, _, errOut = run("serve", "--config-file", noNode)
	if code != 1 || !strings.Contains(errOut, "node_uuid is required") {
		t.Fatalf("no node: %d %q", code, errOut)
	}
	code, out, _ := run("check", "--config-file", noNode)
	if code != cli.CheckConfigInvalid || !strings.Contains(out+errOut, "node_uuid") {
		t.Fatalf("check with invalid config: %d", code)
	}
	// a config-drive CA file that holds no certificate: the agent would not
	// start (storage.New), so check says so before probing anything
	ca := filepath.Join(dir, "ca.pem")
	_ = os.WriteFile(ca, []byte("not PEM\n"), 0o600)
	badCA := filepath.Join(dir, "badca.conf")
	_ = os.WriteFile(badCA, []byte("[DEFAULT]\nnode_uuid = 1be26c0b-03f2-4d2e-ae87-c02d7f33c123\nstate_dir = "+dir+
		"\n[storage]\nconfig_drive_ca_file = "+ca+"\n"), 0o600)
	code, out, errOut = run("check", "--config-file", badCA)
	if code != cli.CheckConfigInvalid || !strings.Contains(out+errOut, "config_drive_ca_file") {
		t.Fatalf("check with a bad config_drive_ca_file: %d %q", code, out+errOut)
	}
}

func TestCheckReportsEachUnreachableComponent(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "a.conf")
	_ = os.WriteFile(cfg, []byte(`[DEFAULT]
node_uuid = 1be26c0b-03f2-4d2e-ae87-c02d7f33c123
state_dir = `+dir+`
transport_url = rabbit://guest:s3cret@127.0.0.1:1/
[spdk]
rpc_socket = `+dir+`/none.sock
[ovs]
ovsdb_connection = unix:`+dir+`/none.db.sock
[ironic]
api_url = http://ironic:6385
password = hunter2
`), 0o600)
	code, out, errOut := run("check", "--config-file", cfg, "--timeout", "3s")
	if code != cli.CheckRabbitDown|cli.CheckSPDKDown|cli.CheckOVSDBDown {
		t.Fatalf("exit %d, want 14\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "s3cret") || strings.Contains(out+errOut, "hunter2") {
		t.Fatal("check printed a password")
	}
	// An N-1 config's Ironic credentials: named, not fatal (the exit code
	// above is the unreachable components only, no CheckConfigUnknown).
	for _, opt := range []string{"api_url", "password"} {
		if !strings.Contains(out, "config: WARNING: "+cfg+": [ironic] "+opt+" is ignored: no longer used") {
			t.Fatalf("check does not warn about [ironic] %s:\n%s", opt, out)
		}
	}
}

// broker-acl takes node, vhost and size from the agent's config unless given.
func TestBrokerACLFromConfig(t *testing.T) {
	if code, _, errOut := run("broker-acl", "--node", "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"); code != 1 || !strings.Contains(errOut, "user") {
		t.Fatalf("without --user: %d %q", code, errOut)
	}
	cfg := filepath.Join(t.TempDir(), "a.conf")
	_ = os.WriteFile(cfg, []byte("[DEFAULT]\nnode_uuid = 1be26c0b-03f2-4d2e-ae87-c02d7f33c123\n"+
		"transport_url = rabbit://dpu-a:secret@broker:5672/dpus\n[agent]\nmax_message_bytes = 1048576\n"), 0o600)
	code, out, errOut := run("broker-acl", "--config-file", cfg, "--user", "dpu-a")
	if code != 0 {
		t.Fatalf("broker-acl: %d %q", code, errOut)
	}
	for _, want := range []string{
		`rabbitmqctl set_permissions -p dpus dpu-a '^(ironic-dpu-agent\.1be26c0b-03f2-4d2e-ae87-c02d7f33c123|`,
		`rabbitmqctl set_topic_permissions -p dpus dpu-a ironic_dpu '^(ironic-dpu-conductor\.hello\.1be26c0b-03f2-4d2e-ae87-c02d7f33c123)$'`,
		`'{"max-length-bytes": 1048576, "overflow": "reject-publish"}'`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Fatal("password printed")
	}
	code, out, _ = run("broker-acl", "--config-file", cfg, "--user", "dpu-a", "--vhost", "other", "--max-message-bytes", "2048")
	if code != 0 || !strings.Contains(out, "set_permissions -p other ") || !strings.Contains(out, `"max-length-bytes": 2048,`) {
		t.Fatalf("flags do not win over the config: %d\n%s", code, out)
	}
}
