package spdktest

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// faultsEnv is instance A (the Cinder target) and B (the DPU) of
// c-faults.jsonl, B reaching A as a peer.
type faultsEnv struct {
	t        *testing.T
	tmp      string
	a, b     *Emulator
	ra, rb   *replayer
	steps    []step
	cntrl    string
	bSock    string
	replayed int
}

func newFaultsEnv(t *testing.T) *faultsEnv {
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "vfio-user", "pf0"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &faultsEnv{t: t, tmp: tmp, a: New(Options{}), steps: loadSteps(t, "c-faults.jsonl"),
		cntrl: filepath.Join(tmp, "vfio-user", "pf0", "cntrl"), bSock: filepath.Join(tmp, "b.sock")}
	if len(f.steps) != 119 {
		t.Fatalf("c-faults has %d steps, want 119", len(f.steps))
	}
	f.b = New(Options{Peers: []*Emulator{f.a}})
	if err := f.a.Start(filepath.Join(tmp, "a.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.a.Stop() })
	if err := f.b.Start(f.bSock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.b.Stop() })
	f.ra = &replayer{t: t, sock: filepath.Join(tmp, "a.sock"), tmpdir: tmp}
	f.rb = &replayer{t: t, sock: f.bSock, tmpdir: tmp}
	return f
}

// play replays lines from..to (1-based, inclusive) on the instance each step
// names. spdk_get_version is skipped (this recording's build adds a git sha
// the emulator does not claim), and so is A's nvmf_subsystem_get_controllers
// (not emulated: the DPU agent never calls it).
func (f *faultsEnv) play(from, to int) {
	for i := from; i <= to; i++ {
		s := f.steps[i-1]
		if strings.Contains(s.Step, "spdk_get_version") || strings.HasPrefix(s.Step, "A: nvmf_subsystem_get_controllers") ||
			strings.Contains(s.Step, "bdev_nvme_get_io_paths") {
			continue
		}
		switch {
		case strings.HasPrefix(s.Step, "A:"):
			f.ra.run(s)
		case strings.HasPrefix(s.Step, "B:"):
			f.rb.run(s)
		default:
			f.t.Fatalf("line %d: no instance in %q", i, s.Step)
		}
		f.replayed++
	}
}

// rawConn opens a connection to B and writes raw; with method set it waits
// until B has dispatched it (so it is pending when B stops).
func (f *faultsEnv) rawConn(raw, method string) net.Conn {
	f.t.Helper()
	before := f.b.Calls(method)
	c, err := net.Dial("unix", f.bSock)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = c.Close() })
	if raw != "" {
		if _, err := c.Write([]byte(raw)); err != nil {
			f.t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); method != "" && f.b.Calls(method) == before; {
		if time.Now().After(deadline) {
			f.t.Fatalf("%s never dispatched", method)
		}
		time.Sleep(time.Millisecond)
	}
	return c
}

// readToEOF returns everything c receives until SPDK closes it (5 s at
// most). A close with bytes the server had not read yet (a half-written
// request) reaches the client as a reset instead of EOF: closed all the same.
func readToEOF(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("not closed: %v (read %q)", err, b)
	}
	return string(b)
}

func (f *faultsEnv) restartB() {
	if err := f.b.Start(f.bSock); err != nil {
		f.t.Fatal(err)
	}
}

// TestFaultsReplay replays c-faults.jsonl parts (a) and (b): B's graceful
// exit removes the vfio-user cntrl socket, SIGKILL leaves it, and a restarted
// B then answers add_listener with -32602 until the stale file is removed.
func TestFaultsReplay(t *testing.T) {
	f := newFaultsEnv(t)
	f.play(1, 17)
	if fi, err := os.Lstat(f.cntrl); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("VFIOUSER listener made no cntrl socket: %v %v", fi, err)
	}

	// (a) SIGTERM with three connections open (lines 18-20): the pending
	// asynchronous request gets its -108 reply, then EOF; the half-written
	// request and the idle connection get EOF and no bytes.
	pending := f.rawConn(*f.steps[17].RequestRaw, "bdev_get_bdevs")
	half := f.rawConn(*f.steps[18].RequestRaw, "")
	idle := f.rawConn("", "")
	if err := f.b.Stop(); err != nil {
		t.Fatal(err)
	}
	for i, c := range []net.Conn{pending, half, idle} {
		got := readToEOF(t, c)
		if want := *f.steps[17+i].ResponseRw; got != want {
			t.Fatalf("line %d: SPDK sent %q before EOF, want %q", 18+i, got, want)
		}
	}
	// cntrl goes with the process; the restarted B starts empty.
	if _, err := os.Lstat(f.cntrl); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cntrl after a graceful exit: %v", err)
	}
	f.restartB()
	f.play(22, 30)

	// (b) SIGKILL: a pending request gets no answer; cntrl and the RPC
	// socket stay; connecting is refused.
	pending = f.rawConn(*f.steps[17].RequestRaw, "bdev_get_bdevs")
	if err := f.b.Crash(); err != nil {
		t.Fatal(err)
	}
	if got := readToEOF(t, pending); got != "" {
		t.Fatalf("a crashed SPDK answered %q", got)
	}
	for _, p := range []string{f.cntrl, f.bSock} {
		if _, err := net.Dial("unix", p); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("connect to %s after SIGKILL: %v, want ECONNREFUSED", p, err)
		}
	}
	f.restartB()
	f.play(33, 40) // add_listener -32602, not kept
	if err := os.Remove(f.cntrl); err != nil {
		t.Fatal(err)
	}
	f.play(41, 41)
	if fi, err := os.Lstat(f.cntrl); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no new cntrl after the retry: %v", err)
	}
	if f.replayed < 30 {
		t.Fatalf("replayed only %d steps", f.replayed)
	}
	f.lostPaths()
}

