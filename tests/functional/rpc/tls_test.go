//go:build functional

package rpc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// tlsFiles are the broker's certificate, its key, the CA that signed it, and
// a second CA that did not.
var tlsFiles struct{ cert, key, ca, otherCA string }

// writeTLSFiles makes a throwaway CA and a server certificate for 127.0.0.1.
func writeTLSFiles(dir string) (f struct{ cert, key, ca, otherCA string }, err error) {
	if err = os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	write := func(name, typ string, der []byte) (string, error) {
		p := filepath.Join(dir, name)
		// The broker runs as root here but reads as itself; 0644 keeps it simple.
		return p, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644)
	}
	newCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, nil, err
		}
		tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
		if err != nil {
			return nil, nil, nil, err
		}
		cert, err := x509.ParseCertificate(der)
		return cert, key, der, err
	}
	ca, caKey, caDER, err := newCA("ironic-dpu-agent test CA")
	if err != nil {
		return f, err
	}
	_, _, otherDER, err := newCA("some other CA")
	if err != nil {
		return f, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "127.0.0.1"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		dst       *string
		name, typ string
		der       []byte
	}{{&f.ca, "ca.pem", "CERTIFICATE", caDER}, {&f.otherCA, "other-ca.pem", "CERTIFICATE", otherDER},
		{&f.cert, "server.pem", "CERTIFICATE", srvDER}, {&f.key, "server.key", "EC PRIVATE KEY", keyDER}} {
		if *w.dst, err = write(w.name, w.typ, w.der); err != nil {
			return f, err
		}
	}
	return f, nil
}

func tlsURL() string { return fmt.Sprintf("rabbit://guest:guest@127.0.0.1:%d/", broker.TLSPort()) }

// The Go server talks to the broker over TLS, verifying it against
// ssl_ca_file, and Python oslo.messaging calls it over TLS too.
func TestTLSWithRealBrokerAndOslo(t *testing.T) {
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("echo", func(_ context.Context, req *rpcapi.Request) (any, error) { return req.Args, nil })
	opts := fastRetry()
	opts.SSL = true
	opts.SSLCAFile = tlsFiles.ca
	startServer(t, rpcapi.ServerConfig{URL: tlsURL(), Rabbit: opts, Dispatcher: d,
		Target: rpcapi.Target{Exchange: "ironic_dpu", Topic: topic, Server: "node-tls"}})

	py, err := osloclient.Start(tlsURL()+"?ssl=1&ssl_ca_file="+tlsFiles.ca, "ironic_dpu", topic, "node-tls")
	if err != nil {
		t.Fatal(err)
	}
	defer py.Close()
	var got map[string]any
	if err := py.Call(osloclient.Req{Method: "echo", Args: map[string]any{"over": "tls"}}, &got); err != nil {
		t.Fatal(err)
	}
	if got["over"] != "tls" {
		t.Fatalf("echo over TLS: %v", got)
	}

	// And the Go client over TLS.
	cl, err := rpcapi.NewClient(context.Background(), rpcapi.ClientConfig{URL: tlsURL(), Rabbit: opts, Exchange: "ironic_dpu"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	res, err := cl.Call(context.Background(), rpcapi.Target{Exchange: "ironic_dpu", Topic: topic, Server: "node-tls"}, "echo",
		map[string]any{"n": 1}, rpcapi.CallOptions{Timeout: 10 * time.Second})
	var m map[string]any
	if err != nil || json.Unmarshal(res, &m) != nil || m["n"] != float64(1) {
		t.Fatalf("go client over TLS: %s %v", res, err)
	}
}

// A broker certificate from an unknown CA is refused: the server never
// connects, keeps retrying, and says why.
func TestTLSRefusesUnknownCA(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	opts := fastRetry()
	opts.SSL = true
	opts.SSLCAFile = tlsFiles.otherCA
	s, err := rpcapi.NewServer(rpcapi.ServerConfig{URL: tlsURL(), Rabbit: opts, Dispatcher: rpcapi.NewDispatcher("1.0", ""),
		Target: rpcapi.Target{Topic: topic, Server: "node-badca"}, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-ctx.Done()
	<-done
	if s.Connected() {
		t.Fatal("connected to a broker whose certificate no trusted CA signed")
	}
	found := false
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if strings.Contains(fmt.Sprint(f.Interface, f.String), "certificate") {
				found = true
			}
		}
		if strings.Contains(e.Message, "certificate") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no certificate error logged; logs: %v", logs.All())
	}
}
