// Package spdktest is a strict emulator of the SPDK (v24.09) and DOCA SNAP 4
// JSON-RPC methods the agent uses, served on a unix socket. Its results,
// error codes and messages and its wire quirks come from the transcripts of a
// real SPDK v24.09 in /work/shared/spdk-transcripts (replayed by
// TestTranscriptReplay); the SNAP methods follow docs/bluefield-snap.md
// because no transcript exists for them. It counts calls per method so tests can
// assert that an unchanged reconcile makes no mutating call.
package spdktest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"time"
)

// Options configure an emulator.
type Options struct {
	// Remotes are NVMe-oF subsystems reachable from this "DPU" as if served
	// by a storage array (the Cinder target).
	Remotes []RemoteSubsystem
	// Peers are other emulators whose nvmf subsystems with TCP listeners are
	// reachable, as two SPDK processes on one host are.
	Peers []*Emulator
	// AttachLatency delays the completion of a successful
	// bdev_nvme_attach_controller, which SPDK handles asynchronously (a
	// pipelined later request is answered first). Default 2ms; negative = 0.
	AttachLatency time.Duration
	// Debug adds spdktest_get_call_counts and spdktest_reset_call_counts,
	// so tests can read the counters of an emulator run as a process, and
	// spdktest_snap_host (SNAPHost).
	Debug bool
	// SNAPPFs and SNAPVFs size the emulated NVMe functions SNAP can put a
	// controller on: static PFs (default 2) and the most VFs each may have
	// (default 8). VFs exist only after EnableSRIOV, as on a real host.
	SNAPPFs, SNAPVFs int
	// SNAPNoInitConfig starts SNAP without NVIDIA's published init
	// configuration (by default subsystem SNAPInitNQN with the admin-only
	// controller SNAPInitCtrl on PF 0 exists from the start).
	SNAPNoInitConfig bool
	// SNAPVirtioBlkPFs adds virtio-blk emulation PFs to
	// emulation_function_list (functions the NVMe driver must ignore).
	SNAPVirtioBlkPFs int
	// PathTick is how often lost paths advance (default 25ms). A fleet
	// benchmark running a hundred emulators on the conductor's cores sets
	// it longer: each tick wakes every emulator, faults or not.
	PathTick time.Duration
}

// Emulator is one emulated SPDK process. Start/Stop may be repeated; every
// Start begins with an empty configuration (SNAP: its init configuration),
// like a restarted SPDK.
type Emulator struct {
	opts Options

	mu      sync.Mutex // guards everything below
	st      *state
	calls   map[string]int
	reqs    map[string][]json.RawMessage
	order   []string // methods in arrival order
	inject  map[string][]rpcError
	remotes []RemoteSubsystem
	ln      net.Listener
	vfio    map[string]*net.UnixListener // VFIOUSER traddr -> its cntrl socket
	conns   map[net.Conn]struct{}
	// sriov is the host's sriov_numvfs per SNAP NVMe PF: host state that
	// outlives a SNAP restart.
	sriov   map[int]int
	stop    chan struct{}
	path    string
	methods []string
	// notifications counts requests without id (a client bug with SPDK).
	notifications int

	wg sync.WaitGroup // accept loop, connections, async replies
	// pending counts asynchronous requests not answered yet: a graceful
	// stop answers them (-108) before it closes their connections.
	pending  sync.WaitGroup
	crashing bool // the running halt is a crash: pending requests get no answer
}

// New returns a stopped emulator.
func New(opts Options) *Emulator {
	if opts.AttachLatency == 0 {
		opts.AttachLatency = 2 * time.Millisecond
	}
	if opts.AttachLatency < 0 {
		opts.AttachLatency = 0
	}
	if opts.SNAPPFs == 0 {
		opts.SNAPPFs = 2
	}
	if opts.SNAPVFs == 0 {
		opts.SNAPVFs = 8
	}
	e := &Emulator{opts: opts, calls: map[string]int{}, reqs: map[string][]json.RawMessage{}, inject: map[string][]rpcError{}, sriov: map[int]int{}}
	e.remotes = append(e.remotes, opts.Remotes...)
	e.methods = methodNames()
	e.st = newState()
	return e
}

