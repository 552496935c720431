// Package tlsconf builds the client TLS configurations of the agent's two
// TLS peers, the broker and OVSDB, from PEM file options.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Files names PEM files; an empty name is unset. The option names of the
// caller go into errors so an operator knows which line to fix.
type Files struct {
	CA, Cert, Key          string
	CAOpt, CertOpt, KeyOpt string
}

// Client returns a TLS 1.2+ client config. CA replaces the system roots when
// set; Cert and Key are presented when set. With verifyHost false only the
// chain is verified, not the host name: what oslo.messaging does by default
// and what OVS always does.
func Client(f Files, serverName string, verifyHost bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.CAOpt, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s %s: no certificates: %w", f.CAOpt, f.CA, errdefs.ErrInvalidArgument)
		}
		c.RootCAs = pool
	}
	if f.Cert != "" || f.Key != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", f.CertOpt, f.KeyOpt, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if !verifyHost {
		roots := c.RootCAs
		c.InsecureSkipVerify = true // replaced by the chain-only check below
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("peer sent no certificate: %w", errdefs.ErrUnavailable)
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return c, nil
}

// OVSDB returns the TLS config for an OVSDB endpoint, or nil when it is not
// ssl:. Like ovn-controller with --private-key/--certificate/--ca-cert, the
// client always presents its certificate and checks the server's chain to
// the CA, not its host name; the files are Neutron's [ovs] ssl_* options.
func OVSDB(endpoint, key, cert, ca string) (*tls.Config, error) {
	if !strings.HasPrefix(endpoint, "ssl:") {
		return nil, nil
	}
	if key == "" || cert == "" || ca == "" {
		return nil, fmt.Errorf("[ovs] ovsdb_connection %s needs ssl_key_file, ssl_cert_file and ssl_ca_cert_file: %w", endpoint, errdefs.ErrInvalidArgument)
	}
	return Client(Files{CA: ca, Cert: cert, Key: key,
		CAOpt: "[ovs] ssl_ca_cert_file", CertOpt: "[ovs] ssl_cert_file", KeyOpt: "[ovs] ssl_key_file"}, "", false)
}
