package tlsconf_test

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/testpki"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/tlsconf"
)

func TestOVSDB(t *testing.T) {
	pki, err := testpki.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tlsconf.OVSDB("tcp:192.0.2.1:6640", "", "", ""); c != nil || err != nil {
		t.Fatalf("tcp: needs no TLS: %v %v", c, err)
	}
	if _, err := tlsconf.OVSDB("ssl:192.0.2.1:6640", pki.ClientKey, pki.ClientCert, ""); err == nil || !strings.Contains(err.Error(), "ssl_ca_cert_file") {
		t.Fatalf("ssl: without a CA: %v", err)
	}
	if _, err := tlsconf.OVSDB("ssl:192.0.2.1:6640", pki.ClientKey, pki.ClientCert, filepath.Join(t.TempDir(), "none.pem")); err == nil ||
		!strings.Contains(err.Error(), "[ovs] ssl_ca_cert_file") {
		t.Fatalf("missing CA file: %v", err)
	}
	if _, err := tlsconf.OVSDB("ssl:192.0.2.1:6640", pki.ServerKey, pki.ClientCert, pki.CA); err == nil || !strings.Contains(err.Error(), "[ovs] ssl_cert_file") {
		t.Fatalf("key of another certificate: %v", err)
	}
	c, err := tlsconf.OVSDB("ssl:192.0.2.1:6640", pki.ClientKey, pki.ClientCert, pki.CA)
	if err != nil || len(c.Certificates) != 1 || c.RootCAs == nil || c.MinVersion != tls.VersionTLS12 {
		t.Fatalf("config %+v %v", c, err)
	}
}
