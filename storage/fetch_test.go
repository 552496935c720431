package storage_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
	"github.com/ironic-dpu/ironic-dpu-agent/storage"
	"github.com/ironic-dpu/ironic-dpu-agent/storage/spdk"
)

// The secret parts of the URLs below: a random file name (the conductor's
// HTTP root) and a temp URL signature (Swift). Neither may reach a log line,
// an error or the observed state.
const (
	token = "Q2hhbmdlTWVQbGVhc2UtcmFuZG9tLXRva2Vu"
	sig   = "9f3c2a1b0d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fetchRig is a reconciler over the emulator with its images in dir and
// its log lines observed; edit changes the [storage] options first.
type fetchRig struct {
	*rig
	dir  string
	logs *observer.ObservedLogs
}

func newFetchRig(t *testing.T, edit func(*storage.Settings)) *fetchRig {
	t.Helper()
	emu := newEmu(t)
	dir := filepath.Join(t.TempDir(), "cd")
	o := storageOpts()
	o.ConfigDriveDir, o.ConfigDriveMaxBytes, o.ConfigDriveTimeout = dir, 1<<20, 5*time.Second
	if edit != nil {
		edit(&o)
	}
	core, logs := observer.New(zap.DebugLevel)
	cl := spdk.NewUnix(emu.Socket(), nil)
	t.Cleanup(func() { _ = cl.Close() })
	r, err := storage.New(storage.Options{Client: cl, Storage: o, NodeUUID: nodeUUID, Driver: simDriver(t)(cl), Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	return &fetchRig{rig: &rig{t: t, emu: emu, cl: cl, r: r}, dir: dir, logs: logs}
}

func withURL(d *nodestate.Desired, img []byte, url string) *nodestate.Desired {
	d.ConfigDrive = &nodestate.ConfigDrive{SHA256: shaOf(img), Size: int64(len(img)), URL: url}
	return d
}

// drive is the observed config drive after one reconcile of d.
func (g *fetchRig) drive(d *nodestate.Desired) (*nodestate.ConfigDriveStatus, error) {
	g.t.Helper()
	if err := g.admit(d); err != nil {
		g.t.Fatalf("admission: %v", err)
	}
	err := g.r.Reconcile(context.Background(), d)
	var obs nodestate.Observed
	g.r.Observe(context.Background(), &obs)
	if obs.ConfigDrive == nil {
		g.t.Fatal("no observed config drive")
	}
	return obs.ConfigDrive, err
}

// noSecret fails if a log line, err or s holds the URL's secret parts.
func (g *fetchRig) noSecret(err error, s string) {
	g.t.Helper()
	var all []string
	for _, e := range g.logs.All() {
		all = append(all, e.Message, fmt.Sprint(e.ContextMap()))
	}
	all = append(all, fmt.Sprint(err), s)
	text := strings.Join(all, "\n")
	if strings.Contains(text, token) || strings.Contains(text, sig) {
		g.t.Fatalf("a URL secret leaked:\n%s", text)
	}
}

func (g *fetchRig) noFiles() {
	g.t.Helper()
	if ents, _ := os.ReadDir(g.dir); len(ents) != 0 {
		g.t.Fatalf("files left in the image dir: %v", ents)
	}
}

// The conductor publishes the image (gzip'd or raw) and sends its URL: the
// storage reconcile fetches it, checks size and sha256, stores it padded and
// exposes it, with the volumes beside it; the URL's secret is logged nowhere
// and get_state-facing fields never hold it.
func TestConfigDriveFetchedByURLGzipOrRaw(t *testing.T) {
	img := iso(40000, 0)
	for name, body := range map[string][]byte{"gzip": gz(t, img), "raw": img} {
		t.Run(name, func(t *testing.T) {
			var gets atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/dpu-configdrive/"+token || r.URL.Query().Get("temp_url_sig") != sig {
					http.NotFound(w, r)
					return
				}
				gets.Add(1)
				_, _ = w.Write(body)
			}))
			defer srv.Close()
			g := newFetchRig(t, nil)
			d := withURL(desired(bootVol(), data1()), img, srv.URL+"/dpu-configdrive/"+token+"?temp_url_sig="+sig)
			cd, err := g.drive(d)
			if err != nil || cd.State != nodestate.StateAttached || cd.NSID != 3 {
				t.Fatalf("config drive %+v, reconcile %v", cd, err)
			}
			stored, err := os.ReadFile(filepath.Join(g.dir, shaOf(img)+".iso"))
			if err != nil || len(stored) != 40960 || !bytes.Equal(stored[:40000], img) || !bytes.Equal(stored[40000:], make([]byte, 960)) {
				t.Fatalf("stored image: %d bytes, %v", len(stored), err)
			}
			if ns := g.namespaces(pf0NQN); ns[3] != storage.ConfigDriveBdevName(shaOf(img)) || len(ns) != 3 {
				t.Fatalf("namespaces %v", ns)
			}
			// Held now: the next reconciles do not download it again.
			g.reconcile(d)
			if n := gets.Load(); n != 1 {
				t.Fatalf("%d downloads, want 1", n)
			}
			if len(g.logs.FilterMessage("config drive fetched").All()) != 1 {
				t.Fatal("no 'config drive fetched' line")
			}
			g.noSecret(nil, "")
		})
	}
}

