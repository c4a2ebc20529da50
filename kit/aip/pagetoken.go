package aip

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/pyleeai/pylee/kit/auth"
)

// PageTokens issues and reads opaque page tokens (AIP-158). A token is the
// position after the last item of a page, encrypted and authenticated with
// AES-256-GCM; the query it belongs to and the caller who asked are the
// associated data. A client learns nothing from a token (not even the id it
// resumes after), cannot edit it, and cannot use it with another filter,
// collection or credential.
type PageTokens struct {
	aead cipher.AEAD
	// nonceKey derives each token's nonce from its content (a synthetic
	// IV), so one position always gives one token.
	nonceKey []byte
}

// ErrBadPageToken is returned for a token that was tampered with, is
// malformed, or belongs to another query or caller.
var ErrBadPageToken = errors.New("page_token is invalid or belongs to a different query")

const (
	pageTokenVersion = 2
	digestLen        = 16
	// maxPageToken bounds what Decode looks at: positions are resource ids.
	maxPageToken = 1024
)

// NewPageTokens returns a codec keyed with key; every replica of a service
// must share the key so a token works on any of them. Keys of any length
// are stretched into separate encryption and nonce keys.
func NewPageTokens(key []byte) *PageTokens {
	enc := deriveKey(key, "pylee page token encryption")
	block, err := aes.NewCipher(enc)
	if err != nil {
		panic(err) // 32-byte key: cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &PageTokens{aead: aead, nonceKey: deriveKey(key, "pylee page token nonce")}
}

func deriveKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
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

// associated binds a token to its query and to the caller of ctx.
func associated(ctx context.Context, query []byte) []byte {
	caller := ""
	if p, ok := auth.FromContext(ctx); ok {
		caller = p.Name
	}
	ad := make([]byte, 0, 1+digestLen+len(caller))
	ad = append(ad, pageTokenVersion)
	ad = append(ad, query[:digestLen]...)
	return append(ad, caller...)
}

// Encode returns the token for resuming query after cursor, for the caller
// of ctx.
func (t *PageTokens) Encode(ctx context.Context, query []byte, cursor string) string {
	ad := associated(ctx, query)
	m := hmac.New(sha256.New, t.nonceKey)
	m.Write(ad)
	m.Write([]byte(cursor))
	nonce := m.Sum(nil)[:t.aead.NonceSize()]
	out := make([]byte, 0, 1+len(nonce)+len(cursor)+t.aead.Overhead())
	out = append(out, pageTokenVersion)
	out = append(out, nonce...)
	out = t.aead.Seal(out, nonce, []byte(cursor), ad)
	return base64.RawURLEncoding.EncodeToString(out)
}

// Decode returns the cursor of token if it was issued by this codec for
// query and the caller of ctx. An empty token decodes to an empty cursor
// (the first page).
func (t *PageTokens) Decode(ctx context.Context, query []byte, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	// The decoder skips CR and LF: refuse every byte outside the alphabet.
	if len(token) > maxPageToken || strings.ContainsAny(token, "=+/\r\n") {
		return "", ErrBadPageToken
	}
	// Strict: a token has one encoding, so no other string decodes to it.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	ns := t.aead.NonceSize()
	if err != nil || len(raw) < 1+ns+t.aead.Overhead() || raw[0] != pageTokenVersion {
		return "", ErrBadPageToken
	}
	plain, err := t.aead.Open(nil, raw[1:1+ns], raw[1+ns:], associated(ctx, query))
	if err != nil {
		return "", ErrBadPageToken
	}
	return string(plain), nil
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

// DeriveKey returns a 32-byte key for purpose derived from the codec's
// installation key, for another keyed function every replica must compute
// alike (the secrets service's value fingerprints). Distinct purposes give
// independent keys, and none reveals the installation key.
func (t *PageTokens) DeriveKey(purpose string) []byte {
	return deriveKey(t.nonceKey, "pylee derived key\x00"+purpose)
}
