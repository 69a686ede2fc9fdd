package waitroom

// Answer is the body of a waiting-room join or poll (../shared/API.md): the edge renders it, and
// the tests and the load tool read it. Pointers distinguish "not known" (absent) from zero.
type Answer struct {
	State         string `json:"state"`
	Position      *int64 `json:"position"`
	Ahead         *int64 `json:"ahead"`
	ETASeconds    *int64 `json:"eta_seconds"`
	PollAfterMs   *int64 `json:"poll_after_ms"`
	QueueToken    string `json:"queue_token,omitempty"`
	Pass          string `json:"pass,omitempty"`
	PassExpiresAt string `json:"pass_expires_at,omitempty"`
}
