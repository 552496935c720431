package config

import (
	"fmt"
	"sort"

	"gopkg.in/ini.v1"
)

// removedOptions are options an older agent read and this one ignores. They
// stay accepted so that an N-1 config still loads; each one found is a
// warning. The value says why it went.
func removedOptions() map[string]map[string]string {
	// The agent no longer reads the Ironic API: after a restart it announces
	// itself on the broker and the conductor pushes the node's state
	// (agent/hello). Ironic API credentials could read every node.
	ironic := "the agent announces itself on the broker and the conductor pushes the state; remove the Ironic credentials from the DPU"
	return map[string]map[string]string{
		"ironic": {
			"api_url": ironic, "auth_type": ironic, "auth_url": ironic, "username": ironic, "password": ironic,
			"project_name": ironic, "user_domain_name": ironic, "project_domain_name": ironic,
		},
	}
}

// removedIn lists a warning for each removed option f sets, in a stable
// order. Only names are reported, never values (password is one of them).
func removedIn(f *ini.File) []string {
	var out []string
	for group, keys := range removedOptions() {
		sec, err := f.GetSection(group)
		if err != nil {
			continue
		}
		for name, why := range keys {
			if sec.HasKey(name) {
				out = append(out, fmt.Sprintf("[%s] %s is ignored: no longer used (%s)", group, name, why))
			}
		}
	}
	sort.Strings(out)
	return out
}
