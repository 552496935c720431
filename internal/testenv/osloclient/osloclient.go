// Package osloclient drives the agent from Python oslo.messaging (the
// conductor's own library) through tests/python/agent_repl.py.
package osloclient

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
)

// Python is Debian's interpreter (the pyenv one cannot import oslo).
const Python = "/usr/bin/python3"

// Client is one long-lived Python process.
type Client struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	Node string
}

// Req is one request line.
type Req struct {
	Method             string         `json:"method"`
	Args               map[string]any `json:"args"`
	Server             string         `json:"server"`
	Version            string         `json:"version,omitempty"`
	Timeout            float64        `json:"timeout,omitempty"`
	CallMonitorTimeout float64        `json:"call_monitor_timeout,omitempty"`
	Cast               bool           `json:"cast,omitempty"`
	AtLeastOnce        *bool          `json:"at_least_once,omitempty"`
	// RequestID and GlobalRequestID go into the message context (oslo's
	// _context_* keys), as Ironic sends them; default "req-test" and none.
	RequestID       string `json:"request_id,omitempty"`
	GlobalRequestID string `json:"global_request_id,omitempty"`
}

// RemoteErr is the exception the Python caller saw.
type RemoteErr struct {
	Class   string   `json:"class"`
	Module  string   `json:"module"`
	Message string   `json:"message"`
	Bases   []string `json:"bases"`
}

func (e *RemoteErr) Error() string { return e.Module + "." + e.Class + ": " + e.Message }

// Start launches the REPL against url and waits until it is ready.
func Start(url, exchange, topic, node string) (*Client, error) {
	root, err := agentproc.RepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(Python, filepath.Join(root, "tests/python/agent_repl.py"), url, exchange, topic)
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Client{cmd: cmd, in: in, out: bufio.NewScanner(outp), Node: node}
	c.out.Buffer(make([]byte, 1<<20), 64<<20)
	if !c.out.Scan() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("python oslo client did not start")
	}
	return c, nil
}

// Call sends one request and decodes the result into out (may be nil).
func (c *Client) Call(r Req, out any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Server == "" {
		r.Server = c.Node
	}
	if r.Args == nil {
		r.Args = map[string]any{}
	}
	if r.Timeout == 0 {
		r.Timeout = 20
	}
	b, _ := json.Marshal(r)
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		return err
	}
	done := make(chan bool, 1)
	go func() { done <- c.out.Scan() }()
	select {
	case ok := <-done:
		if !ok {
			return fmt.Errorf("python client died: %v", c.out.Err())
		}
	case <-time.After(time.Duration(r.Timeout+30) * time.Second):
		return fmt.Errorf("python client wedged")
	}
	var ans struct {
		Result json.RawMessage `json:"result"`
		Error  *RemoteErr      `json:"error"`
	}
	if err := json.Unmarshal(c.out.Bytes(), &ans); err != nil {
		return fmt.Errorf("bad answer %q: %w", c.out.Text(), err)
	}
	if ans.Error != nil {
		return ans.Error
	}
	if out != nil {
		return json.Unmarshal(ans.Result, out)
	}
	return nil
}

// Close stops the Python process.
func (c *Client) Close() {
	_ = c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
