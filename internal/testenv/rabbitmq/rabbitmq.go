// Package rabbitmq starts a private RabbitMQ broker for functional tests:
// own HOME, config, mnesia, ports and epmd, listening on 127.0.0.1 only,
// stopped by PID (and its epmd by port), never touching a system broker.
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/testpki"
)

// BinDir holds the real broker scripts (the /usr/sbin wrappers su to rabbitmq).
const BinDir = "/usr/lib/rabbitmq/bin"

// Broker is one private broker instance.
type Broker struct {
	Dir  string
	Port int // AMQP; Port+1 distribution, Port+2 epmd, Port+10..20 CLI
	// EpmdPort is Port+2, or the first node's for every node of a Cluster
	// (nodes find each other through one epmd).
	EpmdPort int
	// sharedEpmd: the epmd belongs to the cluster, which stops it last.
	sharedEpmd bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
}

// New prepares a broker under dir on a free port triplet without starting it.
func New(dir string) (*Broker, error) {
	for _, bin := range []string{filepath.Join(BinDir, "rabbitmq-server"), filepath.Join(BinDir, "rabbitmqctl")} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("rabbitmq not installed (apt-get install rabbitmq-server): %w", err)
		}
	}
	if _, err := exec.LookPath("epmd"); err != nil {
		return nil, fmt.Errorf("epmd not found: %w", err)
	}
	port, err := freeBase()
	if err != nil {
		return nil, err
	}
	b := &Broker{Dir: dir, Port: port, EpmdPort: port + 2}
	for _, d := range []string{"home", "mnesia", "log", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/rabbitmq-env.conf": "",
		"etc/enabled_plugins":   "[].\n",
		"etc/rabbitmq.conf": fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nloopback_users.guest = true\n"+
			"log.console = false\nlog.file.level = info\ndisk_free_limit.absolute = 50MB\n", port),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Start creates a broker in dir and waits until AMQP accepts connections.
func Start(ctx context.Context, dir string) (*Broker, error) {
	b, err := New(dir)
	if err != nil {
		return nil, err
	}
	if err := b.Start(ctx); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

// freeBase finds P such that P, P+1, P+2 and P+10..P+20 are free on loopback,
// away from the CLI's default 35672..35682 range.
func freeBase() (int, error) {
	for range 200 {
		p := 40000 + rand.IntN(20000)
		ok := true
		for _, q := range []int{p, p + 1, p + 2, p + 3, p + 10, p + 20} {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				ok = false
				break
			}
			_ = l.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("no free port range for rabbitmq")
}

// EnableTLS adds an AMQPS listener on Port+3 with the given PEM files (the
// broker does not ask for client certificates). Call it before Start.
func (b *Broker) EnableTLS(certFile, keyFile, caFile string) error {
	f, err := os.OpenFile(filepath.Join(b.Dir, "etc/rabbitmq.conf"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "listeners.ssl.default = 127.0.0.1:%d\nssl_options.cacertfile = %s\n"+
		"ssl_options.certfile = %s\nssl_options.keyfile = %s\nssl_options.verify = verify_none\n"+
		"ssl_options.fail_if_no_peer_cert = false\n", b.TLSPort(), caFile, certFile, keyFile)
	return err
}

// TLSPort is the AMQPS port EnableTLS configures.
func (b *Broker) TLSPort() int { return b.Port + 3 }

// URL is the transport_url of this broker.
func (b *Broker) URL() string { return fmt.Sprintf("rabbit://guest:guest@127.0.0.1:%d/", b.Port) }

// Addr is host:port of the AMQP listener.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.Port) }

// Node is the Erlang node name, for rabbitmqctl -n.
func (b *Broker) Node() string { return fmt.Sprintf("rmqtest%d@localhost", b.Port) }

// Env is the environment for the broker and its CLI tools.
func (b *Broker) Env() []string {
	d := b.Dir
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8",
		"HOME=" + filepath.Join(d, "home"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(d, "etc/rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(d, "etc/rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(d, "etc/enabled_plugins"),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(d, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(d, "log"),
		"RABBITMQ_PID_FILE=" + filepath.Join(d, "rabbit.pid"),
		"RABBITMQ_NODENAME=" + b.Node(),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(b.Port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(b.Port+1),
		"ERL_EPMD_PORT=" + strconv.Itoa(b.EpmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"RABBITMQ_CTL_DIST_PORT_MIN=" + strconv.Itoa(b.Port+10),
		"RABBITMQ_CTL_DIST_PORT_MAX=" + strconv.Itoa(b.Port+20),
	}
	return env
}

// Start (re)starts the broker process and waits for AMQP.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		return errors.New("rabbitmq: already running")
	}
	logf, err := os.OpenFile(filepath.Join(b.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(BinDir, "rabbitmq-server"))
	cmd.Env = b.Env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start rabbitmq-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(done) }() // reaper, ends with the process
	b.cmd, b.done = cmd, done
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("rabbitmq exited during start-up; see %s/log", b.Dir)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rabbitmq did not listen on %s within 60 s", b.Addr())
		}
	}
}

// Stop terminates the broker (SIGTERM to its PID, SIGKILL after 15 s) and
// its private epmd (by port). Safe to call twice.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil {
		pid := b.cmd.Process.Pid
		if raw, err := os.ReadFile(filepath.Join(b.Dir, "rabbit.pid")); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && p > 0 {
				pid = p // beam.smp's own PID
			}
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) // our own process group
			<-b.done
		}
		// beam's helpers (erl_child_setup) share the process group
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		b.cmd = nil
		_ = os.Remove(filepath.Join(b.Dir, "rabbit.pid"))
	}
	if !b.sharedEpmd {
		b.killEpmd()
	}
}

func (b *Broker) killEpmd() {
	kill := exec.Command("epmd", "-port", strconv.Itoa(b.EpmdPort), "-kill")
	kill.Env = b.Env()
	_ = kill.Run()
}

// Restart stops and starts the broker on the same ports and data dir.
func (b *Broker) Restart(ctx context.Context) error {
	b.Stop()
	return b.Start(ctx)
}

// Ctl runs rabbitmqctl against this broker (fixed args from test code).
func (b *Broker) Ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(BinDir, "rabbitmqctl"), append([]string{"-q", "-n", b.Node()}, args...)...)
	cmd.Env = b.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// StartTLS is Start with an AMQPS listener (TLSPort) too, its certificate
// from a fresh testpki under dir/pki; it returns the PEM files.
func StartTLS(ctx context.Context, dir string) (*Broker, testpki.Files, error) {
	b, err := New(dir)
	if err != nil {
		return nil, testpki.Files{}, err
	}
	pki, err := testpki.Write(filepath.Join(dir, "pki"))
	if err == nil {
		err = b.EnableTLS(pki.ServerCert, pki.ServerKey, pki.CA)
	}
	if err == nil {
		err = b.Start(ctx)
	}
	if err != nil {
		b.Stop()
		return nil, testpki.Files{}, err
	}
	return b, pki, nil
}
