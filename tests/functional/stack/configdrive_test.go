//go:build functional

package stack_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
)

type rateLimits struct {
	RwIOs uint64 `json:"rw_ios_per_sec"`
	RwMB  uint64 `json:"rw_mbytes_per_sec"`
	RMB   uint64 `json:"r_mbytes_per_sec"`
	WMB   uint64 `json:"w_mbytes_per_sec"`
}

// exposedBdevs maps nsid -> bdev name on the node's pf0.
func exposedBdevs(t *testing.T) map[int]string {
	t.Helper()
	var subs []subsystem
	spdkCall(t, "nvmf_get_subsystems", nil, &subs)
	out := map[int]string{}
	for _, s := range subs {
		if strings.Contains(s.NQN, node) && strings.HasSuffix(s.NQN, ":pf0") {
			for _, ns := range s.Namespaces {
				out[ns.NSID] = ns.BdevName
			}
		}
	}
	return out
}

func assignedLimits(t *testing.T, bdev string) rateLimits {
	t.Helper()
	var bs []struct {
		Limits rateLimits `json:"assigned_rate_limits"`
	}
	spdkCall(t, "bdev_get_bdevs", map[string]any{"name": bdev}, &bs)
	return bs[0].Limits
}

type cdView struct {
	Generation int64 `json:"generation"`
	Desired    struct {
		Generation int64 `json:"generation"`
	} `json:"desired"`
	Observed struct {
		Volumes []struct {
			VolumeID  string      `json:"volume_id"`
			NSID      int         `json:"nsid"`
			SizeBytes int64       `json:"size_bytes"`
			QoS       *rateLimits `json:"qos"`
		} `json:"volumes"`
		ConfigDrive *struct {
			SHA256 string `json:"sha256"`
			State  string `json:"state"`
			NSID   int    `json:"nsid"`
		} `json:"config_drive"`
	} `json:"observed"`
}

// The conductor's deploy: a boot disk, a data disk (Nova's boot_index -1)
// with front-end QoS, and the config drive, in one apply_state to the real
// agent over oslo.messaging; then SPDK crashes and the agent puts all of it
// back; then undeploy removes it.
func TestConfigDriveDataDiskQoSOverRPC(t *testing.T) {
	p := startAgent(t)
	c := pyClient(t)
	img := make([]byte, 70000)
	copy(img[32769:], "CD001")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(img)
	_ = zw.Close()
	sum := sha256.Sum256(img)
	sha := hex.EncodeToString(sum[:])
	zero, minus := 0, -1
	dataDisk := oldFormat(volC, &minus)
	dataDisk["connection_info"].(map[string]any)["data"].(map[string]any)["qos_specs"] = map[string]any{
		"total_iops_sec": "1500", "total_bytes_sec": "104857600", "read_iops_sec": "0"}
	apply := func(gen int, vols []any, cd any) error {
		st := map[string]any{"generation": gen, "node_uuid": node, "volumes": vols, "vifs": []any{}}
		if cd != nil {
			st["config_drive"] = cd
		}
		return c.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": st}}, nil)
	}
	cd := map[string]any{"sha256": sha, "data": base64.StdEncoding.EncodeToString(gz.Bytes())}
	if err := apply(1, []any{oldFormat(volA, &zero), dataDisk}, cd); err != nil {
		t.Fatal(err)
	}
	cdBdev := "idpu-cfgdrive-" + sha[:16]
	want := map[int]string{1: "idpu-" + volA + "n1", 2: "idpu-" + volC + "n1", 3: cdBdev}
	deployed := func() bool {
		got := exposedBdevs(t)
		return len(got) == 3 && got[1] == want[1] && got[2] == want[2] && got[3] == want[3]
	}
	waitFor(t, "boot disk, data disk and config drive on pf0", 15*time.Second, deployed)
	qos := rateLimits{RwIOs: 2000, RwMB: 100}
	if got := assignedLimits(t, want[2]); got != qos {
		t.Fatalf("qos on the data disk %+v, want %+v", got, qos)
	}
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(p.ConfigFile), "state", "desired.json"))
	if err != nil || !strings.Contains(string(raw), sha) || strings.Contains(string(raw), cd["data"].(string)[:40]) {
		t.Fatalf("persisted state must name the image by sha256 only: %v\n%s", err, raw)
	}
	var v cdView
	if err := c.Call(osloclient.Req{Method: "get_state"}, &v); err != nil {
		t.Fatal(err)
	}
	if v.Observed.ConfigDrive == nil || v.Observed.ConfigDrive.State != "attached" || v.Observed.ConfigDrive.NSID != 3 {
		t.Fatalf("observed config drive %+v", v.Observed.ConfigDrive)
	}
	for _, vol := range v.Observed.Volumes {
		if vol.VolumeID == volC && (vol.SizeBytes != 131072*512 || vol.QoS == nil || *vol.QoS != qos) {
			t.Fatalf("observed data disk %+v", vol)
		}
	}

	// A config drive that does not match its sha256 is refused; nothing changes.
	before := emu.MutatingCalls()
	bad := map[string]any{"sha256": strings.Repeat("0", 64), "data": cd["data"]}
	err = apply(2, []any{oldFormat(volA, &zero)}, bad)
	var re *osloclient.RemoteErr
	if !errors.As(err, &re) || re.Class != "InvalidParameterValue" || emu.MutatingCalls() != before {
		t.Fatalf("bad config drive: %v (%d mutating calls)", err, emu.MutatingCalls()-before)
	}

	// SPDK crashes and comes back empty: the same layout and limits return.
	if err := emu.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := emu.Start(emu.Socket()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "layout restored after the SPDK restart", 30*time.Second, deployed)
	waitFor(t, "qos restored", 10*time.Second, func() bool { return assignedLimits(t, want[2]) == qos })

	// Undeploy.
	if err := apply(3, []any{}, nil); err != nil {
		t.Fatal(err)
	}
	// The reconcile detaches the controllers before it deletes the config
	// drive's AIO bdev: wait for all of it, not for the first part.
	waitFor(t, "everything removed", 15*time.Second, func() bool {
		return len(exposedBdevs(t)) == 0 && len(backends(t)) == 0 && len(agentBdevs(t)) == 0
	})
}

