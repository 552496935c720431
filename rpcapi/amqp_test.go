package rpcapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

func TestBlockStatePausesPublishing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b blockState
		if err := b.wait(context.Background()); err != nil {
			t.Fatalf("not blocked: %v", err)
		}
		b.set(true)
		released := make(chan error, 1)
		go func() { released <- b.wait(context.Background()) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		select {
		case <-released:
			t.Fatal("publisher went through while the broker is blocked")
		default:
		}
		b.set(false)
		synctest.Wait()
		if err := <-released; err != nil {
			t.Fatalf("unblock: %v", err)
		}
		b.set(true)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := b.wait(ctx); !errors.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("blocked past deadline: %v", err)
		}
	})
}

func TestQueueArgs(t *testing.T) {
	o := config.Defaults().Rabbit
	if len(serverQueueArgs(o)) != 0 || durable(o) {
		t.Errorf("defaults: %v durable=%v", serverQueueArgs(o), durable(o))
	}
	if a := transientQueueArgs(o); a["x-expires"] != int32(1800000) || len(a) != 1 {
		t.Errorf("transient: %v", a)
	}
	o.RabbitQuorumQueue, o.RabbitHAQueues, o.RabbitTransientQueuesTTL = true, true, 0
	if a := serverQueueArgs(o); a["x-queue-type"] != "quorum" || a["x-ha-policy"] != "all" || !durable(o) {
		t.Errorf("quorum+ha: %v", a)
	}
	if a := transientQueueArgs(o); a["x-queue-type"] != nil || a["x-expires"] != nil || a["x-ha-policy"] != "all" {
		t.Errorf("transient with ttl 0: %v", a)
	}
	p := publishing([]byte("{}"), 4*time.Second)
	if p.ContentType != "application/json" || p.ContentEncoding != "utf-8" || p.DeliveryMode != amqp.Persistent || p.Expiration != "4000" {
		t.Errorf("publishing: %+v", p)
	}
	if publishing(nil, 0).Expiration != "" {
		t.Error("casts and replies have no expiration")
	}
}

// tlsPair makes a CA and a server certificate for "broker.example" signed by it.
func tlsPair(t *testing.T, dir, name string) (caFile string, server tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker.example"}, DNSNames: []string{"broker.example"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, name+".pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// handshake dials a TLS listener serving cert with the client config of o.
func handshake(t *testing.T, o config.RabbitOpts, cert tls.Certificate) error {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // ends after one connection
		c, err := l.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	cfg, err := tlsConfig(o, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), cfg)
	if err == nil {
		_ = c.Close()
	}
	return err
}

func TestTLSVerification(t *testing.T) {
	dir := t.TempDir()
	caFile, cert := tlsPair(t, dir, "good")
	otherCA, _ := tlsPair(t, dir, "other")
	o := config.Defaults().Rabbit
	o.SSL, o.SSLCAFile = true, caFile
	// like oslo: chain verified, host name (127.0.0.1 vs broker.example) not, by default
	if err := handshake(t, o, cert); err != nil {
		t.Errorf("trusted CA, hostname not enforced: %v", err)
	}
	o.SSLEnforceHostname = true
	if err := handshake(t, o, cert); err == nil {
		t.Error("hostname mismatch accepted with ssl_enforce_hostname_verification")
	}
	o.SSLEnforceHostname, o.SSLCAFile = false, otherCA
	if err := handshake(t, o, cert); err == nil {
		t.Error("certificate from an untrusted CA accepted")
	}
	o.SSLCAFile = filepath.Join(dir, "missing.pem")
	if _, err := tlsConfig(o, "h"); err == nil {
		t.Error("missing CA file accepted")
	}
}

// ssl_version (oslo's kombu_ssl_version) pins TLS 1.2 with TLSv1_2; older
// protocols are refused rather than silently upgraded.
func TestSSLVersion(t *testing.T) {
	o := config.Defaults().Rabbit
	for v, maxV := range map[string]uint16{"": 0, "SSLv23": 0, "TLSv1_2": tls.VersionTLS12, "tlsv1_2": tls.VersionTLS12} {
		o.SSLVersion = v
		c, err := tlsConfig(o, "h")
		if err != nil || c.MaxVersion != maxV || c.MinVersion != tls.VersionTLS12 {
			t.Errorf("ssl_version %q: %+v %v", v, c, err)
		}
	}
	for _, v := range []string{"TLSv1", "TLSv1_1", "SSLv3", "TLSv1_3"} {
		o.SSLVersion = v
		if _, err := tlsConfig(o, "h"); err == nil {
			t.Errorf("ssl_version %q accepted", v)
		}
	}
}
