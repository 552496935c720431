// Package ovn starts a private OVS + OVN stack for functional tests and
// benchmarks: ovsdb-server (Open_vSwitch), ovs-vswitchd, the OVN NB and SB
// ovsdb-servers, ovn-northd and ovn-controller, all on unix sockets in one
// temp directory. Every daemon is a child process of the caller, started with
// fixed arguments and stopped by PID.
//
// Two datapaths are offered (see research/ovs-ovn.md §4.2/§4.3):
//   - "dummy" (default): vswitchd runs with --enable-dummy=override
//     --disable-system, so any Interface name gets an ofport; needs no
//     privileges and no kernel support.
//   - "netdev": the userspace datapath on real netdevs (veths); needs root.
package ovn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binaries the stack needs; a missing one makes Start fail (tests must FAIL,
// not skip, when the environment is incomplete).
var binaries = []string{
	"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl",
	"ovn-nbctl", "ovn-sbctl", "ovn-northd", "ovn-controller",
}

// Options tunes the stack.
type Options struct {
	// Dir is where sockets, databases and logs go; it must exist.
	Dir string
	// Datapath is "dummy" (default) or "netdev".
	Datapath string
	// Bridge is the integration bridge (default br-int).
	Bridge string
	// SystemID is the chassis name ovn-controller registers (default dpu-chassis-1).
	SystemID string
	// SSL, when set, adds a pssl: remote on 127.0.0.1 to the Open_vSwitch
	// ovsdb-server with these PEM files (Env.OVSDBSSL); the unix socket stays.
	SSL *SSLFiles
}

// SSLFiles are ovsdb-server's --private-key, --certificate and --ca-cert:
// clients must present a certificate signed by CA.
type SSLFiles struct{ PrivateKey, Certificate, CACert string }

// Env is a running stack.
type Env struct {
	Dir      string
	Bridge   string
	SystemID string
	Datapath string
	// OVSDB is the Open_vSwitch database endpoint, e.g. unix:/tmp/x/db.sock.
	OVSDB string
	// OVSDBSSL is the same database's ssl:127.0.0.1:PORT endpoint when
	// Options.SSL is set, else empty.
	OVSDBSSL string
	ssl      *SSLFiles
	NBDB     string
	SBDB     string

	mu    sync.Mutex
	procs map[string]*proc
	order []string
	// taps the netdev datapath creates in the root namespace; only those
	// that did not exist before Start are removed by Stop.
	taps []string
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// Start brings the whole stack up and waits until ovn-controller has
// registered its chassis in the SB database. On error, whatever was started
// is stopped again.
func Start(ctx context.Context, o Options) (*Env, error) {
	for _, b := range binaries {
		if _, err := exec.LookPath(b); err != nil {
			return nil, fmt.Errorf("testenv/ovn: %s not found (apt-get install openvswitch-switch ovn-central ovn-host): %w", b, err)
		}
	}
	if o.Dir == "" {
		return nil, errors.New("testenv/ovn: Options.Dir is empty")
	}
	if o.Datapath == "" {
		o.Datapath = "dummy"
	}
	if o.Datapath != "dummy" && o.Datapath != "netdev" {
		return nil, fmt.Errorf("testenv/ovn: unknown datapath %q", o.Datapath)
	}
	if o.Bridge == "" {
		o.Bridge = "br-int"
	}
	if o.SystemID == "" {
		o.SystemID = "dpu-chassis-1"
	}
	d := o.Dir
	e := &Env{
		Dir: d, Bridge: o.Bridge, SystemID: o.SystemID, Datapath: o.Datapath,
		OVSDB: "unix:" + filepath.Join(d, "db.sock"),
		NBDB:  "unix:" + filepath.Join(d, "ovnnb_db.sock"),
		SBDB:  "unix:" + filepath.Join(d, "ovnsb_db.sock"),
		procs: map[string]*proc{},
	}
	if o.SSL != nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		e.OVSDBSSL = "ssl:" + l.Addr().String()
		_ = l.Close() // ovsdb-server binds it again; kept across restarts
		e.ssl = o.SSL
	}
	if e.Datapath == "netdev" {
		// vswitchd makes a tap per bridge plus "ovs-netdev"; never adopt (and
		// later delete) a device that belongs to someone else.
		if _, err := net.InterfaceByName(e.Bridge); err == nil {
			return nil, fmt.Errorf("testenv/ovn: a netdev named %s already exists; pick another Options.Bridge", e.Bridge)
		}
		e.taps = []string{e.Bridge}
		if _, err := net.InterfaceByName("ovs-netdev"); err != nil {
			e.taps = append(e.taps, "ovs-netdev")
		}
	}
	if err := e.start(ctx); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) start(ctx context.Context) error {
	d := e.Dir
	for _, db := range []struct{ file, schema string }{
		{"conf.db", "/usr/share/openvswitch/vswitch.ovsschema"},
		{"ovnnb_db.db", "/usr/share/ovn/ovn-nb.ovsschema"},
		{"ovnsb_db.db", "/usr/share/ovn/ovn-sb.ovsschema"},
	} {
		if _, err := e.run(ctx, "ovsdb-tool", "create", filepath.Join(d, db.file), db.schema); err != nil {
			return err
		}
	}
	if err := e.StartOVSDB(ctx); err != nil {
		return err
	}
	for _, n := range []string{"ovnnb_db", "ovnsb_db"} {
		if err := e.spawn(n, "ovsdb-server", filepath.Join(d, n+".db"),
			"--remote=punix:"+filepath.Join(d, n+".sock"),
			"--unixctl="+filepath.Join(d, n+".ctl"), "--no-chdir"); err != nil {
			return err
		}
		if err := waitSocket(ctx, filepath.Join(d, n+".sock")); err != nil {
			return err
		}
	}
	if _, err := e.Vsctl(ctx, "--no-wait", "init"); err != nil {
		return err
	}
	if _, err := e.Nbctl(ctx, "init"); err != nil {
		return err
	}
	if _, err := e.Sbctl(ctx, "init"); err != nil {
		return err
	}
	vsArgs := []string{e.OVSDB, "--unixctl=" + filepath.Join(d, "ovs-vswitchd.ctl"), "--no-chdir"}
	if e.Datapath == "dummy" {
		vsArgs = append([]string{"--enable-dummy=override", "--disable-system"}, vsArgs...)
	}
	if err := e.spawn("ovs-vswitchd", "ovs-vswitchd", vsArgs...); err != nil {
		return err
	}
	if err := e.spawn("ovn-northd", "ovn-northd", "--ovnnb-db="+e.NBDB, "--ovnsb-db="+e.SBDB,
		"--unixctl="+filepath.Join(d, "ovn-northd.ctl"), "--no-chdir"); err != nil {
		return err
	}
	if _, err := e.Vsctl(ctx, "add-br", e.Bridge, "--", "set", "Bridge", e.Bridge,
		"datapath_type="+e.Datapath, "fail-mode=secure", "other-config:disable-in-band=true"); err != nil {
		return err
	}
	if _, err := e.Vsctl(ctx, "set", "Open_vSwitch", ".",
		"external_ids:system-id="+e.SystemID, "external_ids:hostname="+e.SystemID,
		"external_ids:ovn-remote="+e.SBDB, "external_ids:ovn-encap-type=geneve",
		"external_ids:ovn-encap-ip=127.0.0.1", "external_ids:ovn-bridge="+e.Bridge,
		"external_ids:ovn-bridge-datapath-type="+e.Datapath); err != nil {
		return err
	}
	// ovn-controller 23.03 has no --unixctl; its ctl socket lands in OVN_RUNDIR.
	if err := e.spawn("ovn-controller", "ovn-controller", e.OVSDB, "--no-chdir"); err != nil {
		return err
	}
	return e.waitChassis(ctx)
}

func (e *Env) waitChassis(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		out, err := e.Sbctl(ctx, "--bare", "--columns=name", "find", "Chassis", "name="+e.SystemID)
		if err == nil && strings.TrimSpace(out) == e.SystemID {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv/ovn: chassis %s never registered (see %s/ovn-controller.log): %w", e.SystemID, e.Dir, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StartOVSDB (re)starts the Open_vSwitch ovsdb-server on the same database
// file and socket, and waits until it accepts connections.
func (e *Env) StartOVSDB(ctx context.Context) error {
	sock := filepath.Join(e.Dir, "db.sock")
	// A SIGKILLed server leaves its socket behind.
	_ = os.Remove(sock)
	args := []string{filepath.Join(e.Dir, "conf.db"),
		"--remote=punix:" + sock, "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
		"--unixctl=" + filepath.Join(e.Dir, "ovsdb-server.ctl"), "--no-chdir"}
	if e.ssl != nil {
		host, port, _ := net.SplitHostPort(strings.TrimPrefix(e.OVSDBSSL, "ssl:"))
		args = append(args, "--remote=pssl:"+port+":"+host, "--private-key="+e.ssl.PrivateKey,
			"--certificate="+e.ssl.Certificate, "--ca-cert="+e.ssl.CACert)
	}
	if err := e.spawn("ovsdb-server", "ovsdb-server", args...); err != nil {
		return err
	}
	if err := waitSocket(ctx, sock); err != nil {
		return err
	}
	if e.ssl != nil {
		return waitTCP(ctx, strings.TrimPrefix(e.OVSDBSSL, "ssl:"))
	}
	return nil
}

func waitTCP(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		var d net.Dialer
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv/ovn: nothing listens on %s: %w", addr, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// KillOVSDB SIGKILLs the Open_vSwitch ovsdb-server (a crash, not a clean stop).
func (e *Env) KillOVSDB() error {
	return e.stopProc("ovsdb-server", syscall.SIGKILL)
}

// TransactOffline applies a JSON-RPC transaction ("[\"Open_vSwitch\", ops...]")
// directly to the Open_vSwitch database file with ovsdb-tool, while
// ovsdb-server is down: a change no connected client ever sees as an event.
func (e *Env) TransactOffline(ctx context.Context, txn string) (string, error) {
	if e.PID("ovsdb-server") != 0 {
		return "", errors.New("testenv/ovn: TransactOffline needs ovsdb-server stopped (KillOVSDB)")
	}
	return e.run(ctx, "ovsdb-tool", "transact", filepath.Join(e.Dir, "conf.db"), txn)
}

// Stop stops every daemon by PID, newest first, SIGTERM then SIGKILL.
// In netdev mode it also removes the tap devices vswitchd made.
func (e *Env) Stop() {
	e.mu.Lock()
	names := append([]string(nil), e.order...)
	e.mu.Unlock()
	for i := len(names) - 1; i >= 0; i-- {
		_ = e.stopProc(names[i], syscall.SIGTERM)
	}
	for _, dev := range e.taps {
		if _, err := net.InterfaceByName(dev); err == nil {
			_ = exec.Command("ip", "link", "del", dev).Run()
		}
	}
}

func (e *Env) stopProc(name string, sig syscall.Signal) error {
	e.mu.Lock()
	p := e.procs[name]
	delete(e.procs, name)
	for i, n := range e.order {
		if n == name {
			e.order = append(e.order[:i], e.order[i+1:]...)
			break
		}
	}
	e.mu.Unlock()
	if p == nil {
		return fmt.Errorf("testenv/ovn: %s is not running", name)
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	_ = p.log.Close()
	return nil
}

// PID returns the PID of a running daemon ("ovsdb-server", "ovs-vswitchd",
// "ovn-controller", ...), or 0.
func (e *Env) PID(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.procs[name]; p != nil {
		return p.cmd.Process.Pid
	}
	return 0
}

func (e *Env) spawn(name, bin string, args ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.procs[name] != nil {
		return fmt.Errorf("testenv/ovn: %s already running", name)
	}
	logf, err := os.OpenFile(filepath.Join(e.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// Not CommandContext: the daemons must outlive the start-up context.
	cmd := exec.Command(bin, args...)
	cmd.Env = e.env()
	cmd.Dir = e.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a test's Ctrl-C does not reach the daemons half-way.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("testenv/ovn: start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logf}
	go func() { _ = cmd.Wait(); close(p.done) }()
	e.procs[name] = p
	e.order = append(e.order, name)
	return nil
}

func (e *Env) env() []string {
	env := os.Environ()
	for _, k := range []string{"OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR",
		"OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR", "OVN_SYSCONFDIR"} {
		env = append(env, k+"="+e.Dir)
	}
	return env
}

func (e *Env) run(ctx context.Context, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = e.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Vsctl runs ovs-vsctl against the private Open_vSwitch database.
func (e *Env) Vsctl(ctx context.Context, args ...string) (string, error) {
	return e.run(ctx, "ovs-vsctl", append([]string{"--db=" + e.OVSDB, "--timeout=20"}, args...)...)
}

// Nbctl runs ovn-nbctl against the private NB database.
func (e *Env) Nbctl(ctx context.Context, args ...string) (string, error) {
	return e.run(ctx, "ovn-nbctl", append([]string{"--db=" + e.NBDB, "--timeout=20"}, args...)...)
}

// Sbctl runs ovn-sbctl against the private SB database.
func (e *Env) Sbctl(ctx context.Context, args ...string) (string, error) {
	return e.run(ctx, "ovn-sbctl", append([]string{"--db=" + e.SBDB, "--timeout=20"}, args...)...)
}

// ChassisUUID is the SB Chassis row of this stack's ovn-controller.
func (e *Env) ChassisUUID(ctx context.Context) (string, error) {
	out, err := e.Sbctl(ctx, "--bare", "--columns=_uuid", "find", "Chassis", "name="+e.SystemID)
	return strings.TrimSpace(out), err
}

// PortBindingChassis returns the SB Port_Binding.chassis UUID of a logical
// port ("" when unbound).
func (e *Env) PortBindingChassis(ctx context.Context, lport string) (string, error) {
	out, err := e.Sbctl(ctx, "--bare", "--columns=chassis", "find", "Port_Binding", "logical_port="+lport)
	return strings.TrimSpace(out), err
}

func waitSocket(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testenv/ovn: socket %s never appeared: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