// A body that is not the image the state names is refused, nothing is
// stored, the config drive is in error (the volumes are attached all the
// same) and the next reconcile tries again.
func TestConfigDriveFetchRefusesWrongSizeOrSHA(t *testing.T) {
	img := iso(40000, 0)
	other := iso(40000, 7)
	cases := []struct {
		name string
		body []byte
		size int64
		sha  string
		want string
	}{
		{"shorter than size", img[:39999], 40000, shaOf(img), "the image has 39999 bytes, config_drive.size says 40000"},
		{"longer than size", append(append([]byte{}, img...), 0), 40000, shaOf(img), "larger than config_drive.size 40000"},
		{"gzip longer than size", gz(t, append(append([]byte{}, img...), 0)), 40000, shaOf(img), "larger than config_drive.size 40000"},
		{"sha mismatch", other, 40000, shaOf(img), "sha256 is " + shaOf(other)},
		{"gzip sha mismatch", gz(t, other), 40000, shaOf(img), "sha256 is " + shaOf(other)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var serveGood atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if serveGood.Load() {
					_, _ = w.Write(img)
					return
				}
				_, _ = w.Write(c.body)
			}))
			defer srv.Close()
			g := newFetchRig(t, nil)
			d := desired(bootVol(), data1())
			d.ConfigDrive = &nodestate.ConfigDrive{SHA256: c.sha, Size: c.size, URL: srv.URL + "/x/" + token}
			cd, err := g.drive(d)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("reconcile error %v, want %q", err, c.want)
			}
			if cd.State != nodestate.StateError || !strings.Contains(cd.LastError, c.want) || cd.NSID != 0 {
				t.Fatalf("observed %+v", cd)
			}
			g.noFiles()
			if ns := g.namespaces(pf0NQN); len(ns) != 2 {
				t.Fatalf("volumes not exposed beside the failed config drive: %v", ns)
			}
			g.noSecret(err, cd.LastError)
			serveGood.Store(true) // the server is fixed: the retry takes it
			if c.sha == shaOf(img) {
				g.reconcile(d)
				if ns := g.namespaces(pf0NQN); len(ns) != 3 {
					t.Fatalf("retry did not expose it: %v", ns)
				}
			}
		})
	}
}

