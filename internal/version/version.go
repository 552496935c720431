// Package version reports the agent's build version.
package version

import "runtime/debug"

// Version is set at build time with -ldflags "-X .../internal/version.Version=...".
var Version = ""

// String returns the build version, falling back to the module version.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "0.1.0-dev"
}

// RPCAPIVersion is the agent's RPC API version (oslo compatibility rule:
// same major, server minor >= requested). History (README "RPC API"):
// 1.0 at d75592a; 1.1 adds apply_state's wait argument and the admission
// record in get_state/apply_state answers, and ignores (and logs) fields it
// does not know instead of refusing them; 1.2 adds config_drive.url and
// config_drive.size (the agent fetches the image; data stays accepted);
// 1.3 adds quiesce(hold_seconds=None) and unquiesce() and the "quiesce"
// status in get_status and get_state's observed state.
const RPCAPIVersion = "1.3"
