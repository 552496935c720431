package main

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// callLog writes one JSON line per logged call, in the order they happen:
// the HTTP front's and every DPU relay's share it.
type callLog struct {
	mu  sync.Mutex
	out *json.Encoder
}

func (l *callLog) write(fields map[string]json.RawMessage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fields["t"] = json.RawMessage(fmt.Sprintf("%.6f", float64(time.Now().UnixMicro())/1e6))
	_ = l.out.Encode(fields)
}

// relay serves a DPU's socket for its emulator listening at emu and logs
// each call that changes something ({t, dpu, req} when it goes in, {t, dpu,
// resp} when its answer comes back), so the suite can order one DPU's
// calls against another's and the target's. Reads (*_get_*) are not
// logged: the agents' periodic reconcile would bury the rest.
type relay struct {
	name, emu string
	ln        net.Listener
	log       *callLog

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop and each connection's pumps
}

func startRelay(sock, emu, name string, log *callLog) (*relay, error) {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	r := &relay{name: name, emu: emu, ln: ln, log: log, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// stop closes the listener and every connection, and waits for the pumps.
func (r *relay) stop() {
	_ = r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// add tracks a connection pair for stop; false once stopped.
func (r *relay) add(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	for _, c := range cs {
		r.conns[c] = struct{}{}
	}
	return true
}

func (r *relay) drop(cs ...net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		delete(r.conns, c)
	}
}

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return // closed by stop
		}
		out, err := net.Dial("unix", r.emu)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !r.add(in, out) {
			_ = in.Close()
			_ = out.Close()
			return
		}
		ids := &pending{m: map[string]string{}}
		r.wg.Add(2)
		go r.pump(in, out, ids, true)
		go r.pump(out, in, ids, false)
	}
}

// pending maps a logged request's id to its method, to log its answer.
type pending struct {
	mu sync.Mutex
	m  map[string]string
}

// pump copies JSON values from src to dst, logging the calls, until
// either side closes; then it closes both.
func (r *relay) pump(src, dst net.Conn, ids *pending, requests bool) {
	defer r.wg.Done()
	defer func() {
		_ = src.Close()
		_ = dst.Close()
		r.drop(src, dst)
	}()
	dec := json.NewDecoder(src)
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return
		}
		r.note(v, ids, requests)
		if _, err := dst.Write(v); err != nil {
			return
		}
	}
}

func (r *relay) note(v json.RawMessage, ids *pending, request bool) {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	if json.Unmarshal(v, &m) != nil {
		return
	}
	name, _ := json.Marshal(r.name)
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if request {
		if m.Method == "" || strings.Contains(m.Method, "_get_") {
			return
		}
		ids.m[string(m.ID)] = m.Method
		r.log.write(map[string]json.RawMessage{"dpu": name, "req": v})
		return
	}
	if _, ok := ids.m[string(m.ID)]; !ok {
		return
	}
	delete(ids.m, string(m.ID))
	r.log.write(map[string]json.RawMessage{"dpu": name, "resp": v})
}
