package rpcapi

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/tlsconf"
)

// Host is one broker of a transport URL.
type Host struct {
	Username string
	Password string
	Host     string
	Port     int
}

// TransportURL is a parsed oslo.messaging transport_url. oslo's multi-host
// form (rabbit://u:p@h1:5672,u:p@h2:5672/vhost?opt=v) is not an AMQP URI, so
// it is parsed here and each host is dialled on its own.
type TransportURL struct {
	Scheme string
	Hosts  []Host
	// VHost is the decoded virtual host; empty means the broker default "/".
	VHost string
	Query url.Values
}

const defaultAMQPPort = 5672

// ParseTransportURL parses rabbit:// (or amqp://) transport URLs. With no
// host it means guest:guest@localhost:5672 like oslo's default "rabbit://".
func ParseTransportURL(raw string) (*TransportURL, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("transport_url: missing scheme: %w", errdefs.ErrInvalidArgument)
	}
	switch scheme {
	case "rabbit", "amqp", "kombu+rabbit", "kombu+amqp":
	default:
		return nil, fmt.Errorf("transport_url: unsupported scheme %q: %w", scheme, errdefs.ErrInvalidArgument)
	}
	// An '@' past the host part means a password with an unencoded '/' or
	// '?' split the URL early: refuse it without echoing any of it.
	if i := strings.IndexAny(rest, "/?"); i >= 0 && strings.Contains(rest[i:], "@") {
		return nil, fmt.Errorf("transport_url: '@' after the host part; percent-encode '/', '?' and '@' in user names and passwords: %w", errdefs.ErrInvalidArgument)
	}
	u := &TransportURL{Scheme: scheme, Query: url.Values{}}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q, err := url.ParseQuery(rest[i+1:])
		if err != nil {
			return nil, fmt.Errorf("transport_url: query: %w", errdefs.ErrInvalidArgument)
		}
		u.Query = q
		rest = rest[:i]
	}
	netloc, path, _ := strings.Cut(rest, "/")
	if path != "" {
		vh, err := url.PathUnescape(path)
		if err != nil {
			return nil, fmt.Errorf("transport_url: vhost: %w", errdefs.ErrInvalidArgument)
		}
		u.VHost = vh
	}
	if netloc == "" {
		u.Hosts = []Host{{Username: "guest", Password: "guest", Host: "localhost", Port: defaultAMQPPort}}
		return u, nil
	}
	for _, part := range strings.Split(netloc, ",") {
		h, err := parseHost(part)
		if err != nil {
			return nil, err
		}
		u.Hosts = append(u.Hosts, h)
	}
	return u, nil
}

func parseHost(s string) (Host, error) {
	h := Host{Port: defaultAMQPPort}
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		cred := s[:at]
		s = s[at+1:]
		user, pass, _ := strings.Cut(cred, ":")
		var err error
		if h.Username, err = url.PathUnescape(user); err != nil {
			return h, fmt.Errorf("transport_url: user: %w", errdefs.ErrInvalidArgument)
		}
		if h.Password, err = url.PathUnescape(pass); err != nil {
			// never echo the password back, even in an error
			return h, fmt.Errorf("transport_url: password is not valid percent-encoding: %w", errdefs.ErrInvalidArgument)
		}
	}
	if s == "" {
		return h, fmt.Errorf("transport_url: empty host: %w", errdefs.ErrInvalidArgument)
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") { // [v6]:port
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return h, fmt.Errorf("transport_url: bad IPv6 host: %w", errdefs.ErrInvalidArgument)
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return h, fmt.Errorf("transport_url: bad host: %w", errdefs.ErrInvalidArgument)
			}
			port = rest[1:]
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	if host == "" {
		return h, fmt.Errorf("transport_url: empty host: %w", errdefs.ErrInvalidArgument)
	}
	h.Host = host
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			// not echoed: a mis-split password can land here
			return h, fmt.Errorf("transport_url: bad port: %w", errdefs.ErrInvalidArgument)
		}
		h.Port = p
	}
	return h, nil
}

