package config

// removedOptions are options an earlier agent read and this one ignores,
// by group and name, each with why it went. Load reports each one set as a
// NoticeRemoved instead of an unknown option, so an N-1 config still loads
// and passes `check`.
func removedOptions() map[string]map[string]string {
	// The agent no longer reads the Ironic API: after each connection to the
	// broker it announces itself and the conductor pushes the node's state
	// (agent/hello). Ironic API credentials could read every node.
	const ironic = "the agent announces itself on the broker and the conductor pushes the state; remove the Ironic credentials from the DPU"
	return map[string]map[string]string{
		"ironic": {
			"api_url": ironic, "auth_type": ironic, "auth_url": ironic, "username": ironic, "password": ironic,
			"project_name": ironic, "user_domain_name": ironic, "project_domain_name": ironic,
		},
	}
}
