//go:build functional

// Package stack_test is the agent's job end to end below Ironic: the real
// agent binary, driven by Python oslo.messaging over a private RabbitMQ,
// attaches volumes through the SPDK emulator and plugs VIFs into a real
// OVS/OVN stack whose ovn-controller is the DPU chassis.
package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentstack"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/ovn"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/rabbitmq"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

const (
	node    = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
	hostNQN = "nqn.2014-08.org.nvmexpress:uuid:0d5e8f2a-4b6c-4d7e-8f90-a1b2c3d4e5f6"
	volA    = "6f1c5e0a-3b7d-4c2e-9a41-2d8f7b9e0c11" // boot, old format
	volB    = "a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f" // data, new format, two portals
	volC    = "c3e5f7a9-2b4d-4e6f-8a0c-1d3f5b7d9e01" // data, old format
	port1   = "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01"
	port2   = "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02"
)

func nqn(vol string) string { return "nqn.2010-10.org.openstack:volume-" + vol }

var (
	broker *rabbitmq.Broker
	stack  *ovn.Env
	emu    *spdktest.Emulator
	bin    string
	tmp    string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	tmp, bin, err = agentproc.BuildInTemp("stack-functional-")
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
	remote := func(vol string, ports ...string) spdktest.RemoteSubsystem {
		r := spdktest.RemoteSubsystem{NQN: nqn(vol), Hosts: []string{hostNQN},
			Namespaces: []spdktest.RemoteNamespace{{NSID: 1, UUID: vol}}}
		for _, p := range ports {
			r.Listeners = append(r.Listeners, spdktest.Listener{Trtype: "TCP", Adrfam: "IPv4", Traddr: "127.0.0.1", Trsvcid: p})
		}
		return r
	}
	emu = spdktest.New(spdktest.Options{Remotes: []spdktest.RemoteSubsystem{
		remote(volA, "4420"), remote(volB, "4420", "4421"), remote(volC, "4420")}})
	if err := emu.Start(filepath.Join(tmp, "spdk.sock")); err != nil {
		fmt.Fprintln(os.Stderr, "spdk emulator:", err)
		return 1
	}
	defer func() { _ = emu.Stop() }()
	return m.Run()
}

func startAgent(t *testing.T) *agentproc.Proc {
	t.Helper()
	return startAgentWith(t, nil)
}

