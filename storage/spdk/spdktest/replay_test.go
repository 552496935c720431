package spdktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// step is one line of a transcript (testdata/*.jsonl, copied verbatim from
// /work/shared/spdk-transcripts/v24.09).
type step struct {
	Step       string            `json:"step"`
	Request    json.RawMessage   `json:"request"`
	Response   json.RawMessage   `json:"response"`
	RequestRaw *string           `json:"request_raw"`
	ResponseRw *string           `json:"response_raw"`
	Closed     *bool             `json:"connection_closed_by_spdk"`
	Responses  []json.RawMessage `json:"responses"`
}

func loadSteps(t *testing.T, name string) []step {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []step
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var s step
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, s)
	}
	return out
}

// normalise applies the README's rules: the run-dependent cntlid values and
// the random uuids of AIO bdevs are blanked.
func normalise(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	var walk func(any)
	walk = func(x any) {
		switch y := x.(type) {
		case map[string]any:
			if _, ok := y["cntlid"]; ok {
				y["cntlid"] = "<cntlid>"
			}
			if y["product_name"] == "AIO disk" {
				y["uuid"], y["aliases"] = "<uuid>", "<uuid>"
			}
			// pf0 derives a namespace's nguid/uuid from the AIO bdev's
			// random uuid (c-configdrive.jsonl).
			if n, _ := y["bdev_name"].(string); strings.HasPrefix(n, "cfgdrive") {
				y["uuid"], y["nguid"] = "<uuid>", "<nguid>"
			}
			// lvstore and lvol uuids are random (c-resize.jsonl).
			if y["product_name"] == "Logical Volume" {
				y["uuid"], y["name"] = "<uuid>", "<uuid>"
			}
			for _, k := range []string{"lvol_store_uuid", "base_bdev_uuid"} {
				if _, ok := y[k]; ok {
					y[k] = "<uuid>"
				}
			}
			if _, ok := y["cluster_size"]; ok {
				y["uuid"] = "<uuid>"
			}
			for _, z := range y {
				walk(z)
			}
		case []any:
			for _, z := range y {
				walk(z)
			}
		}
	}
	walk(v)
	// Creating an lvstore or lvol answers with its random uuid.
	if m, ok := v.(map[string]any); ok {
		if r, ok := m["result"].(string); ok && uuidText.MatchString(r) {
			m["result"] = "<uuid>"
		}
	}
	return v
}

var uuidText = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

type replayer struct {
	t      *testing.T
	sock   string
	tmpdir string
}

func (r *replayer) dial() net.Conn {
	c, err := net.Dial("unix", r.sock)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

func (r *replayer) subst(s string) string { return strings.ReplaceAll(s, "<tmpdir>", r.tmpdir) }
func (r *replayer) unsubst(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte(r.tmpdir), []byte("<tmpdir>"))
}

// readRaw collects bytes until want bytes arrived (then a short grace period
// for extra bytes), the peer closes, or the window ends.
func readRaw(c net.Conn, want int, window time.Duration) (got []byte, closed bool) {
	deadline := time.Now().Add(window)
	buf := make([]byte, 1<<16)
	for {
		if want > 0 && len(got) >= want {
			deadline = time.Now().Add(50 * time.Millisecond)
			want = 0
		}
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got, false
			}
			return got, errors.Is(err, io.EOF) || err != nil
		}
	}
}