// Start listens on the unix socket path (removing a stale socket file) with
// an empty configuration.
func (e *Emulator) Start(path string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ln != nil {
		return errors.New("spdktest: already started")
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("spdktest: listen %s: %w", path, err)
	}
	e.ln, e.path = ln, path
	e.st = newState()
	e.snapInit(e.st)
	e.vfio = map[string]*net.UnixListener{}
	e.conns = map[net.Conn]struct{}{}
	e.stop = make(chan struct{})
	e.wg.Add(2)
	go e.acceptLoop(ln, e.stop)
	go e.pathLoop(e.stop)
	return nil
}

// Socket returns the socket path of the running emulator.
func (e *Emulator) Socket() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.path
}

// Stop is a graceful exit (SIGTERM): it answers every request still pending
// (an asynchronous one) with -108 "Cannot send after transport endpoint
// shutdown", then closes the listener and every connection (an idle or
// half-written one gets EOF and no bytes), removes the RPC socket and the
// vfio-user cntrl sockets, waits for all goroutines and forgets the
// configuration (call counters are kept).
func (e *Emulator) Stop() error { return e.halt(false) }

// Crash is SIGKILL: like Stop, but pending requests get no answer, and the
// RPC socket file and every vfio-user cntrl socket stay behind
// (c-faults.jsonl (b)), and connecting to them is refused.
func (e *Emulator) Crash() error { return e.halt(true) }

func (e *Emulator) halt(crash bool) error {
	e.mu.Lock()
	if e.ln == nil {
		e.mu.Unlock()
		return nil
	}
	ln := e.ln
	e.ln = nil
	e.crashing = crash
	close(e.stop)
	e.mu.Unlock()
	if !crash {
		// SPDK's graceful exit answers what is still pending with -108
		// before the connections close (c-faults.jsonl (a)).
		e.pending.Wait()
	}
	e.mu.Lock()
	for c := range e.conns {
		_ = c.Close()
	}
	e.closeAllVFIOUser(!crash)
	e.mu.Unlock()
	if ul, ok := ln.(*net.UnixListener); ok && crash {
		ul.SetUnlinkOnClose(false)
	}
	err := ln.Close()
	e.wg.Wait()
	e.mu.Lock()
	e.st = newState()
	if !crash {
		_ = os.Remove(e.path)
	}
	e.mu.Unlock()
	return err
}

// AddRemote makes another remote subsystem reachable.
func (e *Emulator) AddRemote(r RemoteSubsystem) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.remotes = append(e.remotes, r)
}

// RemoveRemote makes the remote subsystem nqn unreachable (target gone):
// new attaches fail, and the paths to it fail at the next request and are
// deleted after their ctrlr_loss_timeout_sec (faults.go).
func (e *Emulator) RemoveRemote(nqn string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.remotes[:0]
	for _, r := range e.remotes {
		if r.NQN != nqn {
			out = append(out, r)
		}
	}
	e.remotes = out
}

// Calls returns how often method was called since the last ResetCalls.
func (e *Emulator) Calls(method string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[method]
}

// CallCounts returns a copy of all counters.
func (e *Emulator) CallCounts() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[string]int, len(e.calls))
	for k, v := range e.calls {
		m[k] = v
	}
	return m
}

// TotalCalls is the number of requests dispatched since the last ResetCalls.
func (e *Emulator) TotalCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, v := range e.calls {
		n += v
	}
	return n
}

// MutatingCalls counts the calls of methods that can change state.
func (e *Emulator) MutatingCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for m, v := range e.calls {
		if !readOnly[m] {
			n += v
		}
	}
	return n
}

// ResetCalls zeroes the counters and forgets the recorded params.
func (e *Emulator) ResetCalls() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = map[string]int{}
	e.reqs = map[string][]json.RawMessage{}
	e.order = nil
}

// Methods returns the methods called since the last ResetCalls, in arrival order.
func (e *Emulator) Methods() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.order...)
}

// Params returns the params of every call of method since the last
// ResetCalls, in arrival order (nil entries for calls without params).
func (e *Emulator) Params(method string) []json.RawMessage {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]json.RawMessage(nil), e.reqs[method]...)
}

// Notifications counts requests that came without an id.
func (e *Emulator) Notifications() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.notifications
}

// LoadRemotes reads a JSON list of RemoteSubsystem (the --remotes file of
// cmd/spdk-emulator).
func LoadRemotes(path string) ([]RemoteSubsystem, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rs []RemoteSubsystem
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("spdktest: %s: %w", path, err)
	}
	return rs, nil
}

// InjectError makes the next call of method fail with code/message, before
// any side effect (for testing error paths the real SPDK rarely shows).
func (e *Emulator) InjectError(method string, code int, message string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inject[method] = append(e.inject[method], rpcError{code, message})
}

