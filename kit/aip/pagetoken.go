package aip

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
)

// PageTokens issues and reads opaque page tokens. A token carries the
// position after the last item of a page and a digest of the query it
// belongs to, signed with HMAC-SHA256: a client can neither edit the
// position nor reuse a token with a different filter or collection.
type PageTokens struct {
	key []byte
}

// ErrBadPageToken is returned for a token that was tampered with, is
// malformed, or belongs to another query.
var ErrBadPageToken = errors.New("page_token is invalid or belongs to a different query")

const (
	pageTokenVersion = 1
	digestLen        = 16
	macLen           = 16
)

// NewPageTokens returns a codec keyed with key; every replica of a service
// must share the key so a token works on any of them.
func NewPageTokens(key []byte) *PageTokens {
	k := make([]byte, len(key))
	copy(k, key)
	return &PageTokens{key: k}
}

// Query identifies a list query: the collection and every parameter that
// shapes the result except page_size and page_token.
func Query(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefix each part so ("ab","c") and ("a","bc") differ.
		var n [4]byte
		l := len(p)
		n[0], n[1], n[2], n[3] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return h.Sum(nil)[:digestLen]
}

// Encode returns the token for resuming query after cursor.
func (t *PageTokens) Encode(query []byte, cursor string) string {
	payload := make([]byte, 0, 1+digestLen+len(cursor)+macLen)
	payload = append(payload, pageTokenVersion)
	payload = append(payload, query[:digestLen]...)
	payload = append(payload, cursor...)
	payload = append(payload, t.mac(payload)...)
	return base64.RawURLEncoding.EncodeToString(payload)
}

// Decode returns the cursor of token if it was issued by this codec for
// query. An empty token decodes to an empty cursor (the first page).
func (t *PageTokens) Decode(query []byte, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	// The decoder skips CR and LF: refuse every byte outside the alphabet.
	if strings.ContainsAny(token, "=+/\r\n") {
		return "", ErrBadPageToken
	}
	// Strict: a token has one encoding, so no other string decodes to it.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) < 1+digestLen+macLen || raw[0] != pageTokenVersion {
		return "", ErrBadPageToken
	}
	payload, mac := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	if !hmac.Equal(mac, t.mac(payload)) {
		return "", ErrBadPageToken
	}
	if !hmac.Equal(payload[1:1+digestLen], query[:digestLen]) {
		return "", ErrBadPageToken
	}
	return string(payload[1+digestLen:]), nil
}

func (t *PageTokens) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(payload)
	return m.Sum(nil)[:macLen]
}

// PageSize applies AIP-158 defaults: 0 means def, above max means max,
// negative is an error.
func PageSize(requested int32, def, max int) (int, error) {
	switch {
	case requested < 0:
		return 0, errors.New("must not be negative")
	case requested == 0:
		return def, nil
	case int(requested) > max:
		return max, nil
	default:
		return int(requested), nil
	}
}
