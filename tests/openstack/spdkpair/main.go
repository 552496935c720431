// Command spdkpair runs, in one process, the two SPDK instances of the
// OpenStack end-to-end test, both the project's strict SPDK emulator
// (storage/spdk/spdktest):
//
//   - the Cinder storage target: Cinder's SPDK volume driver reaches it
//     through an HTTP JSON-RPC front like SPDK's scripts/rpc_http_proxy.py
//     (basic auth), and exports lvols over NVMe/TCP;
//   - each DPU's SPDK (one per -dpu-socket, repeatable: one per node of
//     the suite), the agent's unix socket, which reaches the target's TCP
//     listeners as a peer, the way separate SPDK processes on one network
//     do. DPUs are not peers of each other.
//
// The front renames the one parameter Cinder Zed still sends in its old
// form: bdev_lvol_create/bdev_lvol_resize {"size": bytes} is
// {"size_in_mib": MiB} in SPDK v24.09 (research/openstack-full-stack.md,
// step 3). Every forwarded call is logged as one JSON line on stdout
// ({t: Unix seconds, req, resp}). Each DPU's emulator listens at
// <socket>.spdk behind a relay on <socket> that logs the DPU's calls that
// change something on the same stdout ({t, dpu: socket base name, req} and
// {t, dpu, resp}).
package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk/spdktest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "spdkpair:", err)
		os.Exit(1)
	}
}

func run() error {
	targetSock := flag.String("target-socket", "", "unix socket of the Cinder target SPDK")
	var dpuSocks socketList
	flag.Var(&dpuSocks, "dpu-socket", "unix socket of a DPU's SPDK (repeat for several DPUs)")
	listen := flag.String("http", "127.0.0.1:58000", "HTTP JSON-RPC address for Cinder")
	user := flag.String("user", "spdk", "basic auth user")
	passFile := flag.String("password-file", "", "file holding the basic auth password")
	flag.Parse()
	if *targetSock == "" || len(dpuSocks) == 0 || *passFile == "" {
		return errors.New("-target-socket, -dpu-socket and -password-file are required")
	}
	pw, err := os.ReadFile(*passFile)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	target := spdktest.New(spdktest.Options{})
	if err := target.Start(*targetSock); err != nil {
		return err
	}
	defer func() { _ = target.Stop() }()
	log := &callLog{out: json.NewEncoder(os.Stdout)}
	for _, sock := range dpuSocks {
		// the emulator behind a relay that logs the DPU's calls
		dpu := spdktest.New(spdktest.Options{Peers: []*spdktest.Emulator{target}})
		if err := dpu.Start(sock + ".spdk"); err != nil {
			return err
		}
		defer func() { _ = dpu.Stop() }()
		r, err := startRelay(sock, sock+".spdk", filepath.Base(sock), log)
		if err != nil {
			return err
		}
		defer r.stop()
	}

	p := &proxy{sock: *targetSock, user: *user, pass: strings.TrimSpace(string(pw)), log: log}
	srv := &http.Server{Addr: *listen, Handler: p, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// socketList is a repeatable string flag.
type socketList []string

func (l *socketList) String() string { return strings.Join(*l, ",") }

func (l *socketList) Set(v string) error {
	if v == "" {
		return errors.New("empty socket path")
	}
	*l = append(*l, v)
	return nil
}

type proxy struct {
	sock, user, pass string
	log              *callLog
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u, pw, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(p.user)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pw), []byte(p.pass)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="spdk"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, err := translate(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := p.forward(r.Context(), req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	// t: when SPDK answered (Unix seconds), to order the target's calls
	// against the DPUs'
	p.log.write(map[string]json.RawMessage{"req": req, "resp": resp})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(resp)
}

// translate renames Cinder Zed's "size" (bytes) to v24.09's size_in_mib.
func translate(body []byte) ([]byte, error) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	var method string
	_ = json.Unmarshal(req["method"], &method)
	if method != "bdev_lvol_create" && method != "bdev_lvol_resize" {
		return body, nil
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(req["params"], &params); err != nil {
		return body, nil // let SPDK answer the malformed call
	}
	raw, ok := params["size"]
	if !ok {
		return body, nil
	}
	var size int64
	if err := json.Unmarshal(raw, &size); err != nil {
		return body, nil
	}
	delete(params, "size")
	const mib = 1 << 20
	params["size_in_mib"] = json.RawMessage(fmt.Sprint((size + mib - 1) / mib))
	b, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	req["params"] = b
	return json.Marshal(req)
}

// forward sends one request on a fresh connection and returns the reply.
func (p *proxy) forward(ctx context.Context, req []byte) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", p.sock)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	var resp json.RawMessage
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("reading SPDK reply: %w", err)
	}
	return bytes.TrimSpace(resp), nil
}