// Redacted renders the URL with every password replaced by "***".
func (u *TransportURL) Redacted() string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	for i, h := range u.Hosts {
		if i > 0 {
			b.WriteByte(',')
		}
		if h.Username != "" || h.Password != "" {
			b.WriteString(url.PathEscape(h.Username))
			if h.Password != "" {
				b.WriteString(":***")
			}
			b.WriteByte('@')
		}
		b.WriteString(net.JoinHostPort(h.Host, strconv.Itoa(h.Port)))
	}
	b.WriteByte('/')
	b.WriteString(url.PathEscape(u.VHost))
	if len(u.Query) > 0 {
		b.WriteByte('?')
		b.WriteString(u.Query.Encode())
	}
	return b.String()
}

// String is Redacted: a TransportURL is safe to log.
func (u *TransportURL) String() string { return u.Redacted() }

// RedactURL parses raw and returns its redacted form; an unparsable URL
// is shown as "<invalid transport_url>" so a password can never leak.
func RedactURL(raw string) string {
	u, err := ParseTransportURL(raw)
	if err != nil {
		return "<invalid transport_url>"
	}
	return u.Redacted()
}

// ApplyQuery returns base with the URL's query options (named like the
// [oslo_messaging_rabbit] options) applied; query wins, as in oslo.
// Unknown options are returned so the caller can log them.
func (u *TransportURL) ApplyQuery(base config.RabbitOpts) (config.RabbitOpts, []string, error) {
	out := base
	v := reflect.ValueOf(&out).Elem()
	t := v.Type()
	byName := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		if n := t.Field(i).Tag.Get("ini"); n != "" {
			byName[n] = i
		}
	}
	var unknown []string
	for k, vals := range u.Query {
		if len(vals) == 0 {
			continue
		}
		val := vals[len(vals)-1]
		i, ok := byName[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Bool:
			b, err := parseOsloBool(val)
			if err != nil {
				return base, nil, fmt.Errorf("transport_url option %s: %w", k, err)
			}
			f.SetBool(b)
		case reflect.Int:
			n, err := strconv.Atoi(val)
			if err != nil {
				return base, nil, fmt.Errorf("transport_url option %s=%q: %w", k, val, errdefs.ErrInvalidArgument)
			}
			f.SetInt(int64(n))
		case reflect.Float64:
			n, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return base, nil, fmt.Errorf("transport_url option %s=%q: %w", k, val, errdefs.ErrInvalidArgument)
			}
			f.SetFloat(n)
		case reflect.String:
			f.SetString(val)
		}
	}
	return out, unknown, nil
}

func parseOsloBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "t", "true", "on", "y", "yes":
		return true, nil
	case "0", "f", "false", "off", "n", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean: %w", s, errdefs.ErrInvalidArgument)
}

// tlsConfig builds the client TLS config from the ssl_* options. Like oslo,
// the host name is only checked when ssl_enforce_hostname_verification is set;
// the chain is always verified. ssl_version TLSv1_2 pins TLS 1.2 (older
// versions are refused by config validation and here).
func tlsConfig(o config.RabbitOpts, serverName string) (*tls.Config, error) {
	c, err := tlsconf.Client(tlsconf.Files{CA: o.SSLCAFile, Cert: o.SSLCertFile, Key: o.SSLKeyFile,
		CAOpt: "ssl_ca_file", CertOpt: "ssl_cert_file", KeyOpt: "ssl_key_file"}, serverName, o.SSLEnforceHostname)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(o.SSLVersion) {
	case "", "sslv23":
	case "tlsv1_2":
		c.MaxVersion = tls.VersionTLS12
	default:
		return nil, fmt.Errorf("ssl_version %q: want empty, SSLv23 or TLSv1_2: %w", o.SSLVersion, errdefs.ErrInvalidArgument)
	}
	return c, nil
}
