//go:build functional

package stack_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

// A hung SPDK stalls neither apply_state nor a NIC hot-plug: storage and
// network reconcile in their own loops, and plug_vif waits for the network
// one only. (Before, one lock and a synchronous full reconcile made both
// wait rpc_timeout for SPDK.) SPDK's calls, and the plug's own waits, outlast
// the hang watchdog: answering at all proves no wait for SPDK.
func TestHungSPDKDelaysNeitherApplyStateNorPlugVIF(t *testing.T) {
	ctx := context.Background()
	p := startAgentWith(t, map[string]map[string]string{
		"spdk":    {"rpc_socket": spdktest.HungT(t), "rpc_timeout": "10m"},
		"DEFAULT": {"reconcile_interval": "60s", "item_wait": "10m"},
		"ovs":     {"bind_timeout": "10m"},
	})
	c := pyClient(t)
	for _, cmd := range [][]string{
		{"--may-exist", "ls-add", "net-hung"},
		{"--may-exist", "lsp-add", "net-hung", port1}, {"lsp-set-addresses", port1, "fa:16:3e:00:00:01 10.0.0.11"},
	} {
		if out, err := stack.Nbctl(ctx, cmd...); err != nil {
			t.Fatalf("ovn-nbctl %v: %v %s", cmd, err, out)
		}
	}
	t.Cleanup(func() { _, _ = stack.Nbctl(context.Background(), "--if-exists", "ls-del", "net-hung") })

	// A boot volume: the storage loop is now stuck in SPDK for a minute.
	zero := 0
	var applied struct {
		Generation int `json:"generation"`
		Observed   struct {
			Generation int `json:"generation"`
		} `json:"observed"`
	}
	var err error
	poll.Returns(t, "apply_state", func() {
		err = c.Call(osloclient.Req{Method: "apply_state", Timeout: 600, Args: map[string]any{"state": map[string]any{
			"generation": 3, "node_uuid": node, "volumes": []any{oldFormat(volA, &zero)}, "vifs": []any{}}}}, &applied)
	})
	if err != nil || applied.Generation != 3 {
		t.Fatalf("apply_state: %+v %v", applied, err)
	}
	time.Sleep(500 * time.Millisecond) // let the storage loop enter its hung call

	var st vifStatus
	vif := map[string]any{"port_id": port1, "mac": "fa:16:3e:00:00:01", "function": map[string]any{"pf": 0, "vf": 4}}
	poll.Returns(t, "plug_vif", func() {
		err = c.Call(osloclient.Req{Method: "plug_vif", Timeout: 600, Args: map[string]any{"vif": vif}}, &st)
	})
	if err != nil {
		t.Fatalf("plug_vif with SPDK hung: %v", err)
	}
	if st.State != "plugged" || !st.Bound || st.Representor != "pf0vf4" {
		t.Fatalf("plug_vif: %+v", st)
	}

	// The storage loop has not completed: observed.generation stays behind.
	var view struct {
		Observed struct {
			Generation int `json:"generation"`
			Components map[string]struct {
				Generation int `json:"generation"`
			} `json:"components"`
		} `json:"observed"`
	}
	if err := c.Call(osloclient.Req{Method: "get_state"}, &view); err != nil {
		t.Fatal(err)
	}
	if view.Observed.Components["network"].Generation != 4 || view.Observed.Components["storage"].Generation != 0 || view.Observed.Generation != 0 {
		t.Fatalf("observed with SPDK hung: %+v", view.Observed)
	}
	// The operator CLI's wait (the default) for an unplug judges the network
	// only: done while SPDK still hangs.
	cctx, cancel := context.WithCancel(ctx)
	defer cancel() // a hung CLI does not outlive the test
	var out []byte
	poll.Returns(t, "unplug --wait", func() {
		out, err = exec.CommandContext(cctx, bin, "unplug", "--config-file", p.ConfigFile, "--wait-timeout", "10m", port1).CombinedOutput()
	})
	if err != nil {
		t.Fatalf("unplug --wait with SPDK hung: %v\n%s", err, out)
	}
	if out, _ := stack.Vsctl(ctx, "--bare", "--columns=name", "find", "Interface", "external_ids:iface-id="+port1); strings.TrimSpace(out) != "" {
		t.Fatalf("pf0vf4 still on br-int after the CLI's unplug: %q", out)
	}
}

// A failed reconcile is retried with backoff by the agent itself: no RPC,
// no health recovery, no period (both an hour, beyond every wait here).
// The Cinder target of a volume is missing at first; once it appears, the
// retries attach the volume.
func TestFailedAttachIsRetriedWithoutTrigger(t *testing.T) {
	const volD = "d4f6a8b0-3c5e-4f70-9b1d-2e4f6a8c0e12"
	startAgentWith(t, map[string]map[string]string{
		"DEFAULT": {"reconcile_interval": "1h", "health_interval": "1h", "retry_base": "200ms"},
	})
	c := pyClient(t)
	t.Cleanup(func() { emu.RemoveRemote(nqn(volD)) })
	attaches := func() int { return emu.Calls("bdev_nvme_attach_controller") }
	before := attaches()
	if err := c.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": map[string]any{
		"generation": 1, "node_uuid": node, "volumes": []any{oldFormat(volD, nil)}, "vifs": []any{}}}}, nil); err != nil {
		t.Fatal(err)
	}
	var view struct {
		Observed struct {
			Generation int         `json:"generation"`
			Volumes    []volStatus `json:"volumes"`
		} `json:"observed"`
	}
	state := func() string {
		if err := c.Call(osloclient.Req{Method: "get_state"}, &view); err != nil {
			t.Fatal(err)
		}
		if len(view.Observed.Volumes) != 1 {
			return ""
		}
		return view.Observed.Volumes[0].State
	}
	waitFor(t, "the attach to fail", time.Minute, func() bool { return state() == "error" })
	waitFor(t, "retries without any trigger", time.Minute, func() bool { return attaches()-before >= 3 })
	emu.AddRemote(spdktest.RemoteSubsystem{NQN: nqn(volD), Hosts: []string{hostNQN},
		Namespaces: []spdktest.RemoteNamespace{{NSID: 1, UUID: volD}},
		Listeners:  []spdktest.Listener{{Trtype: "TCP", Adrfam: "IPv4", Traddr: "127.0.0.1", Trsvcid: "4420"}}})
	// A few doublings of 200ms are seconds; the watchdog is far shorter
	// than the period, so only a retry can attach it.
	waitFor(t, "the retried attach to succeed", time.Minute, func() bool { return state() == "attached" })
	if err := c.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": map[string]any{
		"generation": 2, "node_uuid": node, "volumes": []any{}, "vifs": []any{}}}}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the volume detached", time.Minute, func() bool { return len(exported(t)) == 0 })
}
