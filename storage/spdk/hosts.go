package spdk

import "context"

// SubsystemHost is one allowed host of an nvmf subsystem (newest first in
// nvmf_get_subsystems). DH-HMAC-CHAP key names appear, never secrets.
type SubsystemHost struct {
	NQN            string `json:"nqn"`
	DhchapKey      string `json:"dhchap_key,omitempty"`
	DhchapCtrlrKey string `json:"dhchap_ctrlr_key,omitempty"`
}

// AddHost calls nvmf_subsystem_add_host. SPDK answers a host that is already
// present with a bare -32603 "Internal error" (the same as a malformed NQN),
// so callers read nvmf_get_subsystems first.
func (c *Client) AddHost(ctx context.Context, nqn, host string) error {
	return c.Call(ctx, "nvmf_subsystem_add_host", map[string]string{"nqn": nqn, "host": host}, nil)
}

// RemoveHost calls nvmf_subsystem_remove_host (-32603 when the host is absent).
func (c *Client) RemoveHost(ctx context.Context, nqn, host string) error {
	return c.Call(ctx, "nvmf_subsystem_remove_host", map[string]string{"nqn": nqn, "host": host}, nil)
}

// AllowAnyHost calls nvmf_subsystem_allow_any_host; the host list is kept.
func (c *Client) AllowAnyHost(ctx context.Context, nqn string, allow bool) error {
	return c.Call(ctx, "nvmf_subsystem_allow_any_host", map[string]any{"nqn": nqn, "allow_any_host": allow}, nil)
}
