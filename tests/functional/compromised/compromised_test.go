//go:build functional

// Package compromised_test is the compromised-DPU suite (issue 15 item 7):
// two real agents, A and B, each with its own broker user made by
// `ironic-dpu-agent broker-acl`, on a DPU vhost of a private RabbitMQ. With
// A's credentials the test tries everything a root shell on DPU A could do
// against B and the conductor; every attempt must be refused by the broker
// or dropped by B's agent, B's state, SPDK and OVS must be untouched, and
// the conductor's own user must still drive both agents.
package compromised_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentstack"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/ovn"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/rabbitmq"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const (
	nodeA   = "a1b2c3d4-0000-4000-8000-00000000000a"
	nodeB   = "b1b2c3d4-0000-4000-8000-00000000000b"
	vhost   = "ironic-dpu"
	topic   = "ironic-dpu-agent"
	control = "ironic_dpu"
	fanoutX = topic + "_fanout"
	volB    = "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11" // B's tenant disk
	volX    = "c3e5f7a9-2b4d-4e6f-8a0c-1d3f5b7d9e01" // what A tries to attach to B
	portB   = "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01"
	// the agents' [agent] max_message_bytes; broker-acl takes the policy from it
	maxBytes = 4 << 20
)

var (
	broker *rabbitmq.Broker
	stack  *ovn.Env
	emuB   *spdktest.Emulator
	bin    string
	tmp    string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	tmp, bin, err = agentproc.BuildInTemp("compromised-functional-")
	if tmp != "" {
		defer os.RemoveAll(tmp)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := agentstack.Start(ctx, tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	broker, stack = env.Broker, env.OVN
	remote := func(vol string) spdktest.RemoteSubsystem {
		return spdktest.RemoteSubsystem{NQN: nqn(vol), Hosts: []string{hostNQN(nodeB)},
			Namespaces: []spdktest.RemoteNamespace{{NSID: 1, UUID: vol}},
			Listeners:  []spdktest.Listener{{Trtype: "TCP", Adrfam: "IPv4", Traddr: "127.0.0.1", Trsvcid: "4420"}}}
	}
	emuB = spdktest.New(spdktest.Options{Remotes: []spdktest.RemoteSubsystem{remote(volB), remote(volX)}})
	if err := emuB.Start(filepath.Join(tmp, "spdk-b.sock")); err != nil {
		fmt.Fprintln(os.Stderr, "spdk emulator:", err)
		return 1
	}
	defer func() { _ = emuB.Stop() }()
	return m.Run()
}

func nqn(vol string) string      { return "nqn.2010-10.org.openstack:volume-" + vol }
func hostNQN(node string) string { return "nqn.2014-08.org.nvmexpress:uuid:" + node }
func userOf(node string) string  { return "dpu-" + node[:8] }

func url(user string) string {
	return fmt.Sprintf("rabbit://%s:pw-%s@%s/%s", user, user, broker.Addr(), vhost)
}

func ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := broker.Ctl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// agentConf writes a DPU's config: its own user on the DPU vhost.
func agentConf(t *testing.T, node, spdkSock, ovsdb string) string {
	t.Helper()
	dir := filepath.Join(tmp, "agent-"+node)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "agent.conf")
	err := agentproc.WriteConfig(cfg, map[string]map[string]string{
		"DEFAULT":               {"transport_url": url(userOf(node)), "node_uuid": node, "state_dir": filepath.Join(dir, "state"), "reconcile_interval": "1s", "debug": "true"},
		"agent":                 {"max_message_bytes": fmt.Sprint(maxBytes)},
		"oslo_messaging_rabbit": {"rabbit_retry_interval": "0.2", "rabbit_retry_backoff": "0.2", "rabbit_interval_max": "1"},
		"dpu":                   {"driver": "sim"},
		"spdk":                  {"rpc_socket": spdkSock},
		"ovs":                   {"ovsdb_connection": ovsdb, "integration_bridge": stack.Bridge, "bind_timeout": "15s"},
		"storage":               {"host_nqn": hostNQN(node), "ctrlr_loss_timeout_sec": "30", "reconnect_delay_sec": "5", "fast_io_fail_timeout_sec": "10"},
		"spdk_nvmf":             {"transport": "TCP", "listen_address": "127.0.0.1", "listen_port": "4430"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// provision is what an operator does per DPU: add the user, then run the
// output of broker-acl (here with the agent's own config for the defaults).
func provision(t *testing.T, node, cfg string) {
	t.Helper()
	u := userOf(node)
	ctl(t, "add_user", u, "pw-"+u)
	out, err := exec.Command(bin, "broker-acl", "--config-file", cfg, "--user", u).Output()
	if err != nil {
		t.Fatalf("broker-acl: %v", err)
	}
	if !strings.Contains(string(out), "-p "+vhost+" ") {
		t.Fatalf("broker-acl did not take the vhost from the config:\n%s", out)
	}
	script := "rabbitmqctl() { \"$RMQCTL\" -q -n \"$RMQNODE\" \"$@\"; }\n" + string(out)
	sh := exec.Command("bash", "-euo", "pipefail", "-c", script)
	sh.Env = append(broker.Env(), "RMQCTL="+filepath.Join(rabbitmq.BinDir, "rabbitmqctl"), "RMQNODE="+broker.Node())
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("running broker-acl's commands: %v\n%s", err, b)
	}
}

func start(t *testing.T, cfg string) *agentproc.Proc {
	t.Helper()
	p, err := agentproc.Start(bin, cfg, filepath.Join(filepath.Dir(cfg), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("agent log %s (tail):\n%s", cfg, tail(p.Log(), 40))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// conductor is the conductor side: Python oslo.messaging with its own user.
func conductor(t *testing.T, node string) *osloclient.Client {
	t.Helper()
	c, err := osloclient.Start(url("conductor"), control, topic, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.Now().Add(40 * time.Second)
	for {
		err := c.Call(osloclient.Req{Method: "get_status", Timeout: 3}, nil)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %s never answered the conductor: %v", node, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dial(t *testing.T, user, vh string) (*amqp.Connection, error) {
	t.Helper()
	return amqp.Dial(fmt.Sprintf("amqp://%s:pw-%s@%s/%s", user, user, broker.Addr(), vh))
}

// outcome is what one attack got.
type outcome struct {
	err   error // the broker's refusal (channel or connection closed), if any
	acked bool  // a publish the broker confirmed
}

func (o outcome) String() string {
	var ae *amqp.Error
	switch {
	case errors.As(o.err, &ae):
		return fmt.Sprintf("broker: %d %s", ae.Code, firstWords(ae.Reason, 6))
	case o.err != nil:
		return "error: " + o.err.Error()
	case o.acked:
		return "broker: accepted (confirmed)"
	default:
		return "broker: accepted"
	}
}

func firstWords(s string, n int) string {
	w := strings.Fields(s)
	return strings.Join(w[:min(n, len(w))], " ")
}

func (o outcome) code() int {
	var ae *amqp.Error
	if errors.As(o.err, &ae) {
		return ae.Code
	}
	return 0
}

// attempt runs f on a fresh channel of conn and waits briefly for the
// asynchronous channel.close a refused publish gets.
func attempt(t *testing.T, conn *amqp.Connection, f func(ch *amqp.Channel) error) outcome {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	err = f(ch)
	if err == nil {
		select {
		case e := <-closed:
			if e != nil {
				return outcome{err: e}
			}
		case <-time.After(300 * time.Millisecond):
		}
		_ = ch.Close()
	}
	return outcome{err: err}
}

// publish sends with publisher confirms and reports whether it was confirmed;
// a nack (the reject-publish policy) is acked=false without an error.
func publish(t *testing.T, conn *amqp.Connection, exchange, key string, body []byte) outcome {
	t.Helper()
	var acked bool
	o := attempt(t, conn, func(ch *amqp.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return err
		}
		dc, err := ch.PublishWithDeferredConfirm(exchange, key, false, false,
			amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		acked, err = dc.WaitContext(ctx)
		return err
	})
	o.acked = acked && o.err == nil
	return o
}

// request is an oslo cast of method with args, as the conductor would send it.
func request(t *testing.T, method string, args map[string]any) []byte {
	t.Helper()
	inner := map[string]any{"method": method, "args": args, "version": "1.0", "_unique_id": fmt.Sprintf("%032x", time.Now().UnixNano()),
		"_context_request_id": "req-from-dpu-a"}
	b, err := rpcapi.EncodeEnvelope(inner)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rssMiB is a process's resident set size.
func rssMiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			var kb int
			fmt.Sscan(f[1], &kb)
			return kb >> 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

type snapshot struct {
	state json.RawMessage // B's desired state, as the conductor reads it
	ovs   string          // every Interface row on the DPU's OVS
}

func snap(t *testing.T, c *osloclient.Client) snapshot {
	t.Helper()
	var st struct {
		Desired json.RawMessage `json:"desired"`
	}
	if err := c.Call(osloclient.Req{Method: "get_state"}, &st); err != nil {
		t.Fatal(err)
	}
	out, err := stack.Vsctl(context.Background(), "--bare", "--columns=_uuid,name,external_ids", "list", "Interface")
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{state: st.Desired, ovs: out}
}

func TestCompromisedDPU(t *testing.T) {
	ctx := context.Background()
	ctl(t, "add_vhost", vhost)
	ctl(t, "add_user", "conductor", "pw-conductor")
	ctl(t, "set_permissions", "-p", vhost, "conductor", ".*", ".*", ".*")
	// Ironic's own RPC lives on / (here: a conductor queue there).
	guest, err := amqp.Dial(fmt.Sprintf("amqp://guest:guest@%s/", broker.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	if gch, err := guest.Channel(); err != nil {
		t.Fatal(err)
	} else if _, err := gch.QueueDeclare("ironic.conductor_manager", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	cfgA := agentConf(t, nodeA, filepath.Join(tmp, "no-spdk-a.sock"), "unix:"+filepath.Join(tmp, "no-ovsdb-a.sock"))
	cfgB := agentConf(t, nodeB, emuB.Socket(), stack.OVSDB)
	provision(t, nodeA, cfgA)
	provision(t, nodeB, cfgB)
	pA := start(t, cfgA)
	pB := start(t, cfgB)

	// Neither user may create the shared exchanges: the agents wait for the
	// conductor side to declare them, then serve.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, p := range []*agentproc.Proc{pA, pB} {
		if err := p.WaitLog(wctx, "may not create it"); err != nil {
			t.Fatal(err)
		}
	}
	cc, err := dial(t, "conductor", vhost)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cch, err := cc.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := cch.ExchangeDeclare(fanoutX, amqp.ExchangeFanout, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := cch.ExchangeDeclare(control, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// both agents serve the conductor with nothing but their own users' rights
	conductor(t, nodeA)
	condB := conductor(t, nodeB)
	out := ctl(t, "list_queues", "-p", vhost, "name")
	for _, q := range []string{topic + "." + nodeA, topic + "_fanout_" + nodeA, topic + "." + nodeB, topic + "_fanout_" + nodeB} {
		if !strings.Contains(out, q+"\n") {
			t.Fatalf("queue %s missing; queues:\n%s", q, out)
		}
	}

	// B's tenant: one disk and one NIC, attached by the conductor.
	if _, err := stack.Nbctl(ctx, "--may-exist", "ls-add", "net01"); err != nil {
		t.Fatal(err)
	}
	if _, err := stack.Nbctl(ctx, "--may-exist", "lsp-add", "net01", portB); err != nil {
		t.Fatal(err)
	}
	zero := 0
	stateB := map[string]any{"generation": 3, "node_uuid": nodeB,
		"volumes": []any{map[string]any{"volume_id": volB, "boot_index": zero, "connection_info": map[string]any{"driver_volume_type": "nvmeof",
			"data": map[string]any{"nqn": nqn(volB), "target_portal": "127.0.0.1", "target_port": 4420, "transport_type": "tcp", "ns_id": 1}}}},
		"vifs": []any{map[string]any{"port_id": portB, "mac": "fa:16:3e:00:00:0b", "function": map[string]any{"pf": 0, "vf": 3}}}}
	if err := condB.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": stateB}}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Observed struct {
				Volumes []struct{ State string } `json:"volumes"`
				VIFs    []struct{ State string } `json:"vifs"`
			} `json:"observed"`
		}
		_ = condB.Call(osloclient.Req{Method: "get_state"}, &st)
		o := st.Observed
		if len(o.Volumes) == 1 && o.Volumes[0].State == "attached" && len(o.VIFs) == 1 && o.VIFs[0].State != "" {
			out, _ := stack.Vsctl(ctx, "--bare", "--columns=name", "find", "Interface", "external_ids:iface-id="+portB)
			if strings.TrimSpace(out) == "pf0vf3" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("B never reconciled its tenant's disk and NIC: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // a periodic reconcile with nothing to do
	before := snap(t, condB)
	emuB.ResetCalls()
	logBefore := len(pB.Log())
	rssBefore := rssMiB(t, pB.PID())
	replyQs := slices.DeleteFunc(strings.Fields(ctl(t, "list_queues", "-p", vhost, "name")), func(q string) bool { return !strings.HasPrefix(q, "reply_") })
	if len(replyQs) == 0 {
		t.Fatal("no conductor reply queue on the DPU vhost")
	}

	// From here on: DPU A is compromised. Its agent is stopped so the attacker
	// may use all of A's broker rights (its own queues included).
	pA.Stop(syscall.SIGTERM)
	a, err := dial(t, userOf(nodeA), vhost)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	qB, fqB := topic+"."+nodeB, topic+"_fanout_"+nodeB
	qA, fqA := topic+"."+nodeA, topic+"_fanout_"+nodeA
	attach := request(t, "apply_state", map[string]any{"state": map[string]any{"generation": 99, "node_uuid": nodeB, "vifs": []any{},
		"volumes": []any{map[string]any{"volume_id": volX, "connection_info": map[string]any{"driver_volume_type": "nvmeof",
			"data": map[string]any{"nqn": nqn(volX), "target_portal": "127.0.0.1", "target_port": 4420, "transport_type": "tcp", "ns_id": 1}}}}}})
	big := bytes.Repeat([]byte{'x'}, 100<<20)

	type attack struct {
		name string
		run  func() outcome
		// want: a broker refusal code, or 0 for "accepted by the broker,
		// dropped by B's agent" (dropReason) / "nacked" (nack)
		want       int
		dropReason string
		nack       bool
	}
	refused := func(name string, f func(ch *amqp.Channel) error) attack {
		return attack{name: name, want: amqp.AccessRefused, run: func() outcome { return attempt(t, a, f) }}
	}
	attacks := []attack{
		refused("consume B's queue", func(ch *amqp.Channel) error {
			_, err := ch.Consume(qB, "", true, false, false, false, nil)
			return err
		}),
		refused("basic.get from B's queue", func(ch *amqp.Channel) error { _, _, err := ch.Get(qB, true); return err }),
		refused("purge B's queue", func(ch *amqp.Channel) error { _, err := ch.QueuePurge(qB, false); return err }),
		refused("declare B's server queue", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(qB, false, false, false, false, nil)
			return err
		}),
		refused("delete B's server queue", func(ch *amqp.Channel) error { _, err := ch.QueueDelete(qB, false, false, false); return err }),
		refused("delete B's fanout queue", func(ch *amqp.Channel) error { _, err := ch.QueueDelete(fqB, false, false, false); return err }),
		refused("bind own queue to B's routing key", func(ch *amqp.Channel) error {
			if _, err := ch.QueueDeclare(qA, false, false, false, false, nil); err != nil {
				return fmt.Errorf("own queue: %w", err)
			}
			return ch.QueueBind(qA, qB, control, false, nil)
		}),
		refused("bind own queue with '#'", func(ch *amqp.Channel) error { return ch.QueueBind(qA, "#", control, false, nil) }),
		refused("declare a spy queue (not its own name)", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("spy", false, true, true, false, nil)
			return err
		}),
		refused("delete the control exchange", func(ch *amqp.Channel) error { return ch.ExchangeDelete(control, false, false) }),
		refused("delete the fanout exchange", func(ch *amqp.Channel) error { return ch.ExchangeDelete(fanoutX, false, false) }),
		{name: "apply_state to B's key via the control exchange", want: amqp.AccessRefused, run: func() outcome { return publish(t, a, control, qB, attach) }},
		{name: "announce as B (hello key of B)", want: amqp.AccessRefused, run: func() outcome {
			return publish(t, a, control, "ironic-dpu-conductor.hello."+nodeB, []byte("{}"))
		}},
		{name: "apply_state as a fanout cast", want: amqp.AccessRefused, run: func() outcome { return publish(t, a, fanoutX, "", attach) }},
		{name: "apply_state straight into B's queue (default exchange)", dropReason: "published straight to the queue (default exchange)",
			run: func() outcome { return publish(t, a, "", qB, attach) }},
		{name: "apply_state dead-lettered into the control exchange with B's key", dropReason: "dead-lettered",
			run: func() outcome {
				o := attempt(t, a, func(ch *amqp.Channel) error {
					if _, err := ch.QueueDelete(fqA, false, false, false); err != nil {
						return err
					}
					_, err := ch.QueueDeclare(fqA, false, false, false, false, amqp.Table{"x-message-ttl": int32(0),
						"x-dead-letter-exchange": control, "x-dead-letter-routing-key": qB})
					return err
				})
				if o.err != nil {
					return o
				}
				o = publish(t, a, "", fqA, attach)
				attempt(t, a, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(fqA, false, false, false); return err })
				return o
			}},
		{name: "apply_state through its own exchange bound into the control exchange", dropReason: "published to another exchange",
			run: func() outcome {
				o := attempt(t, a, func(ch *amqp.Channel) error {
					if err := ch.ExchangeDeclare(qA, amqp.ExchangeTopic, false, true, false, false, nil); err != nil {
						return err
					}
					return ch.ExchangeBind(control, "#", qA, false, nil)
				})
				if o.err != nil {
					return o
				}
				o = publish(t, a, qA, qB, attach)
				attempt(t, a, func(ch *amqp.Channel) error { return ch.ExchangeDelete(qA, false, false) })
				return o
			}},
		{name: "publish to the conductor's topic (exchange ironic)", want: amqp.AccessRefused, run: func() outcome {
			return publish(t, a, "ironic", "ironic.conductor_manager", request(t, "do_node_tear_down", map[string]any{"node_id": nodeB}))
		}},
		{name: "open Ironic's own vhost /", want: amqp.NotAllowed, run: func() outcome {
			c, err := dial(t, userOf(nodeA), "")
			if err == nil {
				c.Close()
			}
			return outcome{err: err}
		}},
		refused("consume the conductor's reply queue", func(ch *amqp.Channel) error {
			_, err := ch.Consume(replyQs[0], "", true, false, false, false, nil)
			return err
		}),
		{name: "100 MiB into B's queue (default exchange)", nack: true, run: func() outcome { return publish(t, a, "", qB, big) }},
		{name: "100 MiB into the conductor's reply queue", nack: true, run: func() outcome { return publish(t, a, "", replyQs[0], big) }},
		{name: "more connections than its limit", want: amqp.NotAllowed, run: func() outcome {
			var conns []*amqp.Connection
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for range 8 {
				c, err := dial(t, userOf(nodeA), vhost)
				if err != nil {
					return outcome{err: err}
				}
				conns = append(conns, c)
			}
			return outcome{}
		}},
	}
	var table []string
	drops := map[string]int{}
	for _, at := range attacks {
		o := at.run()
		got := o.String()
		switch {
		case at.want != 0:
			if o.code() != at.want {
				t.Errorf("%s: %s, want AMQP %d", at.name, got, at.want)
			}
		case at.nack:
			if o.err != nil || o.acked {
				t.Errorf("%s: %s, want a nack (reject-publish policy)", at.name, got)
			}
			got = "broker: nacked (reject-publish, max-length-bytes)"
		default:
			if o.err != nil || !o.acked {
				t.Errorf("%s: %s, want accepted by the broker and dropped by B", at.name, got)
			}
			drops[at.dropReason]++
			got += "; B's agent: dropped (" + at.dropReason + ")"
		}
		table = append(table, fmt.Sprintf("| %s | %s |", at.name, got))
	}
	t.Logf("attack table:\n| attack with DPU A's credentials | outcome |\n|---|---|\n%s", strings.Join(table, "\n"))

	// The size bound is the broker's, whoever publishes: the conductor's own
	// 100 MiB request is nacked too, and B never holds such a message.
	if o := publish(t, cc, control, qB, big); o.err != nil || o.acked {
		t.Errorf("conductor's 100 MiB request to B: %s, want a nack", o)
	}
	if rss := rssMiB(t, pB.PID()); rss > rssBefore+32 {
		t.Errorf("B's RSS grew from %d to %d MiB", rssBefore, rss)
	}

	// What A may do: announce itself (issue 15 item 2) with nothing but its
	// own rights.
	hello, err := cch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cch.QueueBind(hello.Name, "ironic-dpu-conductor.hello.*", control, false, nil); err != nil {
		t.Fatal(err)
	}
	hellos, err := cch.Consume(hello.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// (rpcapi.NewClient would declare a reply_<hex> queue at once, which a
	// DPU's user may not: the announcement goes out as a plain publish.)
	if o := publish(t, a, control, "ironic-dpu-conductor.hello."+nodeA, request(t, "hello", map[string]any{"node_uuid": nodeA})); o.err != nil || !o.acked {
		t.Fatalf("A's own announcement: %s", o)
	}
	select {
	case d := <-hellos:
		if d.Exchange != control || d.RoutingKey != "ironic-dpu-conductor.hello."+nodeA {
			t.Errorf("announcement arrived via %q/%q", d.Exchange, d.RoutingKey)
		}
	case <-time.After(10 * time.Second):
		t.Error("A's announcement never reached the conductor")
	}

	// B dropped each request that reached its queue, with a log line saying why.
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for reason, n := range drops {
		for {
			if got := strings.Count(pB.Log()[logBefore:], reason); got >= n {
				if got > n {
					t.Errorf("B logged %q %d times, want %d", reason, got, n)
				}
				break
			}
			if wctx.Err() != nil {
				t.Fatalf("B never logged dropping %q:\n%s", reason, tail(pB.Log()[logBefore:], 20))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if strings.Contains(pB.Log()[logBefore:], "apply_state") {
		t.Errorf("B ran an apply_state during the attacks:\n%s", tail(pB.Log()[logBefore:], 20))
	}
	time.Sleep(1500 * time.Millisecond) // a periodic reconcile
	after := snap(t, condB)
	if !bytes.Equal(before.state, after.state) {
		t.Errorf("B's desired state changed:\nbefore %s\nafter  %s", before.state, after.state)
	}
	if before.ovs != after.ovs {
		t.Errorf("OVS rows changed:\nbefore %s\nafter  %s", before.ovs, after.ovs)
	}
	if n := emuB.MutatingCalls(); n != 0 {
		t.Errorf("B's SPDK saw %d mutating calls: %v", n, emuB.CallCounts())
	}

	// The conductor's user still drives both agents: A restarted, B as is.
	// The fanout exchange is gone by then (nobody uses it and it may be
	// auto-deleted): A, which may not create it, serves without it.
	if err := cch.ExchangeDelete(fanoutX, false, false); err != nil {
		t.Fatal(err)
	}
	logA := len(pA.Log())
	if err := pA.Start(); err != nil {
		t.Fatal(err)
	}
	condA := conductor(t, nodeA)
	if !strings.Contains(pA.Log()[logA:], "not consuming fanout casts") {
		t.Error("A restarted without the fanout exchange did not say it serves without fanout")
	}
	var applied struct{ Generation int }
	if err := condA.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": map[string]any{
		"generation": 1, "node_uuid": nodeA, "volumes": []any{}, "vifs": []any{}}}}, &applied); err != nil || applied.Generation != 1 {
		t.Fatalf("conductor -> A apply_state: %+v %v", applied, err)
	}
	if err := condB.Call(osloclient.Req{Method: "detach_volume", Args: map[string]any{"volume_id": volB}}, nil); err != nil {
		t.Fatalf("conductor -> B detach_volume: %v", err)
	}
	if emuB.MutatingCalls() == 0 {
		t.Fatal("the conductor's detach made no SPDK call on B")
	}
}