// A server that streams without end is cut off just past the image's size:
// the agent neither reads nor stores it all, and a Content-Length over the
// bound is refused before the body is read.
func TestConfigDriveFetchStopsAnOversizeStream(t *testing.T) {
	img := iso(64<<10, 0)
	const announced = 1 << 30
	var written atomic.Int64
	quit := make(chan struct{}) // ends the stream, so srv.Close returns even if the agent never hangs up
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("announce") != "" {
			w.Header().Set("Content-Length", fmt.Sprint(announced))
		}
		chunk := make([]byte, 32<<10)
		for {
			select {
			case <-quit:
				return
			default:
			}
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	defer close(quit)
	for _, announce := range []bool{false, true} {
		written.Store(0)
		// No fetch timeout to end a read of the whole stream: only the size
		// bound can end the reconcile (a regression hangs the watchdog).
		g := newFetchRig(t, func(s *storage.Settings) { s.ConfigDriveTimeout = time.Hour })
		url := srv.URL + "/" + token
		want := "larger than config_drive.size 65536"
		if announce {
			url += "?announce=1"
			want = fmt.Sprintf("announces %d bytes", announced)
		}
		d := withURL(desired(bootVol()), img, url)
		if err := g.admit(d); err != nil {
			t.Fatalf("admission: %v", err)
		}
		var err error
		var obs nodestate.Observed
		poll.Returns(t, fmt.Sprintf("announce=%v: the reconcile", announce), func() {
			err = g.r.Reconcile(context.Background(), d)
			g.r.Observe(context.Background(), &obs)
		})
		cd := obs.ConfigDrive
		if cd == nil {
			t.Fatal("no observed config drive")
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) || cd.State != nodestate.StateError {
			t.Fatalf("announce=%v: %v, %+v; want %q", announce, err, cd, want)
		}
		// What the server got out before the agent hung up: socket buffers,
		// never the whole stream.
		time.Sleep(100 * time.Millisecond)
		if w := written.Load(); w > 32<<20 {
			t.Fatalf("announce=%v: the server wrote %d bytes before the agent stopped reading", announce, w)
		}
		g.noFiles()
		g.noSecret(err, cd.LastError)
	}
}

func writeCA(t *testing.T, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// otherCA is a self-signed CA that signed nothing the servers use.
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not the conductor's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// https: the server's certificate must chain to [storage]
// config_drive_ca_file (system roots when empty); another CA is refused and
// nothing is stored.
func TestConfigDriveFetchHTTPSWithCAFile(t *testing.T) {
	img := iso(4096, 3)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(gz(t, img)) }))
	defer srv.Close()
	url := srv.URL + "/dpu-configdrive/" + token

	g := newFetchRig(t, func(o *storage.Settings) { o.ConfigDriveCAFile = writeCA(t, srv.Certificate().Raw) })
	if cd, err := g.drive(withURL(desired(bootVol()), img, url)); err != nil || cd.State != nodestate.StateAttached {
		t.Fatalf("with the server's CA: %+v %v", cd, err)
	}

	for name, ca := range map[string]string{"another CA": writeCA(t, otherCA(t)), "system roots": ""} {
		g := newFetchRig(t, func(o *storage.Settings) { o.ConfigDriveCAFile = ca })
		cd, err := g.drive(withURL(desired(bootVol()), img, url))
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") || cd.State != nodestate.StateError {
			t.Fatalf("%s: %v %+v, want a certificate error", name, err, cd)
		}
		g.noFiles()
		g.noSecret(err, cd.LastError)
	}

	// A CA file that is not PEM stops the reconciler from being built.
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := storageOpts()
	o.ConfigDriveCAFile = bad
	if err := storage.ValidateConfigDriveOpts(o); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "config_drive_ca_file") {
		t.Fatalf("bad CA file: %v", err)
	}
}

// Failures that are not the image's fault (404, a hung server past the
// deadline, refused connection) are ErrUnavailable, name the host only, and
// are retried by the next reconcile.
func TestConfigDriveFetchFailuresNameTheHostOnly(t *testing.T) {
	img := iso(4096, 0)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/hang/"):
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case strings.HasPrefix(r.URL.Path, "/redirect/"):
			http.Redirect(w, r, "/ok/"+token, http.StatusFound)
		case strings.HasPrefix(r.URL.Path, "/ok/"):
			_, _ = w.Write(img)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	defer close(release)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	cases := map[string]struct{ url, want string }{
		"404":      {srv.URL + "/gone/" + token + "?temp_url_sig=" + sig, "HTTP 404"},
		"hang":     {srv.URL + "/hang/" + token + "?temp_url_sig=" + sig, "Client.Timeout"},
		"redirect": {srv.URL + "/redirect/" + token + "?temp_url_sig=" + sig, "redirects are not followed"},
		"refused":  {closedURL + "/" + token + "?temp_url_sig=" + sig, "refused"},
	}
	for name, c := range cases {
		g := newFetchRig(t, func(o *storage.Settings) { o.ConfigDriveTimeout = 500 * time.Millisecond })
		cd, err := g.drive(withURL(desired(bootVol()), img, c.url))
		if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), c.want) || cd.State != nodestate.StateError {
			t.Fatalf("%s: %v %+v, want %q", name, err, cd, c.want)
		}
		host := strings.TrimPrefix(c.url, "http://")
		host = host[:strings.Index(host, "/")]
		if !strings.Contains(cd.LastError, "http://"+host+"/...") {
			t.Fatalf("%s: last_error %q does not name the host", name, cd.LastError)
		}
		g.noFiles()
		g.noSecret(err, cd.LastError)
	}
}
