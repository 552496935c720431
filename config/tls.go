package config

import (
	"fmt"
	"slices"
	"strings"
)

// validateTLS checks the broker's and OVSDB's TLS options: what would
// otherwise fail at the first connect, or connect with less than asked for.
func (c *Config) validateTLS() []error {
	var errs []error
	switch strings.ToLower(c.Rabbit.SSLVersion) {
	case "", "sslv23", "tlsv1_2":
	case "tlsv1", "tlsv1_1", "sslv2", "sslv3":
		errs = append(errs, fmt.Errorf("[oslo_messaging_rabbit] ssl_version %s: the agent speaks TLS 1.2 or newer only (use TLSv1_2, SSLv23 or leave it empty)", c.Rabbit.SSLVersion))
	default:
		errs = append(errs, fmt.Errorf("[oslo_messaging_rabbit] ssl_version %q is not one of oslo's (SSLv23, TLSv1_2)", c.Rabbit.SSLVersion))
	}
	o := c.OVS
	if strings.HasPrefix(o.OVSDBConnection, "ssl:") {
		var missing []string
		for name, v := range map[string]string{"ssl_key_file": o.SSLKeyFile, "ssl_cert_file": o.SSLCertFile, "ssl_ca_cert_file": o.SSLCACertFile} {
			if v == "" {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			errs = append(errs, fmt.Errorf("[ovs] ovsdb_connection %s needs %s (OVSDB over SSL always authenticates both ends)", o.OVSDBConnection, strings.Join(missing, ", ")))
		}
	}
	return errs
}
