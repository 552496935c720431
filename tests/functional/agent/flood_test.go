//go:build functional

package agent_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

func vifs(n int, fn map[string]any) []any {
	out := make([]any, n)
	for i := range out {
		v := map[string]any{"port_id": fmt.Sprintf("0b9d1c5e-8d0e-4a34-9d0a-%012x", i),
			"mac": fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)}
		if fn != nil {
			v["function"] = fn
		}
		out[i] = v
	}
	return out
}

// A flood (20,000 VIFs) and VIFs the card or the network cannot have are
// refused with InvalidParameterValue by the real agent before anything is
// persisted or plugged; MACs are stored lower-case.
func TestFloodsAndBadInputChangeNothing(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	startAgent(t, stateDir)
	c := client(t)
	waitServing(t, c)

	good := map[string]any{"port_id": "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a01", "mac": "FA:16:3E:0A:BB:01", "function": map[string]any{"pf": 1, "vf": 3}}
	// Admitted at once (the reconcile, with OVSDB down, goes on in the background).
	if err := c.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{
		"state": map[string]any{"generation": 1, "volumes": []any{}, "vifs": []any{good}}}}, nil); err != nil {
		t.Fatalf("good state: %v", err)
	}
	stored, err := os.ReadFile(filepath.Join(stateDir, state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(stored, []byte(`"fa:16:3e:0a:bb:01"`)) {
		t.Fatalf("mac not stored lower-case: %s", stored)
	}

	bad := map[string]map[string]any{
		"5000 vifs":    {"generation": 2, "volumes": []any{}, "vifs": vifs(5000, nil)}, // ~450 KB: under the 1 MiB max_message_bytes
		"65 vifs":      {"generation": 2, "volumes": []any{}, "vifs": vifs(65, nil)},
		"pf 5":         {"generation": 2, "volumes": []any{}, "vifs": vifs(1, map[string]any{"pf": 5, "vf": 0})},
		"vf 127":       {"generation": 2, "volumes": []any{}, "vifs": vifs(1, map[string]any{"pf": 0, "vf": 127})},
		"zero mac":     {"generation": 2, "volumes": []any{}, "vifs": []any{map[string]any{"port_id": "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02", "mac": "00:00:00:00:00:00"}}},
		"multicast":    {"generation": 2, "volumes": []any{}, "vifs": []any{map[string]any{"port_id": "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02", "mac": "01:00:5e:00:00:01"}}},
		"broadcast":    {"generation": 2, "volumes": []any{}, "vifs": []any{map[string]any{"port_id": "0b9d1c5e-8d0e-4a34-9d0a-4c7d1c2f0a02", "mac": "ff:ff:ff:ff:ff:ff"}}},
		"volume on pf": {"generation": 2, "vifs": []any{}, "volumes": []any{map[string]any{"volume_id": "a2d4c6e8-1f3b-4d5a-8c7e-9b0a1c2d3e4f", "function": map[string]any{"pf": 5}, "connection_info": map[string]any{"driver_volume_type": "nvmeof", "data": map[string]any{"target_nqn": "nqn.2010-10.org.openstack:v", "portals": []any{[]any{"127.0.0.1", 4420, "tcp"}}}}}}},
	}
	for name, st := range bad {
		// A refusal, not a MessagingTimeout: the agent answered.
		re := remoteErr(t, c.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": st}, Timeout: 30}, nil))
		if re.Class != "InvalidParameterValue" || re.Module != "ironic.common.exception" {
			t.Errorf("%s: %+v", name, re)
		}
		if name == "5000 vifs" && !strings.Contains(re.Message, "max_vifs") {
			t.Errorf("5000 vifs: message does not name the limit: %s", re.Message)
		}
	}
	re := remoteErr(t, c.Call(osloclient.Req{Method: "plug_vif", Args: map[string]any{"vif": vifs(1, map[string]any{"pf": 5, "vf": 0})[0]}}, nil))
	if re.Class != "InvalidParameterValue" {
		t.Errorf("plug_vif on pf 5: %+v", re)
	}
	var view struct {
		Desired nodestate.Desired `json:"desired"`
	}
	if err := c.Call(osloclient.Req{Method: "get_state"}, &view); err != nil {
		t.Fatal(err)
	}
	if view.Desired.Generation != 1 || len(view.Desired.VIFs) != 1 || view.Desired.VIFs[0].MAC != "fa:16:3e:0a:bb:01" {
		t.Fatalf("refused input changed the state: %+v", view.Desired)
	}
	after, err := os.ReadFile(filepath.Join(stateDir, state.FileName))
	if err != nil || !bytes.Equal(after, stored) {
		t.Fatalf("refused input changed the persisted state (%v):\n%s", err, after)
	}
	// every refusal above was timed by the RPC latency histogram
	resp, err := http.Get("http://" + healthAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`ironic_dpu_agent_rpc_duration_seconds_count{method="apply_state",outcome="error"} %d`, len(bad)),
		`ironic_dpu_agent_rpc_duration_seconds_count{method="apply_state",outcome="ok"} 1`,
	} {
		if !strings.Contains(string(m), want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, m)
		}
	}
}