// startAgentWith starts the agent with over merged into its config.
func startAgentWith(t *testing.T, over map[string]map[string]string) *agentproc.Proc {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.conf")
	conf := map[string]map[string]string{
		"DEFAULT":   {"transport_url": broker.URL(), "node_uuid": node, "state_dir": filepath.Join(dir, "state"), "reconcile_interval": "1s", "debug": "true"},
		"dpu":       {"driver": "sim"},
		"spdk":      {"rpc_socket": emu.Socket()},
		"ovs":       {"ovsdb_connection": stack.OVSDB, "integration_bridge": stack.Bridge, "bind_timeout": "15s"},
		"storage":   {"host_nqn": hostNQN, "ctrlr_loss_timeout_sec": "30", "reconnect_delay_sec": "5", "fast_io_fail_timeout_sec": "10"},
		"spdk_nvmf": {"transport": "TCP", "listen_address": "127.0.0.1", "listen_port": "4430"},
	}
	for group, kv := range over {
		if conf[group] == nil {
			conf[group] = map[string]string{}
		}
		for k, v := range kv {
			conf[group][k] = v
		}
	}
	err := agentproc.WriteConfig(cfg, conf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := agentproc.Start(bin, cfg, filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("agent log (tail):\n%s", tail(p.Log(), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func pyClient(t *testing.T) *osloclient.Client {
	t.Helper()
	c, err := osloclient.Start(broker.URL(), "ironic_dpu", "ironic-dpu-agent", node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.Call(osloclient.Req{Method: "get_status", Timeout: 3}, nil); err == nil {
			return c
		} else if time.Now().After(deadline) {
			t.Fatalf("agent never answered: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func spdkCall(t *testing.T, method string, params any, out any) {
	t.Helper()
	c := spdk.NewUnix(emu.Socket(), nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Call(ctx, method, params, out); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

type subsystem struct {
	NQN        string `json:"nqn"`
	Namespaces []struct {
		NSID     int    `json:"nsid"`
		BdevName string `json:"bdev_name"`
		UUID     string `json:"uuid"`
	} `json:"namespaces"`
}

// exported maps nsid -> namespace uuid on the node's host-facing subsystems.
func exported(t *testing.T) map[int]string {
	t.Helper()
	var subs []subsystem
	spdkCall(t, "nvmf_get_subsystems", nil, &subs)
	out := map[int]string{}
	for _, s := range subs {
		if !strings.Contains(s.NQN, node) {
			continue
		}
		for _, ns := range s.Namespaces {
			out[ns.NSID] = ns.UUID
		}
	}
	return out
}

// backends maps controller subnqn -> number of paths.
func backends(t *testing.T) map[string]int {
	t.Helper()
	var ctrls []struct {
		Name   string `json:"name"`
		Ctrlrs []struct {
			Trid struct {
				Subnqn string `json:"subnqn"`
			} `json:"trid"`
		} `json:"ctrlrs"`
	}
	spdkCall(t, "bdev_nvme_get_controllers", nil, &ctrls)
	out := map[string]int{}
	for _, c := range ctrls {
		for _, p := range c.Ctrlrs {
			out[p.Trid.Subnqn]++
		}
	}
	return out
}

func oldFormat(vol string, boot *int) map[string]any {
	v := map[string]any{"volume_id": vol, "connection_info": map[string]any{"driver_volume_type": "nvmeof", "data": map[string]any{
		"nqn": nqn(vol), "target_portal": "127.0.0.1", "target_port": 4420, "transport_type": "tcp", "ns_id": 1}}}
	if boot != nil {
		v["boot_index"] = *boot
	}
	return v
}

func newFormat(vol string) map[string]any {
	return map[string]any{"volume_id": vol, "boot_index": 1, "connection_info": map[string]any{"driver_volume_type": "nvmeof", "data": map[string]any{
		"target_nqn": nqn(vol), "vol_uuid": vol, "portals": [][]any{{"127.0.0.1", 4420, "tcp"}, {"127.0.0.1", 4421, "tcp"}}}}}
}

type volStatus struct {
	VolumeID   string `json:"volume_id"`
	State      string `json:"state"`
	Controller string `json:"controller"`
	NSID       int    `json:"nsid"`
	Paths      []any  `json:"paths"`
	LastError  string `json:"last_error"`
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	poll.Until(t, d, 100*time.Millisecond, what, cond)
}

func TestStorageOverRPC(t *testing.T) {
	startAgent(t)
	c := pyClient(t)
	zero := 0

	// Boot volume (old format) -> nsid 1; two data disks, one multipath.
	for round := 0; round < 2; round++ { // every call twice
		before := emu.MutatingCalls()
		for _, v := range []map[string]any{oldFormat(volA, &zero), newFormat(volB), oldFormat(volC, nil)} {
			var st volStatus
			if err := c.Call(osloclient.Req{Method: "attach_volume", Args: map[string]any{"volume": v}}, &st); err != nil {
				t.Fatalf("round %d attach %s: %v", round, v["volume_id"], err)
			}
			if st.State != "attached" || st.Controller == "" || st.NSID == 0 {
				t.Fatalf("round %d attach %s: %+v", round, v["volume_id"], st)
			}
			if v["volume_id"] == volA && st.NSID != 1 {
				t.Fatalf("boot volume got nsid %d, want 1", st.NSID)
			}
		}
		if round == 1 && emu.MutatingCalls() != before {
			t.Fatalf("repeating the attaches made %d mutating SPDK calls", emu.MutatingCalls()-before)
		}
	}
	ns := exported(t)
	if len(ns) != 3 || ns[1] != volA {
		t.Fatalf("host namespaces %v", ns)
	}
	if b := backends(t); b[nqn(volA)] != 1 || b[nqn(volB)] != 2 || b[nqn(volC)] != 1 {
		t.Fatalf("backend paths %v (volume B must use both portals)", b)
	}

	// Bad input: typed error, no SPDK call.
	before := emu.MutatingCalls()
	bad := []map[string]any{
		{"volume_id": volC, "connection_info": map[string]any{"driver_volume_type": "nvmeof", "data": map[string]any{"nqn": "bogus", "target_portal": "127.0.0.1", "target_port": 4420}}},
		{"volume_id": volC, "connection_info": map[string]any{"driver_volume_type": "nvmeof", "data": map[string]any{"nqn": nqn(volC), "target_portal": "127.0.0.1", "target_port": 70000}}},
		{"volume_id": volC, "connection_info": map[string]any{"driver_volume_type": "nvmeof", "data": map[string]any{"nqn": nqn(volC), "target_portal": "127.0.0.1", "target_port": 4420, "transport_type": "ib"}}},
		{"volume_id": volC, "boot_index": 0, "connection_info": map[string]any{"driver_volume_type": "nvmeof", "data": map[string]any{"nqn": nqn(volC), "target_portal": "127.0.0.1", "target_port": 4420}}},
		{"volume_id": volC, "connection_info": map[string]any{"driver_volume_type": "nvmeof", "data": map[string]any{"target_portal": "127.0.0.1", "target_port": 4420}}},
	}
	for i, v := range bad {
		err := c.Call(osloclient.Req{Method: "attach_volume", Args: map[string]any{"volume": v}}, nil)
		var re *osloclient.RemoteErr
		if !errors.As(err, &re) || re.Class != "InvalidParameterValue" {
			t.Fatalf("bad input %d: %v", i, err)
		}
	}
	if emu.MutatingCalls() != before {
		t.Fatal("bad input reached SPDK")
	}

	// Hot-unplug one data disk: its namespace goes, the others stay.
	for i := 0; i < 2; i++ {
		if err := c.Call(osloclient.Req{Method: "detach_volume", Args: map[string]any{"volume_id": volC}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if ns := exported(t); len(ns) != 2 || ns[1] != volA {
		t.Fatalf("after hot-unplug: %v", ns)
	}
	if b := backends(t); b[nqn(volC)] != 0 {
		t.Fatalf("backend of the unplugged disk still attached: %v", b)
	}

	// SPDK crashes and comes back empty: the agent restores everything.
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(emu.Socket()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "volumes restored after the SPDK restart", 30*time.Second, func() bool {
		ns := exported(t)
		return len(ns) == 2 && ns[1] == volA
	})
	var view struct {
		Observed struct {
			Volumes []volStatus `json:"volumes"`
		} `json:"observed"`
	}
	waitFor(t, "observed state attached", 10*time.Second, func() bool {
		if err := c.Call(osloclient.Req{Method: "get_state"}, &view); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range view.Observed.Volumes {
			if v.State == "attached" {
				n++
			}
		}
		return n == 2
	})

	// Detach all.
	for _, v := range []string{volA, volB} {
		if err := c.Call(osloclient.Req{Method: "detach_volume", Args: map[string]any{"volume_id": v}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if ns := exported(t); len(ns) != 0 {
		t.Fatalf("namespaces left: %v", ns)
	}
	if b := backends(t); len(b) != 0 {
		t.Fatalf("backends left: %v", b)
	}
}

type vifStatus struct {
	PortID      string `json:"port_id"`
	State       string `json:"state"`
	Representor string `json:"representor"`
	OFPort      int    `json:"ofport"`
	Bound       bool   `json:"bound"`
	LastError   string `json:"last_error"`
}

func TestNetworkOverRPC(t *testing.T) {
	ctx := context.Background()
	p := startAgent(t)
	c := pyClient(t)
	for _, cmd := range [][]string{
		{"--may-exist", "ls-add", "net01"},
		{"--may-exist", "lsp-add", "net01", port1}, {"lsp-set-addresses", port1, "fa:16:3e:00:00:01 10.0.0.11"},
		{"--may-exist", "lsp-add", "net01", port2}, {"lsp-set-addresses", port2, "fa:16:3e:00:00:02 10.0.0.12"},
	} {
		if out, err := stack.Nbctl(ctx, cmd...); err != nil {
			t.Fatalf("ovn-nbctl %v: %v %s", cmd, err, out)
		}
	}
	chassis, err := stack.ChassisUUID(ctx)
	if err != nil || chassis == "" {
		t.Fatalf("chassis: %q %v", chassis, err)
	}

	var st vifStatus
	vif1 := map[string]any{"port_id": port1, "mac": "fa:16:3e:00:00:01", "function": map[string]any{"pf": 0, "vf": 3}, "mtu": 1450}
	for i := 0; i < 2; i++ {
		if err := c.Call(osloclient.Req{Method: "plug_vif", Args: map[string]any{"vif": vif1}}, &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.State != "plugged" || !st.Bound || st.Representor != "pf0vf3" || st.OFPort <= 0 {
		t.Fatalf("plug_vif: %+v", st)
	}
	if got, _ := stack.PortBindingChassis(ctx, port1); got != chassis {
		t.Fatalf("Port_Binding.chassis %q, want %q", got, chassis)
	}
	if out, _ := stack.Vsctl(ctx, "--bare", "--columns=name", "find", "Interface", "external_ids:iface-id="+port1); strings.TrimSpace(out) != "pf0vf3" {
		t.Fatalf("interfaces with iface-id %s: %q (the same plug twice must be one row)", port1, out)
	}
	if out, _ := stack.Vsctl(ctx, "get", "Interface", "pf0vf3", "external_ids:ovn-installed", "mtu_request"); !strings.Contains(out, "true") || !strings.Contains(out, "1450") {
		t.Fatalf("pf0vf3: %q", out)
	}

	// An MTU change is applied in place: same Interface row, no flap.
	uuidOf := func() string {
		out, _ := stack.Vsctl(ctx, "--bare", "--columns=_uuid", "find", "Interface", "name=pf0vf3")
		return strings.TrimSpace(out)
	}
	was := uuidOf()
	vif1["mtu"] = 9000
	if err := c.Call(osloclient.Req{Method: "plug_vif", Args: map[string]any{"vif": vif1}}, &st); err != nil {
		t.Fatal(err)
	}
	if now := uuidOf(); now != was || !st.Bound {
		t.Fatalf("MTU change replaced the interface (%s -> %s) or unbound it: %+v", was, now, st)
	}
	if out, _ := stack.Vsctl(ctx, "get", "Interface", "pf0vf3", "mtu_request"); strings.TrimSpace(out) != "9000" {
		t.Fatalf("mtu_request %q", out)
	}

	// Hot-plug a second NIC with no function: the agent allocates an SF.
	if err := c.Call(osloclient.Req{Method: "plug_vif", Args: map[string]any{"vif": map[string]any{"port_id": port2, "mac": "fa:16:3e:00:00:02"}}}, &st); err != nil {
		t.Fatal(err)
	}
	if st.Representor != "pf0sf1" || !st.Bound {
		t.Fatalf("SF plug: %+v", st)
	}

	// Restart the agent with nothing changed: no row is touched.
	rows := func() string {
		out, err := stack.Vsctl(ctx, "--bare", "--columns=_uuid,name", "list", "Interface")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := rows()
	p.Stop(syscall.SIGTERM)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	c2 := pyClient(t)
	time.Sleep(2 * time.Second) // let the start and a periodic reconcile run
	if after := rows(); after != before {
		t.Fatalf("agent restart touched OVSDB rows:\nbefore %s\nafter  %s", before, after)
	}

	// Unplug: the row goes, the binding is released, the other NIC stays.
	for i := 0; i < 2; i++ {
		if err := c2.Call(osloclient.Req{Method: "unplug_vif", Args: map[string]any{"port_id": port2}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "port2 released", 10*time.Second, func() bool {
		got, _ := stack.PortBindingChassis(ctx, port2)
		return got == ""
	})
	if out, _ := stack.Vsctl(ctx, "--bare", "--columns=name", "list", "Interface"); strings.Contains(out, "pf0sf1") || !strings.Contains(out, "pf0vf3") {
		t.Fatalf("interfaces after unplug: %q", out)
	}

	// Bad input never reaches OVSDB.
	before = rows()
	for _, v := range []map[string]any{
		{"port_id": port2, "mac": "fa:16:3e:00:00"},
		{"port_id": "not-a-uuid", "mac": "fa:16:3e:00:00:02"},
		{"port_id": port2, "mac": "fa:16:3e:00:00:02", "function": map[string]any{"pf": 0, "vf": -1}},
		{"port_id": port2, "mac": "fa:16:3e:00:00:02", "function": map[string]any{"pf": 0, "sf": 1 << 30}},
		{"port_id": port2, "mac": "fa:16:3e:00:00:02", "function": map[string]any{"pf": 7, "vf": 1}},
	} {
		err := c2.Call(osloclient.Req{Method: "plug_vif", Args: map[string]any{"vif": v}}, nil)
		var re *osloclient.RemoteErr
		if !errors.As(err, &re) || re.Class != "InvalidParameterValue" {
			b, _ := json.Marshal(v)
			t.Fatalf("bad vif %s: %v", b, err)
		}
	}
	if rows() != before {
		t.Fatal("bad input changed OVSDB")
	}
	if err := c2.Call(osloclient.Req{Method: "unplug_vif", Args: map[string]any{"port_id": port1}}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "port1 released", 10*time.Second, func() bool {
		got, _ := stack.PortBindingChassis(ctx, port1)
		return got == ""
	})
}
