package nodestate

import "time"

// QuiesceStatus is whether the host's emulated NVMe controllers are paused
// for a block-consistent snapshot (RPC API 1.3: quiesce/unquiesce answers,
// get_status and get_state's observed "quiesce").
type QuiesceStatus struct {
	// Quiesced is true while at least one controller is (or may still be)
	// paused: host I/O to it stalls, nothing is lost.
	Quiesced bool `json:"quiesced"`
	// Supported is false when the DPU driver has no documented pause
	// (quiesce then answers NotSupported).
	Supported bool `json:"supported"`
	// Since is when the pause began; Until is when the agent resumes by
	// itself at the latest (max hold), whatever the caller does.
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
	// Functions are the host functions (pf0, pf0vf3) whose controllers are
	// paused.
	Functions []string `json:"functions,omitempty"`
	// MaxHoldSeconds is the agent's [storage] quiesce_max_hold.
	MaxHoldSeconds float64 `json:"max_hold_seconds"`
	// ResumedAt and ResumeReason describe the last resume: "unquiesce",
	// "hold expired", "agent restart", "agent stop", "quiesce failed".
	ResumedAt    *time.Time `json:"resumed_at,omitempty"`
	ResumeReason string     `json:"resume_reason,omitempty"`
	// LastError is the last failed pause or resume; a failed resume is
	// retried until it succeeds.
	LastError string `json:"last_error,omitempty"`
}
