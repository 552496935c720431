// Package oneshot sends a single JSON-RPC request on a fresh connection and
// decodes its result: enough for the CLI's reachability probes and read-only
// hardware checks, which must not need the daemon's long-lived clients.
package oneshot

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// Call dials network/addr, writes req as JSON and returns the reply's result.
// An error member in the reply is an error.
func Call(ctx context.Context, network, addr string, req any) (json.RawMessage, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
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

// OVSDBAddr splits an OVS-style endpoint (unix:PATH, tcp:HOST:PORT) into a
// dialable network and address.
func OVSDBAddr(endpoint string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(endpoint, ":")
	if !ok || (network != "unix" && network != "tcp") {
		return "", "", fmt.Errorf("unsupported OVSDB endpoint %q (want unix:PATH or tcp:HOST:PORT)", endpoint)
	}
	return network, addr, nil
}