// lostPaths replays part (c): A drops the 4431 listeners, then dies and comes
// back; B's three controllers differ only in their reconnect knobs. Polls the
// transcript recorded at a moment inside a retry interval (the short
// "resetting" flips, the exact reconnect tick) are left out; the others are
// replayed after waiting as long as the recording did.
func (f *faultsEnv) lostPaths() {
	f.play(42, 64) // three controllers x 2 paths; A removes 4431
	removed := time.Now()
	f.play(65, 65) // +0.02 s: reconnect_is_delayed / failed
	time.Sleep(time.Until(removed.Add(4200 * time.Millisecond)))
	f.play(66, 66) // +4.03 s: volume B's 4431 path deleted, the others stay
	f.play(68, 71) // pf0 unchanged; A listens on 4431 again
	time.Sleep(1100 * time.Millisecond)
	f.play(75, 77) // volume A back at its next 1 s retry; B re-attached by RPC
	if err := f.a.Crash(); err != nil {
		f.t.Fatal(err)
	}
	killed := time.Now()
	f.play(78, 78) // every path down at once
	time.Sleep(time.Until(killed.Add(4200 * time.Millisecond)))
	f.play(81, 81) // +4.03 s: volume B's controller deleted
	f.play(89, 92) // its bdev and pf0 nsid 2 are gone; A's and C's remain
	if err := f.a.Start(filepath.Join(f.tmp, "a.sock")); err != nil {
		f.t.Fatal(err)
	}
	f.play(94, 112) // A recreates the three volumes
	time.Sleep(1100 * time.Millisecond)
	f.play(115, 115) // B reconnected by itself, no RPC
	f.play(117, 118) // volume B stays gone
}

// TestHostACLReplay replays c-hostacl.jsonl Part 1 (lines 1-26): the host
// list of pf0, its errors and allow_any_host. Part 2 (DH-HMAC-CHAP between two
// targets over TCP) is not emulated.
func TestHostACLReplay(t *testing.T) {
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "vfio-user", "pf0"), 0o755); err != nil {
		t.Fatal(err)
	}
	b := New(Options{})
	if err := b.Start(filepath.Join(tmp, "b.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	r := &replayer{t: t, sock: filepath.Join(tmp, "b.sock"), tmpdir: tmp}
	steps := loadSteps(t, "c-hostacl.jsonl")
	if len(steps) != 83 {
		t.Fatalf("c-hostacl has %d steps, want 83", len(steps))
	}
	for _, s := range steps[:26] {
		if !strings.HasPrefix(s.Step, "B:") {
			t.Fatalf("Part 1 step on A: %s", s.Step)
		}
		r.run(s)
	}
}

// TestKeyringReplay replays instance A's side of c-hostacl.jsonl Part 2: the
// file keyring and host entries that name DH-HMAC-CHAP keys. B's
// authenticated attaches and A's qpair listings are not emulated.
func TestKeyringReplay(t *testing.T) {
	tmp := t.TempDir()
	keys := filepath.Join(tmp, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"a-dpu-host.key": 0o600, "a-dpu-ctrl.key": 0o600, "a-mode0644.key": 0o644} {
		// The contents are never read by the keyring: a placeholder, no secret.
		if err := os.WriteFile(filepath.Join(keys, name), []byte("DHHC-1:00:placeholder:"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(keys, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	a := New(Options{})
	if err := a.Start(filepath.Join(tmp, "a.sock")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop() })
	r := &replayer{t: t, sock: filepath.Join(tmp, "a.sock"), tmpdir: tmp}
	steps := loadSteps(t, "c-hostacl.jsonl")
	for _, rng := range [][2]int{{27, 42}, {59, 61}, {69, 70}, {74, 75}, {80, 82}} {
		for i := rng[0]; i <= rng[1]; i++ {
			if !strings.HasPrefix(steps[i-1].Step, "A:") {
				t.Fatalf("line %d is not on A: %s", i, steps[i-1].Step)
			}
			r.run(steps[i-1])
		}
	}
}
