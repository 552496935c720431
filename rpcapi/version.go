package rpcapi

import (
	"strconv"
	"strings"
)

// VersionCompatible is oslo's version_is_compatible: implemented (server)
// version imp accepts requested version req when the majors are equal and
// req's minor (and revision, on equal minors) is not newer. Unparsable
// versions are incompatible.
func VersionCompatible(imp, req string) bool {
	ip, ok1 := splitVersion(imp)
	rp, ok2 := splitVersion(req)
	if !ok1 || !ok2 {
		return false
	}
	if rp[0] != ip[0] || rp[1] > ip[1] {
		return false
	}
	return !(rp[1] == ip[1] && rp[2] > ip[2])
}

func splitVersion(v string) ([3]int, bool) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
