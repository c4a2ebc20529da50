package gateway

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// session is what an MCP session id carries, sealed, so that any gateway
// replica can serve the session's next request without shared state or a
// sticky balancer: who it belongs to, where it goes, and the upstream's
// own session id.
type session struct {
	// Principal is the caller the session is bound to.
	Principal string `json:"p"`
	// Deployment is orgs/{org}/registries/{r}/deployments/{server}.
	Deployment string `json:"d"`
	// Version is the version (canary arm) chosen when it started.
	Version string `json:"v"`
	// Upstream is the upstream's session id ("" when it has none).
	Upstream string `json:"u,omitempty"`
	// Protocol is the negotiated protocol version.
	Protocol string `json:"pv,omitempty"`
	// Issued is when it started (Unix seconds).
	Issued int64 `json:"t"`
}

// sealer seals and opens session ids with AES-256-GCM under a key every
// replica derives from the installation's key.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// sessionAD binds a sealed id to its use.
var sessionAD = []byte("pylee.mcp.session.v1")

// maxSessionID bounds what is opened: a longer header is not ours. An
// aggregated session carries a version per server (up to
// maxAggregateServers), so its bound is larger.
const (
	maxSessionID          = 2048
	maxAggregateSessionID = 32 << 10
)

func (s *sealer) seal(v session) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return s.sealBytes(plain)
}

func (s *sealer) sealBytes(plain []byte) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := s.aead.Seal(nonce, nonce, plain, sessionAD)
	return base64.RawURLEncoding.EncodeToString(out), nil
}

var errBadSession = errors.New("unknown or expired session")

// open returns the session of id, refusing anything not sealed by this
// installation or older than maxAge.
func (s *sealer) open(id string, maxAge time.Duration) (session, error) {
	plain, err := s.openBytes(id, maxSessionID)
	if err != nil {
		return session{}, err
	}
	var v session
	if err := json.Unmarshal(plain, &v); err != nil {
		return session{}, errBadSession
	}
	if maxAge > 0 && time.Since(time.Unix(v.Issued, 0)) > maxAge {
		return session{}, errBadSession
	}
	return v, nil
}

func (s *sealer) openBytes(id string, maxLen int) ([]byte, error) {
	if len(id) > maxLen {
		return nil, errBadSession
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return nil, errBadSession
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], sessionAD)
	if err != nil {
		return nil, errBadSession
	}
	return plain, nil
}
