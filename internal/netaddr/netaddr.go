// Package netaddr has address checks shared by the configuration and the
// drivers.
package netaddr

import (
	"net"
	"strings"
)

// IsLoopback reports whether a listen address only accepts local
// connections ("localhost", 127.0.0.0/8, ::1). Anything else, including
// 0.0.0.0 and a host name, may be reachable from the network.
func IsLoopback(addr string) bool {
	addr = strings.Trim(addr, "[]")
	ip := net.ParseIP(addr)
	return strings.EqualFold(addr, "localhost") || (ip != nil && ip.IsLoopback())
}