func (r *replayer) run(s step) {
	t := r.t
	c := r.dial()
	defer c.Close()
	switch {
	case s.RequestRaw != nil && s.Responses != nil: // pipelined
		if _, err := c.Write([]byte(r.subst(*s.RequestRaw))); err != nil {
			t.Fatal(err)
		}
		got, _ := readRaw(c, len(r.subst(*s.ResponseRw)), 3*time.Second)
		got = r.unsubst(got)
		dec := json.NewDecoder(bytes.NewReader(got))
		for i, want := range s.Responses {
			var g json.RawMessage
			if err := dec.Decode(&g); err != nil {
				t.Fatalf("%s: response %d: %v (got %q)", s.Step, i, err, got)
			}
			if !reflect.DeepEqual(normalise(t, g), normalise(t, want)) {
				t.Errorf("%s: response %d (arrival order)\n got %s\nwant %s", s.Step, i, g, want)
			}
		}
	case s.RequestRaw != nil: // raw / malformed
		if _, err := c.Write([]byte(r.subst(*s.RequestRaw))); err != nil {
			t.Fatal(err)
		}
		want := *s.ResponseRw
		window := time.Second
		if want != "" && !*s.Closed {
			window = 2 * time.Second
		}
		got, closed := readRaw(c, len(r.subst(want)), window)
		if want == "" {
			window = 200 * time.Millisecond
		}
		if g := string(r.unsubst(got)); g != want {
			t.Errorf("%s: raw reply\n got %q\nwant %q", s.Step, g, want)
		}
		if closed != *s.Closed {
			t.Errorf("%s: connection closed = %v, want %v", s.Step, closed, *s.Closed)
		}
	default:
		req := r.subst(string(s.Request))
		var compactReq bytes.Buffer
		if err := json.Compact(&compactReq, []byte(req)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(compactReq.Bytes()); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(c).ReadBytes('\n')
		if err != nil {
			t.Fatalf("%s: read: %v", s.Step, err)
		}
		line = r.unsubst(line)
		// Wire format: compact, keys jsonrpc, id, then result|error, one "\n".
		var buf bytes.Buffer
		_ = json.Compact(&buf, line)
		if !bytes.Equal(append(buf.Bytes(), '\n'), line) || !bytes.HasPrefix(line, []byte(`{"jsonrpc":"2.0","id":`)) {
			t.Errorf("%s: reply not in SPDK's compact form: %q", s.Step, line)
		}
		if !reflect.DeepEqual(normalise(t, line), normalise(t, s.Response)) {
			t.Errorf("%s:\n got %s\nwant %s", s.Step, line, s.Response)
		}
	}
}

// TestTranscriptReplay replays every line of both transcripts: instance A
// (the Cinder target) and instance B (the DPU), B reaching A as a peer.
func TestTranscriptReplay(t *testing.T) {
	tmp, ra, rb, b := startPair(t)
	if err := os.WriteFile(filepath.Join(tmp, "config-drive.img"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := loadSteps(t, "a-setup.jsonl")
	if len(steps) != 17 {
		t.Fatalf("a-setup has %d steps, want 17", len(steps))
	}
	for _, s := range steps {
		ra.run(s)
	}
	steps = loadSteps(t, "b-dpu.jsonl")
	if len(steps) != 105 {
		t.Fatalf("b-dpu has %d steps, want 105", len(steps))
	}
	for _, s := range steps {
		rb.run(s)
	}
	if b.Calls("bdev_nvme_attach_controller") == 0 || b.MutatingCalls() == 0 {
		t.Error("call counters did not move")
	}
}

// TestMethodsSubsetOfReal checks rpc_get_methods lists only methods a real
// SPDK v24.09 has, plus the SNAP ones.
func TestMethodsSubsetOfReal(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "methods.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Response struct {
			Result []string `json:"result"`
		} `json:"response"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	real := map[string]bool{}
	for _, n := range m.Response.Result {
		real[n] = true
	}
	e := New(Options{})
	for _, n := range e.methods {
		if !real[n] && !strings.HasPrefix(n, "nvme_") && n != "emulation_function_list" {
			t.Errorf("emulator serves %s, which SPDK v24.09 does not have", n)
		}
	}
}

// startPair starts instance A (the Cinder target) and instance B (the DPU,
// reaching A as a peer) in a temp dir with the VFIOUSER directory made.
func startPair(t *testing.T) (tmp string, ra, rb *replayer, b *Emulator) {
	t.Helper()
	tmp = t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "vfio-user", "pf0"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := New(Options{})
	if err := a.Start(filepath.Join(tmp, "a.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	b = New(Options{Peers: []*Emulator{a}})
	if err := b.Start(filepath.Join(tmp, "b.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	ra = &replayer{t: t, sock: filepath.Join(tmp, "a.sock"), tmpdir: tmp}
	rb = &replayer{t: t, sock: filepath.Join(tmp, "b.sock"), tmpdir: tmp}
	return tmp, ra, rb, b
}

// replayPair replays a c-*.jsonl transcript, sending "A:" steps to a and
// "B:" steps to b. before[i] runs before step i (1-based), standing in for
// the non-RPC events of the recording (a file grown or shrunk); steps in
// skip are what the emulator does not reproduce (each says why).
func replayPair(t *testing.T, name string, want int, before map[int]func(tmp string), skip map[int]string) {
	t.Helper()
	tmp, ra, rb, _ := startPair(t)
	steps := loadSteps(t, name)
	if len(steps) != want {
		t.Fatalf("%s has %d steps, want %d", name, len(steps), want)
	}
	for i, s := range steps {
		if f := before[i+1]; f != nil {
			f(tmp)
		}
		if _, ok := skip[i+1]; ok {
			continue
		}
		switch {
		case strings.HasPrefix(s.Step, "A:"):
			ra.run(s)
		case strings.HasPrefix(s.Step, "B:"):
			rb.run(s)
		default:
			t.Fatalf("%s line %d: no instance prefix: %q", name, i+1, s.Step)
		}
	}
}

func writeSized(t *testing.T, path string, size int) {
	t.Helper()
	b := make([]byte, size)
	copy(b, "CD001")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTranscriptReplayConfigDrive: read-only AIO bdevs, rescan after the
// file grew or shrank, block size rules, explicit uuid (c-configdrive.jsonl).
func TestTranscriptReplayConfigDrive(t *testing.T) {
	const mb = 1 << 20
	iso := func(size int) func(string) {
		return func(tmp string) { writeSized(t, filepath.Join(tmp, "config-drive.iso"), size) }
	}
	before := map[int]func(string){
		1: func(tmp string) {
			writeSized(t, filepath.Join(tmp, "config-drive.iso"), mb)
			writeSized(t, filepath.Join(tmp, "config-drive-odd.img"), mb+512)
			writeSized(t, filepath.Join(tmp, "config-drive-empty.img"), 0)
		},
		9:  iso(2 * mb),
		12: iso(3*mb + 1000),
		14: iso(mb),
		28: iso(mb),
	}
	replayPair(t, "c-configdrive.jsonl", 53, before, nil)
}

// TestTranscriptReplayQoS: bdev_set_qos_limit rounding, clamping, errors,
// the pipelined conflict, and limits lost on re-attach (c-qos.jsonl).
func TestTranscriptReplayQoS(t *testing.T) {
	replayPair(t, "c-qos.jsonl", 54, nil, nil)
}

// TestTranscriptReplayResize: a remote lvol grown on A shows its new size on
// B's NVMe bdev with no RPC on B; shrinking while exported is refused but
// half-done; a namespace removed on A hot-removes B's bdev and pf0's
// namespace, and once A adds it back the bdev returns but pf0 does not
// (c-resize.jsonl).
func TestTranscriptReplayResize(t *testing.T) {
	replayPair(t, "c-resize.jsonl", 53, nil, map[int]string{
		// The emulator applies a namespace-change notice at once; real B
		// took 8-18 ms, and its first poll (line 44) still saw the bdev.
		44: "first poll raced the hot-remove notice",
		// Same bdev (32768 blocks) but real B listed the 4431 path first
		// after re-discovering the namespace; the emulator keeps attach order.
		51: "path order after namespace re-discovery",
	})
}