// IsReadOnly reports whether method never changes state.
func IsReadOnly(method string) bool { return readOnly[method] }

var readOnly = map[string]bool{
	"spdk_get_version": true, "rpc_get_methods": true, "bdev_get_bdevs": true,
	"bdev_nvme_get_controllers": true, "nvmf_get_subsystems": true, "nvmf_get_transports": true,
	"nvme_subsystem_list": true, "nvme_namespace_list": true, "nvme_controller_list": true,
	"emulation_function_list": true, "bdev_lvol_get_lvstores": true,
}

func (e *Emulator) acceptLoop(ln net.Listener, stop chan struct{}) {
	defer e.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		select {
		case <-stop:
			e.mu.Unlock()
			_ = c.Close()
			return
		default:
		}
		e.conns[c] = struct{}{}
		e.wg.Add(1)
		e.mu.Unlock()
		go e.serveConn(c, stop)
	}
}

// rpcError is an error reply.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (r rpcError) Error() string { return fmt.Sprintf("%d %s", r.Code, r.Message) }

func errf(code int, format string, a ...any) rpcError {
	return rpcError{code, fmt.Sprintf(format, a...)}
}

// Standard replies seen in the transcripts.
var (
	errInvalidRequest = rpcError{-32600, "Invalid request"}
	errNoMethod       = rpcError{-32601, "Method not found"}
	errInvalidParams  = rpcError{-32602, "Invalid parameters"}
	errDecode         = rpcError{-32603, "spdk_json_decode_object failed"}
	errENOENT         = rpcError{-2, "No such file or directory"}
	errEIO            = rpcError{-5, "Input/output error"}
	errENXIO          = rpcError{-6, "No such device or address"}
	errEEXIST         = rpcError{-17, "File exists"}
	errENODEV         = rpcError{-19, "No such device"}
	errEINVAL         = rpcError{-22, "Invalid argument"}
	errETIMEDOUT      = rpcError{-110, "Connection timed out"}
	errEBUSY          = rpcError{-16, "Device or resource busy"}
	errESHUTDOWN      = rpcError{-108, "Cannot send after transport endpoint shutdown"}
)

// async is returned by handlers that answer later (SPDK's asynchronous RPCs).
type async func(stop <-chan struct{}) (any, error)

// connWriter serialises replies on one connection.
type connWriter struct {
	mu     sync.Mutex
	c      net.Conn
	broken bool // a parse error closes the connection; no more replies
}

func (w *connWriter) write(b []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken {
		return
	}
	_, _ = w.c.Write(b)
}

func (e *Emulator) serveConn(c net.Conn, stop chan struct{}) {
	defer e.wg.Done()
	defer func() {
		e.mu.Lock()
		delete(e.conns, c)
		e.mu.Unlock()
		_ = c.Close()
	}()
	w := &connWriter{c: c}
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		n, err := c.Read(chunk)
		buf = append(buf, chunk[:n]...)
		// Parse every complete value in what has arrived, like SPDK's
		// jsonrpc server: a syntax error anywhere closes the connection
		// after the values before it ran, and their replies are lost.
		var reqs []json.RawMessage
		broken := false
		for {
			trimmed := bytes.TrimLeft(buf, " \t\r\n")
			if len(trimmed) == 0 {
				buf = buf[:0]
				break
			}
			dec := json.NewDecoder(bytes.NewReader(trimmed))
			var v json.RawMessage
			derr := dec.Decode(&v)
			if derr == nil {
				reqs = append(reqs, v)
				buf = trimmed[dec.InputOffset():]
				continue
			}
			if errors.Is(derr, io.ErrUnexpectedEOF) || errors.Is(derr, io.EOF) {
				buf = trimmed
				break
			}
			broken = true
			break
		}
		if broken {
			w.mu.Lock()
			w.broken = true
			w.mu.Unlock()
		}
		for _, r := range reqs {
			e.handleRaw(w, r, stop)
		}
		if broken || err != nil {
			return
		}
	}
}

