// Package testpki makes throwaway PEM files for TLS tests: a CA, a server
// certificate for 127.0.0.1/localhost and a client certificate signed by it,
// and a second CA that signed neither.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are the paths of the PEM files written.
type Files struct {
	CA, OtherCA           string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// Write creates the files in dir (mode 0644: test daemons may read them as
// another user). Certificates are valid from an hour ago for a day.
func Write(dir string) (Files, error) {
	var f Files
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	ca, caKey, caDER, err := newCA("ironic-dpu-agent test CA")
	if err != nil {
		return f, err
	}
	_, _, otherDER, err := newCA("some other CA")
	if err != nil {
		return f, err
	}
	srvDER, srvKey, err := leaf(ca, caKey, 2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	if err != nil {
		return f, err
	}
	cliDER, cliKey, err := leaf(ca, caKey, 3, "ironic-dpu-agent", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return f, err
	}
	for _, w := range []struct {
		dst       *string
		name, typ string
		der       []byte
	}{{&f.CA, "ca.pem", "CERTIFICATE", caDER}, {&f.OtherCA, "other-ca.pem", "CERTIFICATE", otherDER},
		{&f.ServerCert, "server.pem", "CERTIFICATE", srvDER}, {&f.ServerKey, "server.key", "EC PRIVATE KEY", srvKey},
		{&f.ClientCert, "client.pem", "CERTIFICATE", cliDER}, {&f.ClientKey, "client.key", "EC PRIVATE KEY", cliKey}} {
		*w.dst = filepath.Join(dir, w.name)
		if err := os.WriteFile(*w.dst, pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der}), 0o644); err != nil {
			return f, err
		}
	}
	return f, nil
}

func newCA(cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
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

// leaf returns a certificate (for 127.0.0.1 and localhost) and its EC key, DER.
func leaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, cn string, usage x509.ExtKeyUsage) (cert, key []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	cert, err = x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(serial),
		Subject: pkix.Name{CommonName: cn}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}, ca, &k.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	key, err = x509.MarshalECPrivateKey(k)
	return cert, key, err
}
