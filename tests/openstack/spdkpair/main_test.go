package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

func TestTranslateRenamesCinderSize(t *testing.T) {
	out, err := translate([]byte(`{"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create","params":{"lvol_name":"volume-1","uuid":"u","size":1073741825}}`))
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		Params map[string]any `json:"params"`
	}
	if err := json.Unmarshal(out, &req); err != nil {
		t.Fatal(err)
	}
	if _, ok := req.Params["size"]; ok || req.Params["size_in_mib"] != float64(1025) || req.Params["lvol_name"] != "volume-1" {
		t.Fatalf("translated params %v", req.Params)
	}
	// Other methods and calls already in v24.09 form pass unchanged.
	for _, in := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"bdev_get_bdevs","params":{"size":5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"bdev_lvol_resize","params":{"name":"x","size_in_mib":5}}`,
	} {
		out, err := translate([]byte(in))
		if err != nil || string(out) != in {
			t.Fatalf("translate(%s) = %s, %v", in, out, err)
		}
	}
}

// TestProxyAgainstEmulator: basic auth is enforced, and Cinder's old-style
// create reaches a strict v24.09 emulator as size_in_mib and succeeds.
func TestProxyAgainstEmulator(t *testing.T) {
	e := spdktest.New(spdktest.Options{})
	sock := filepath.Join(t.TempDir(), "t.sock")
	if err := e.Start(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	var log bytes.Buffer
	srv := httptest.NewServer(&proxy{sock: sock, user: "spdk", pass: "pw", log: &callLog{out: json.NewEncoder(&log)}})
	t.Cleanup(srv.Close)

	post := func(user, pass, body string) (int, map[string]json.RawMessage) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewBufferString(body))
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, _ := post("spdk", "wrong", `{"jsonrpc":"2.0","id":1,"method":"spdk_get_version"}`); code != http.StatusUnauthorized {
		t.Fatalf("bad password: HTTP %d", code)
	}
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"bdev_malloc_create","params":{"name":"Malloc0","num_blocks":262144,"block_size":4096}}`,
		`{"jsonrpc":"2.0","id":2,"method":"bdev_lvol_create_lvstore","params":{"bdev_name":"Malloc0","lvs_name":"lvs0"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"bdev_lvol_create","params":{"lvol_name":"volume-1","lvs_name":"lvs0","size":104857600}}`,
	} {
		code, m := post("spdk", "pw", body)
		if code != http.StatusOK || m["error"] != nil || m["result"] == nil {
			t.Fatalf("%s: HTTP %d %v", body, code, m)
		}
	}
	code, m := post("spdk", "pw", `{"jsonrpc":"2.0","id":4,"method":"bdev_get_bdevs","params":{"name":"lvs0/volume-1"}}`)
	var bdevs []struct {
		NumBlocks int64 `json:"num_blocks"`
	}
	if code != http.StatusOK || json.Unmarshal(m["result"], &bdevs) != nil || len(bdevs) != 1 || bdevs[0].NumBlocks != 25*1024 {
		t.Fatalf("lvol after create: HTTP %d %s", code, m["result"])
	}
	if !bytes.Contains(log.Bytes(), []byte(`"size_in_mib":100`)) {
		t.Fatalf("call log lacks the translated request:\n%s", log.String())
	}
}

// TestRelayLogsTheDPUsCalls: calls through a DPU's relay reach its
// emulator; those that change something are logged with the DPU's name,
// reads are not; stop ends open connections.
func TestRelayLogsTheDPUsCalls(t *testing.T) {
	dir := t.TempDir()
	e := spdktest.New(spdktest.Options{})
	if err := e.Start(filepath.Join(dir, "dpu2.sock.spdk")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	var buf bytes.Buffer
	r, err := startRelay(filepath.Join(dir, "dpu2.sock"), filepath.Join(dir, "dpu2.sock.spdk"), "dpu2.sock",
		&callLog{out: json.NewEncoder(&buf)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", filepath.Join(dir, "dpu2.sock"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(c)
	for i, req := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"bdev_malloc_create","params":{"name":"m0","num_blocks":8,"block_size":512}}`,
		`{"jsonrpc":"2.0","id":2,"method":"bdev_get_bdevs","params":{"name":"m0"}}`,
	} {
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		var resp struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := dec.Decode(&resp); err != nil || resp.Error != nil {
			t.Fatalf("call %d: %v %s", i, err, resp.Error)
		}
	}
	r.stop() // with c still open
	if e.Calls("bdev_malloc_create") != 1 || e.Calls("bdev_get_bdevs") != 1 {
		t.Fatalf("emulator saw %v", e.CallCounts())
	}
	var lines []map[string]json.RawMessage
	d := json.NewDecoder(&buf)
	for d.More() {
		var l map[string]json.RawMessage
		if err := d.Decode(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 || string(lines[0]["dpu"]) != `"dpu2.sock"` || lines[0]["req"] == nil ||
		lines[1]["resp"] == nil || lines[0]["t"] == nil || bytes.Contains(buf.Bytes(), []byte("bdev_get_bdevs")) {
		t.Fatalf("log:\n%s", buf.String())
	}
}
