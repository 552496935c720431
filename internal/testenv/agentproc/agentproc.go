// Package agentproc builds the real ironic-dpu-agent binary and runs it as a
// separate process for functional tests, stopped by PID.
package agentproc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RepoRoot finds the module root from the current directory.
func RepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module")
	}
	return filepath.Dir(mod), nil
}

// Build compiles ./cmd/<name> into dir and returns the binary's path.
func Build(dir, name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// BuildInTemp makes a temporary directory named after prefix and builds the
// agent into it: what every functional suite's TestMain starts with. The
// caller removes dir (also when err is set and dir is not empty).
func BuildInTemp(prefix string) (dir, bin string, err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", err
	}
	bin, err = Build(dir, "ironic-dpu-agent")
	return dir, bin, err
}

// Proc is one running agent.
type Proc struct {
	Bin        string
	ConfigFile string
	LogFile    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// WriteConfig writes an INI file from sections ("DEFAULT" -> key -> value).
func WriteConfig(path string, sections map[string]map[string]string) error {
	var b bytes.Buffer
	order := []string{"DEFAULT"}
	for s := range sections {
		if s != "DEFAULT" {
			order = append(order, s)
		}
	}
	for _, s := range order {
		kv, ok := sections[s]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "[%s]\n", s)
		for k, v := range kv {
			fmt.Fprintf(&b, "%s = %s\n", k, v)
		}
		b.WriteString("\n")
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// Start runs `bin serve --config-file cfg`, logging to logFile (appended).
func Start(bin, cfg, logFile string) (*Proc, error) {
	p := &Proc{Bin: bin, ConfigFile: cfg, LogFile: logFile}
	return p, p.Start()
}

// Start (re)starts the process.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("agent already running (pid %d)", p.cmd.Process.Pid)
	}
	lf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Bin, "serve", "--config-file", p.ConfigFile)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); lf.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// Stop sends sig (SIGTERM for a clean stop, SIGKILL for a crash) and waits.
func (p *Proc) Stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PID is the running process's PID, 0 when stopped.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Log returns the process's log so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogFile)
	return string(b)
}

// WaitLog waits until the log contains s.
func (p *Proc) WaitLog(ctx context.Context, s string) error {
	for {
		if strings.Contains(p.Log(), s) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("log never showed %q: %w", s, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
