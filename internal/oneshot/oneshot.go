// Package oneshot sends a single JSON-RPC request on a fresh connection and
// decodes its result: enough for the CLI's reachability probes and read-only
// hardware checks, which must not need the daemon's long-lived clients.
package oneshot

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// Call dials network/addr, writes req as JSON and returns the reply's result.
// An error member in the reply is an error.
func Call(ctx context.Context, network, addr string, req any) (json.RawMessage, error) {
	return CallTLS(ctx, network, addr, nil, req)
}

// CallTLS is Call over TLS when tc is not nil (the handshake is bounded by ctx).
func CallTLS(ctx context.Context, network, addr string, tc *tls.Config, req any) (json.RawMessage, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if tc != nil {
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tconn
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, err
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("no JSON-RPC reply: %w", err)
	}
	if len(resp.Error) > 0 && string(resp.Error) != "null" {
		return nil, fmt.Errorf("error reply: %s", resp.Error)
	}
	return resp.Result, nil
}

// OVSDBAddr splits an OVS-style endpoint (unix:PATH, tcp:HOST:PORT,
// ssl:HOST:PORT; an IPv6 HOST in brackets) into a dialable network and
// address; secure is true for ssl:, which must be dialled with CallTLS.
func OVSDBAddr(endpoint string) (network, addr string, secure bool, err error) {
	scheme, addr, ok := strings.Cut(endpoint, ":")
	switch {
	case ok && scheme == "unix":
		return "unix", addr, false, nil
	case ok && (scheme == "tcp" || scheme == "ssl"):
		return "tcp", addr, scheme == "ssl", nil
	}
	return "", "", false, fmt.Errorf("unsupported OVSDB endpoint %q (want unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT)", endpoint)
}
