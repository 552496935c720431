package brokeracl_test

import (
	"errors"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/brokeracl"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

const (
	nodeA = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	nodeB = "2ce26c0b-03f2-4d2e-ae87-c02d7f33c124"
)

func opts(node string) brokeracl.Options {
	return brokeracl.Options{Node: node, User: "dpu-" + node[:8], VHost: "ironic-dpu", Exchange: "ironic_dpu",
		Topic: "ironic-dpu-agent", MaxMessageBytes: 1 << 20, MaxConnections: 4, MaxChannels: 64}
}

// Each regex admits exactly the names the agent of node A uses and none of
// B's, the conductor's or near-misses (unanchored, unescaped dot).
func TestPermissionsAreExact(t *testing.T) {
	g, err := brokeracl.Permissions(opts(nodeA))
	if err != nil {
		t.Fatal(err)
	}
	own := []string{"ironic-dpu-agent." + nodeA, "ironic-dpu-agent_fanout_" + nodeA}
	foreign := []string{
		"ironic-dpu-agent." + nodeB, "ironic-dpu-agent_fanout_" + nodeB, "ironic-dpu-agent",
		"ironic-dpu-agent." + nodeA + "x", "x" + "ironic-dpu-agent." + nodeA, "ironic-dpu-agent." + nodeA + ".b",
		"ironic-dpu-agentX" + nodeA, "ironic-dpu-agent_fanout_" + nodeA + "_0123",
		"reply_0123456789abcdef0123456789abcdef", "ironic", "ironic.conductor_manager", "ironic.conductor_manager.host",
		"ironic-dpu-conductor", "ironic-dpu-conductor.host", "amq.topic", "",
	}
	check := func(name, re string, allowed, denied []string) {
		t.Helper()
		if !strings.HasPrefix(re, "^") || !strings.HasSuffix(re, "$") {
			t.Errorf("%s %q is not anchored", name, re)
		}
		r := regexp.MustCompile(re)
		for _, s := range allowed {
			if !r.MatchString(s) {
				t.Errorf("%s %q refuses %q", name, re, s)
			}
		}
		for _, s := range denied {
			if r.MatchString(s) {
				t.Errorf("%s %q admits %q", name, re, s)
			}
		}
	}
	check("configure", g.Configure, own, append(foreign, "ironic_dpu", "ironic-dpu-agent_fanout", "amq.default"))
	check("write", g.Write, append(own, "amq.default", "ironic_dpu"), append(foreign, "ironic-dpu-agent_fanout", "amqXdefault", "ironic_dpuX"))
	check("read", g.Read, append(own, "ironic_dpu", "ironic-dpu-agent_fanout"), append(foreign, "amq.default"))
	check("topic write", g.TopicWrite, []string{"ironic-dpu-conductor.hello." + nodeA},
		[]string{"ironic-dpu-conductor.hello." + nodeB, "ironic-dpu-agent." + nodeB, "ironic-dpu-agent." + nodeA, "ironic-dpu-conductor.hello.#", "ironic-dpu-conductor"})
	check("topic read", g.TopicRead, []string{"ironic-dpu-agent." + nodeA},
		[]string{"ironic-dpu-agent." + nodeB, "#", "ironic-dpu-agent.*", "ironic-dpu-agent", "ironic-dpu-conductor.hello." + nodeA})
	if brokeracl.HelloRoutingKey(nodeA) != "ironic-dpu-conductor.hello."+nodeA {
		t.Fatalf("hello key %q", brokeracl.HelloRoutingKey(nodeA))
	}
}

func TestBadOptionsAreRefused(t *testing.T) {
	for name, mut := range map[string]func(*brokeracl.Options){
		"node not a uuid":  func(o *brokeracl.Options) { o.Node = "node-a" },
		"node upper case":  func(o *brokeracl.Options) { o.Node = strings.ToUpper(nodeA) },
		"node with regex":  func(o *brokeracl.Options) { o.Node = ".*" },
		"no user":          func(o *brokeracl.Options) { o.User = "" },
		"user newline":     func(o *brokeracl.Options) { o.User = "a\nrabbitmqctl delete_vhost /" },
		"no vhost":         func(o *brokeracl.Options) { o.VHost = "" },
		"builtin exchange": func(o *brokeracl.Options) { o.Exchange = "amq.topic" },
		"no topic":         func(o *brokeracl.Options) { o.Topic = "" },
		"no size":          func(o *brokeracl.Options) { o.MaxMessageBytes = 0 },
		"no connections":   func(o *brokeracl.Options) { o.MaxConnections = 0 },
	} {
		o := opts(nodeA)
		mut(&o)
		if _, err := brokeracl.Commands(o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The printed lines, run by a shell, hand rabbitmqctl exactly the intended
// arguments, whatever quotes or $ the user name and regexes hold.
func TestCommandsSurviveTheShell(t *testing.T) {
	o := opts(nodeA)
	o.User = `dpu 'a' $HOME`
	o.VHost = "/"
	lines, err := brokeracl.Commands(o)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := brokeracl.Permissions(o)
	script := "rabbitmqctl() { printf '%s\\x1f' \"$@\"; echo; }\n" + strings.Join(lines, "\n") + "\n"
	out, err := exec.Command("bash", "-euc", script).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	var got [][]string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		got = append(got, strings.Split(strings.TrimSuffix(l, "\x1f"), "\x1f"))
	}
	want := [][]string{
		{"set_permissions", "-p", "/", o.User, g.Configure, g.Write, g.Read},
		{"set_topic_permissions", "-p", "/", o.User, "ironic_dpu", g.TopicWrite, g.TopicRead},
		{"set_user_limits", o.User, `{"max-connections": 4, "max-channels": 64}`},
		{"set_policy", "-p", "/", "--apply-to", "queues", "--priority", "1", brokeracl.PolicyName, ".*", `{"max-length-bytes": 1048576, "overflow": "reject-publish"}`},
	}
	if len(got) != len(want) {
		t.Fatalf("commands:\n%q", got)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("command %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), "# WARNING: vhost / is usually Ironic's own") {
		t.Error("no warning about vhost /")
	}
}