func (e *Emulator) handleRaw(w *connWriter, raw json.RawMessage, stop chan struct{}) {
	var req map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &req) != nil {
		w.write(encodeReply([]byte("null"), nil, &errInvalidRequest, true))
		return
	}
	if v, ok := req["jsonrpc"]; ok && string(v) != `"2.0"` {
		w.write(encodeReply([]byte("null"), nil, &errInvalidRequest, true))
		return
	}
	var method string
	if json.Unmarshal(req["method"], &method) != nil || method == "" {
		w.write(encodeReply([]byte("null"), nil, &errInvalidRequest, true))
		return
	}
	id, hasID := req["id"]
	if !hasID || string(id) == "null" {
		id, hasID = []byte("null"), false
	}
	params, hasParams := req["params"]
	if hasParams && string(params) == "null" {
		params, hasParams = nil, false
	}
	if !hasID {
		e.mu.Lock()
		e.notifications++
		e.mu.Unlock()
	}
	result, err := e.dispatch(method, params, hasParams)
	if fn, ok := result.(async); ok {
		// Counted under the lock halt closes stop with, so no Add races
		// its pending.Wait; one arriving while stopping is answered now.
		e.mu.Lock()
		stopping := false
		select {
		case <-stop:
			stopping = true
		default:
			e.wg.Add(1)
			e.pending.Add(1)
		}
		e.mu.Unlock()
		if stopping {
			e.answerStopped(w, id, hasID)
			return
		}
		go func() {
			defer e.wg.Done()
			defer e.pending.Done()
			res, err := fn(stop)
			select {
			case <-stop:
				e.answerStopped(w, id, hasID)
				return
			default:
			}
			w.write(e.reply(id, hasID, res, err))
		}()
		return
	}
	w.write(e.reply(id, hasID, result, err))
}

// answerStopped answers a request the stop caught pending: -108 on a
// graceful exit, nothing on a crash.
func (e *Emulator) answerStopped(w *connWriter, id []byte, hasID bool) {
	e.mu.Lock()
	crashing := e.crashing
	e.mu.Unlock()
	if !crashing {
		w.write(e.reply(id, hasID, nil, errESHUTDOWN))
	}
}

func (e *Emulator) reply(id []byte, hasID bool, result any, err error) []byte {
	if err != nil {
		var re rpcError
		if !errors.As(err, &re) {
			re = rpcError{-32603, err.Error()}
		}
		return encodeReply(id, nil, &re, true)
	}
	// SPDK v24.09 answers a successful notification with a reply cut before
	// its final "}\n" (transcript: "notification (no id)").
	return encodeReply(id, result, nil, hasID)
}

// encodeReply writes compact JSON with keys jsonrpc, id, result|error and a
// newline, as SPDK does ("/" unescaped).
func encodeReply(id []byte, result any, rerr *rpcError, complete bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"jsonrpc":"2.0","id":`)
	b.Write(id)
	if rerr != nil {
		b.WriteString(`,"error":`)
		b.Write(compact(rerr))
	} else {
		b.WriteString(`,"result":`)
		b.Write(compact(result))
	}
	if complete {
		b.WriteString("}\n")
	}
	return b.Bytes()
}

func compact(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // results are emulator-built values
	}
	return bytes.TrimRight(b.Bytes(), "\n")
}

func (e *Emulator) dispatch(method string, params json.RawMessage, hasParams bool) (any, error) {
	if e.opts.Debug {
		switch method {
		case "spdktest_get_call_counts":
			return e.CallCounts(), nil
		case "spdktest_reset_call_counts":
			e.ResetCalls()
			return true, nil
		case "spdktest_remove_remote", "spdktest_add_remote":
			return e.debugRemote(method, params)
		case "spdktest_snap_host":
			return e.SNAPHost(), nil
		}
	}
	e.advancePaths(time.Now())
	e.followRemotes()
	e.mu.Lock()
	e.calls[method]++
	e.reqs[method] = append(e.reqs[method], append(json.RawMessage(nil), params...))
	e.order = append(e.order, method)
	if errs := e.inject[method]; len(errs) > 0 {
		e.inject[method] = errs[1:]
		e.mu.Unlock()
		return nil, errs[0]
	}
	e.mu.Unlock()
	h, ok := handlers[method]
	if !ok {
		return nil, errNoMethod
	}
	return h(e, params, hasParams)
}

type handler func(e *Emulator, params json.RawMessage, hasParams bool) (any, error)

func methodNames() []string {
	out := make([]string, 0, len(handlers))
	for m := range handlers {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// decodeStrict decodes params into v rejecting unknown keys, like
// spdk_json_decode_object. Absent params decode as {}.
func decodeStrict(params json.RawMessage, v any) error {
	if len(params) == 0 {
		params = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