// agentBdevs lists the bdevs the agent made (idpu-*) that SPDK still has.
func agentBdevs(t *testing.T) []string {
	t.Helper()
	var bs []struct {
		Name string `json:"name"`
	}
	spdkCall(t, "bdev_get_bdevs", nil, &bs)
	var out []string
	for _, b := range bs {
		if strings.HasPrefix(b.Name, "idpu-") {
			out = append(out, b.Name)
		}
	}
	return out
}

// Agent RPC API 1.2 next to a conductor before it, on the real agent over
// oslo.messaging with its default [agent] max_message_bytes (1 MiB):
//   - 1.2: apply_state names the config drive by {sha256, size, url}; the
//     agent fetches it (gzip) over HTTP, the request stays a few hundred
//     bytes, and neither the log nor get_state shows the URL's secret;
//   - an older conductor's inline drive that fits is still taken (see
//     TestConfigDriveDataDiskQoSOverRPC); one over 1 MiB is refused at once
//     with InvalidParameterValue saying which option to raise for the
//     upgrade window, and admitted once it is raised.
func TestConfigDriveByURLAndAnOlderConductorsInlineDrive(t *testing.T) {
	const secret = "c2VjcmV0LXJhbmRvbS10b2tlbi1vZi10aGUtY29uZHVjdG9y"
	img := make([]byte, 300000)
	copy(img[32769:], "CD001")
	for i := 40000; i < len(img); i++ {
		img[i] = byte(i * 7)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(img)
	_ = zw.Close()
	sum := sha256.Sum256(img)
	sha := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/dpu-configdrive/"+node+"-"+secret+".gz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(gz.Bytes())
	}))
	defer srv.Close()

	p := startAgent(t)
	c := pyClient(t)
	apply := func(version string, gen int, cd map[string]any) error {
		st := map[string]any{"generation": gen, "node_uuid": node, "volumes": []any{}, "vifs": []any{}}
		args := map[string]any{"state": st}
		if cd != nil {
			st["config_drive"] = cd
		}
		if version != "1.0" {
			args["wait"] = 10
		}
		return c.Call(osloclient.Req{Method: "apply_state", Version: version, Args: args}, nil)
	}
	url := srv.URL + "/dpu-configdrive/" + node + "-" + secret + ".gz"
	if err := apply("1.2", 1, map[string]any{"sha256": sha, "size": len(img), "url": url}); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Desired struct {
			ConfigDrive map[string]any `json:"config_drive"`
		} `json:"desired"`
		Observed struct {
			ConfigDrive *struct {
				SHA256 string `json:"sha256"`
				State  string `json:"state"`
			} `json:"config_drive"`
		} `json:"observed"`
	}
	waitFor(t, "config drive fetched and attached", 15*time.Second, func() bool {
		_ = c.Call(osloclient.Req{Method: "get_state"}, &v)
		return v.Observed.ConfigDrive != nil && v.Observed.ConfigDrive.State == "attached" && v.Observed.ConfigDrive.SHA256 == sha
	})
	if got := v.Desired.ConfigDrive["url"]; got != srv.URL+"/..." {
		t.Fatalf("get_state shows the config drive URL as %v, want %s/...", got, srv.URL)
	}
	log := p.Log()
	if strings.Contains(log, secret) {
		t.Fatalf("the URL's secret is in the agent's log")
	}
	var reqBytes int
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"msg":"rpc method done"`) && strings.Contains(line, `"method":"apply_state"`) {
			var e struct {
				Bytes int `json:"bytes"`
			}
			if err := json.Unmarshal([]byte(line), &e); err == nil {
				reqBytes = max(reqBytes, e.Bytes)
			}
		}
	}
	if reqBytes == 0 || reqBytes > 2048 {
		t.Fatalf("apply_state of a %d-byte config drive by URL was %d bytes on the wire", gz.Len(), reqBytes)
	}

	// A conductor before 1.2 sends the drive inline: 1.3 MB of base64 is
	// over the 1 MiB default, refused before parsing with the way out.
	big := make([]byte, 1<<20)
	copy(big[32769:], "CD001")
	for i := 40000; i < len(big); i++ {
		big[i] = byte(i*131 + i>>8)
	}
	bsum := sha256.Sum256(big)
	inline := map[string]any{"sha256": hex.EncodeToString(bsum[:]), "data": base64.StdEncoding.EncodeToString(big)}
	err := apply("1.1", 2, inline)
	var re *osloclient.RemoteErr
	if !errors.As(err, &re) || re.Class != "InvalidParameterValue" ||
		!strings.Contains(re.Message, "[agent] max_message_bytes") || !strings.Contains(re.Message, "RPC API 1.2") {
		t.Fatalf("oversize inline drive: %v", err)
	}
	if err := c.Call(osloclient.Req{Method: "get_state"}, &v); err != nil || v.Observed.ConfigDrive == nil || v.Observed.ConfigDrive.SHA256 != sha {
		t.Fatalf("state changed by the refused call: %+v %v", v, err)
	}
	if err := apply("1.0", 3, nil); err != nil { // remove it: the next agent starts from an empty SPDK
		t.Fatal(err)
	}
	waitFor(t, "config drive removed", 15*time.Second, func() bool { return len(exposedBdevs(t)) == 0 && len(agentBdevs(t)) == 0 })
	p.Stop(syscall.SIGTERM)

	// The upgrade window: max_message_bytes raised on the agent.
	startAgentWith(t, map[string]map[string]string{"agent": {"max_message_bytes": "90527064"}})
	c = pyClient(t)
	if err := apply("1.1", 2, inline); err != nil {
		t.Fatalf("inline drive with max_message_bytes raised: %v", err)
	}
	waitFor(t, "inline drive attached", 15*time.Second, func() bool {
		_ = c.Call(osloclient.Req{Method: "get_state"}, &v)
		return v.Observed.ConfigDrive != nil && v.Observed.ConfigDrive.State == "attached" && v.Observed.ConfigDrive.SHA256 == inline["sha256"]
	})
	if err := apply("1.0", 3, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "config drive removed", 15*time.Second, func() bool { return len(exposedBdevs(t)) == 0 && len(agentBdevs(t)) == 0 })
}
